// A scheduling policy added from one file (this one) and a config: registered, it is a valid
// `scheduler.type`, the factory builds it and the simulator runs a workload through it — the
// path a researcher's own policy takes (docs/scheduling.md, "Adding a policy").
#include <gtest/gtest.h>

#include "core/config/reader.h"
#include "core/config/yaml_io.h"
#include "serving/scheduler/policies.h"
#include "serving/sim/simulator.h"

namespace xp::serving {
namespace {

// Whole prompts only once nothing is decoding, so a batch is all prompts or all decodes.
class PromptsWhenIdle final : public ReplicaScheduler {
 public:
  PromptsWhenIdle(const SchedulerConfig& c, int64_t blocks) : ReplicaScheduler(c, blocks, c.watermark) {}

 protected:
  void build(double now, Batch& b) override {
    decode_all_reserved(b);
    if (b.empty()) admit_whole_prompts(now, b);
  }
};

class FixedTimer final : public StageTimer {
 public:
  double stage_time_s(const BatchShape&, int64_t) const override { return 0.01; }
  double stage_flops(const BatchShape& b) const override { return static_cast<double>(b.num_tokens()); }
};

TEST(SchedulerRegistry, APolicyAddedFromItsOwnFileIsConfiguredByTypeAndServesEveryRequest) {
  register_scheduler_policy({"prompts_when_idle", "whole prompts only while nothing decodes",
                             [](const SchedulerConfig& c, int64_t blocks) -> std::unique_ptr<ReplicaScheduler> {
                               return std::make_unique<PromptsWhenIdle>(c, blocks);
                             }});
  EXPECT_THROW(register_scheduler_policy({"prompts_when_idle", "again", nullptr}), std::invalid_argument);

  const config::ConfigNode yaml = config::load_yaml_string("type: prompts_when_idle\nmax_num_seqs: 8\n", "scheduler.yaml");
  SchedulerConfig cfg = SchedulerConfig::from(config::ConfigReader(yaml, "scheduler"));
  EXPECT_EQ(cfg.type, "prompts_when_idle");

  WorkloadConfig w;
  w.num_requests = 50;
  w.lengths = "uniform";
  w.min_tokens = 16;
  w.max_tokens = 256;
  w.arrivals = "poisson";
  w.qps = 20;
  MetricsConfig mc;
  ServingMetrics metrics(mc, nullptr, "/serving");
  RequestGenerator requests(w, 3);
  FixedTimer timer;
  Simulator sim({}, cfg, timer, 10000, 1, requests, metrics, 3);
  EXPECT_EQ(sim.run().requests_finished, 50);
}

}  // namespace
}  // namespace xp::serving
