// `exp run` under a real Slurm cluster (CTest label slurm): one node on loopback, started for the
// test by scripts/slurm_cluster.sh (munged, slurmctld, slurmd; every file in a scratch folder)
// and stopped after it. Tensor-parallel ranks launched by srun — directly, and from a batch
// script as a cluster user writes it — serve the tokens one process serves.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <iostream>

#include "tests/support/exp_cli.h"
#include "tests/support/run_results.h"

namespace xp::cli {
namespace fs = std::filesystem;
using testing::kConfigs;
using testing::Ran;

namespace {

const std::string kCluster = std::string(EXP_SOURCE_DIR) + "/scripts/slurm_cluster.sh";

class SlurmLaunch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || std::system("command -v slurmctld > /dev/null && command -v munged > /dev/null") != 0)
      GTEST_SKIP() << "needs root and slurm-wlm + munge (scripts/install_deps.sh)";
    Ran c = sh(kCluster + " start " + (dir_ / "cluster").string());
    ASSERT_EQ(c.rc, 0) << c.err;
    started_ = true;
    setenv("SLURM_CONF", (dir_ / "cluster/slurm.conf").c_str(), 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    ASSERT_EQ(testing::run_exp(dir_, "run " + kConfigs + "/experiment/make_model.yaml model.hidden_size=64 "
                                     "model.num_hidden_layers=2 model.num_attention_heads=4 model.num_key_value_heads=2 "
                                     "model.intermediate_size=128 model.vocab_size=301 hydra.run.dir=made output_dir=" +
                                     (dir_ / "m").string()).rc, 0);
  }
  void TearDown() override {
    if (HasFailure() && started_)  // what the daemons said, for a failure on a CI machine
      for (const char* log : {"slurmctld.log", "slurmd.log"})
        std::cerr << "--- " << log << "\n" << sh("tail -n 30 cluster/log/" + std::string(log)).out;
    if (started_) sh(kCluster + " stop " + (dir_ / "cluster").string());
    unsetenv("SLURM_CONF");
  }
  Ran sh(const std::string& cmd) const {
    int status = std::system(("cd " + dir_.path().string() + " && " + cmd + " > sh.out 2> sh.err").c_str());
    return {WEXITSTATUS(status), dir_.read("sh.out"), dir_.read("sh.err")};
  }
  std::string serve(const std::string& run_dir, int tp) const {
    return fmt::format("{} run {}/experiment/engine_serve.yaml model_dir={} workload.num_requests=10 "
                       "deployment.tensor_parallel={} hydra.run.dir={}",
                       testing::kExp, kConfigs, (dir_ / "m").string(), tp, (dir_ / run_dir).string());
  }
  std::vector<double> tokens(const std::string& run_dir) const {
    EXPECT_TRUE(testing::run_complete(dir_ / run_dir / "results.h5")) << run_dir;
    return testing::engine_outputs(dir_ / run_dir);
  }
  testing::TempDir dir_;
  bool started_ = false;
};

}  // namespace

TEST_F(SlurmLaunch, SrunTasksServeTheTokensOfOneProcess) {
  ASSERT_EQ(sh(serve("one", 1)).rc, 0);
  Ran r = sh("timeout 120 srun --mpi=pmix -n 2 " + serve("srun", 2));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("× 2 (tensor parallel)"), std::string::npos) << r.out;
  EXPECT_EQ(tokens("srun"), tokens("one"));
}

TEST_F(SlurmLaunch, ABatchScriptOfSrunServesTheTokensOfOneProcess) {
  ASSERT_EQ(sh(serve("one", 1)).rc, 0);
  dir_.write("job.sh", "#!/bin/bash\n#SBATCH --ntasks=2 --time=00:05:00\nsrun --mpi=pmix " + serve("batch", 2) + "\n");
  Ran r = sh("timeout 120 sbatch --wait --output=" + (dir_ / "job.out").string() + " job.sh");
  ASSERT_EQ(r.rc, 0) << r.err << dir_.read("job.out");
  EXPECT_EQ(tokens("batch"), tokens("one"));
  EXPECT_NE(dir_.read("job.out").find("results:"), std::string::npos);
}

}  // namespace xp::cli
