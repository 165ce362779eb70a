#include <gtest/gtest.h>

#include "core/config/error.h"
#include "core/config/sweep.h"
#include "core/config/yaml_io.h"
#include "tests/support/temp_dir.h"

namespace xp::config {

TEST(ExpandSweep, CartesianProductLastVariesFastest) {
  auto jobs = expand_sweep({"a=1,2", "b=x,y", "c=3"}, SearchPath());
  ASSERT_EQ(jobs.size(), 4u);
  EXPECT_EQ(jobs[0], (std::vector<std::string>{"a=1", "b=x", "c=3"}));
  EXPECT_EQ(jobs[1], (std::vector<std::string>{"a=1", "b=y", "c=3"}));
  EXPECT_EQ(jobs[3], (std::vector<std::string>{"a=2", "b=y", "c=3"}));
}

TEST(ExpandSweep, RangeAndChoiceKeepPrefixes) {
  auto jobs = expand_sweep({"+n=range(2)", "++m=choice(p,q)"}, SearchPath());
  ASSERT_EQ(jobs.size(), 4u);
  EXPECT_EQ(jobs[2], (std::vector<std::string>{"+n=1", "++m=p"}));
}

TEST(ExpandSweep, GlobSelectsGroupOptions) {
  testing::TempDir d;
  for (auto n : {"vllm", "orca", "sarathi", "sarathi_serve"}) d.write(std::string("scheduler/") + n + ".yaml", "");
  auto jobs = expand_sweep({"scheduler=glob(sarathi*,exclude=sarathi)"}, SearchPath({d.path()}));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0][0], "scheduler=sarathi_serve");
  EXPECT_EQ(expand_sweep({"scheduler=glob(*)"}, SearchPath({d.path()})).size(), 4u);
  EXPECT_THROW(expand_sweep({"scheduler=glob(zzz*)"}, SearchPath({d.path()})), ConfigError);
}

TEST(ExpandSweep, SweeperParamsFromConfigYieldToCommandLine) {
  ConfigNode params = load_yaml_string("a: 1,2\nb: 5,6,7\n", "p");
  auto jobs = expand_sweep({"a=9"}, SearchPath(), params);
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0], (std::vector<std::string>{"a=9", "b=5"}));
}

TEST(ExpandSweep, HugeProductIsRefusedBeforeExpanding) {
  EXPECT_THROW(expand_sweep({"a=range(1000)", "b=range(1000)"}, SearchPath()), ConfigError);
}

TEST(ExpandSweep, ManyJobsTimesManyOverridesIsRefusedBeforeExpanding) {
  // 3^10 = 59,049 jobs are under the job limit, but not with 20 overrides each (the fuzzer found
  // this one holding 1.6 GB); 3^9 jobs of 9 overrides are.
  std::vector<std::string> overrides(10, "y=1,2,3");
  for (int i = 0; i < 10; ++i) overrides.push_back("k" + std::to_string(i) + "=1");
  EXPECT_THROW(expand_sweep(overrides, SearchPath()), ConfigError);
  overrides.resize(9);
  EXPECT_EQ(expand_sweep(overrides, SearchPath()).size(), 19683u);
}

TEST(ExpandSweep, NoSweepIsOneJob) {
  EXPECT_EQ(expand_sweep({"a=1"}, SearchPath()).size(), 1u);
  EXPECT_TRUE(has_sweep({"a=1", "b=range(3)"}));
  EXPECT_FALSE(has_sweep({"a=[1,2]"}));
}

}  // namespace xp::config
