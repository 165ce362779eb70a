#include <gtest/gtest.h>

#include "serving/sim/global_scheduler.h"
#include "serving/sim/simulator.h"

namespace xp::serving {
namespace {

// Every stage of every batch takes `t` seconds.
class ConstantTimer final : public StageTimer {
 public:
  explicit ConstantTimer(double t) : t_(t) {}
  double stage_time_s(const BatchShape&, int64_t) const override { return t_; }
  double stage_flops(const BatchShape& b) const override { return static_cast<double>(b.num_tokens()); }

 private:
  double t_;
};

// Time grows with tokens, so load matters.
class LinearTimer final : public StageTimer {
 public:
  double stage_time_s(const BatchShape& b, int64_t) const override { return 0.005 + 2e-5 * static_cast<double>(b.num_tokens()); }
  double stage_flops(const BatchShape& b) const override { return static_cast<double>(b.num_tokens()); }
};

// Decodes cost 2 ms each, prompt tokens 0.1 ms, plus 5 ms per batch: a decode in a batch with a
// prompt chunk adds only its 2 ms (SARATHI's piggybacking), a decode-only batch costs it all.
class PiggybackTimer final : public StageTimer {
 public:
  double stage_time_s(const BatchShape& b, int64_t) const override {
    double prompt_tokens = 0;
    for (const auto& p : b.prefills) prompt_tokens += static_cast<double>(p.chunk);
    return 0.005 + 1e-4 * prompt_tokens + 0.002 * static_cast<double>(b.decode_contexts.size());
  }
  double stage_flops(const BatchShape& b) const override { return static_cast<double>(b.num_tokens()); }
};

WorkloadConfig synthetic(int64_t n, double qps) {
  WorkloadConfig w;
  w.num_requests = n;
  w.lengths = "uniform";
  w.min_tokens = 32;
  w.max_tokens = 1024;
  w.arrivals = "poisson";
  w.qps = qps;
  return w;
}

// `n` requests of fixed lengths, all there at t = 0.
WorkloadConfig fixed_static(int64_t n, int64_t prompt_tokens, int64_t decode_tokens) {
  WorkloadConfig w;
  w.num_requests = n;
  w.lengths = "fixed";
  w.prompt_tokens = prompt_tokens;
  w.decode_tokens = decode_tokens;
  w.arrivals = "static";
  return w;
}

SchedulerConfig sarathi(int64_t pp = 1) {
  SchedulerConfig s;
  s.type = "sarathi";
  s.chunk_size = 512;
  s.pipeline_stages = pp;
  return s;
}

struct Outcome {
  SimulationResult result;
  ServingSummary summary;
};

Outcome simulate(const ClusterConfig& cluster, const SchedulerConfig& sched, const StageTimer& timer,
                 const WorkloadConfig& w, uint64_t seed = 1) {
  MetricsConfig mc;
  ServingMetrics metrics(mc, nullptr, "/serving");
  RequestGenerator gen(w, seed);
  Simulator sim(cluster, sched, timer, 100000, 1, gen, metrics, seed);
  Outcome o;
  o.result = sim.run();
  o.summary = metrics.summary(o.result.preemptions, 1, 1.0);
  return o;
}

}  // namespace

TEST(Simulator, EveryRequestFinishesAndTheRunIsReproducible) {
  LinearTimer timer;
  Outcome a = simulate({}, sarathi(), timer, synthetic(400, 20));
  Outcome b = simulate({}, sarathi(), timer, synthetic(400, 20));
  EXPECT_EQ(a.result.requests_finished, 400);
  EXPECT_EQ(a.result.requests_arrived, 400);
  EXPECT_EQ(a.summary.values, b.summary.values);
  Outcome c = simulate({}, sarathi(), timer, synthetic(400, 20), 2);
  EXPECT_NE(a.summary.get("p50_ttft_s"), c.summary.get("p50_ttft_s"));
}

TEST(Simulator, PipelineWithoutSppPaysAllStagesPerChunk) {
  // A lone prompt of n = 4 chunks over P = 4 stages of t = 1 s each: n·P·t without SPP.
  WorkloadConfig w = fixed_static(1, 2048, 2);
  MetricsConfig mc;
  ServingMetrics metrics(mc, nullptr, "/serving");
  RequestGenerator gen(w, 1);
  ConstantTimer timer(1.0);
  Simulator sim({}, sarathi(4), timer, 100000, 4, gen, metrics, 1);
  SimulationResult r = sim.run();
  EXPECT_EQ(r.requests_finished, 1);
  EXPECT_DOUBLE_EQ(metrics.ttft().max(), 16.0);
  EXPECT_DOUBLE_EQ(r.simulated_s, 20.0);  // then one decode through all 4 stages
}

TEST(Simulator, MoreLoadMeansMoreLatency) {
  LinearTimer timer;
  Outcome light = simulate({}, sarathi(), timer, synthetic(300, 5));
  Outcome heavy = simulate({}, sarathi(), timer, synthetic(300, 60));
  EXPECT_LT(light.summary.get("p99_ttft_s"), heavy.summary.get("p99_ttft_s"));
  EXPECT_GT(heavy.summary.get("throughput_tok_s"), light.summary.get("throughput_tok_s"));
}

TEST(Simulator, ReplicasShareTheLoad) {
  LinearTimer timer;
  for (const std::string& g : global_scheduler_names()) {
    ClusterConfig one, four;
    four.num_replicas = 4;
    four.global_scheduler = g;
    Outcome a = simulate(one, sarathi(), timer, synthetic(500, 80));
    Outcome b = simulate(four, sarathi(), timer, synthetic(500, 80));
    EXPECT_EQ(b.result.requests_finished, 500) << g;
    EXPECT_LT(b.summary.get("p50_ttft_s"), a.summary.get("p50_ttft_s")) << g;
  }
}

TEST(Simulator, TimeLimitStopsTheClock) {
  LinearTimer timer;
  ClusterConfig c;
  c.time_limit_s = 5;
  Outcome o = simulate(c, sarathi(), timer, synthetic(1000, 20));
  EXPECT_TRUE(o.result.stopped);
  EXPECT_LE(o.result.simulated_s, 5.0);
  EXPECT_LT(o.result.requests_finished, 1000);
}

TEST(Simulator, DecodeThroughputCountsWhatDecodesAddToABatchWithAPrompt) {
  // Two 256-token prompts with 3 output tokens each: 4 decodes. However the scheduler groups
  // them (both prompts at once, or one prompt with the other's first decode), the decodes cost
  // 2 x (5 + 2 + 2) ms = 18 ms: a decode riding with a prompt chunk is charged its 2 ms only.
  PiggybackTimer timer;
  Outcome o = simulate({}, sarathi(), timer, fixed_static(2, 256, 3));
  EXPECT_NEAR(o.summary.get("decode_throughput_tok_s"), 4 / 0.018, 1e-6);
}

}  // namespace xp::serving

namespace xp::serving {
namespace {

TEST(GlobalScheduler, EachRegisteredRuleRoutesToAReplicaAndLorPicksTheShortestQueue) {
  std::vector<std::unique_ptr<ReplicaScheduler>> owned;
  std::vector<const ReplicaScheduler*> replicas;
  for (int waiting : {3, 1, 2}) {
    owned.push_back(ReplicaScheduler::create(sarathi(), 1000));
    for (int i = 0; i < waiting; ++i) owned.back()->add_request(Request{static_cast<uint64_t>(i), 0.0, 64, 8});
    replicas.push_back(owned.back().get());
  }
  for (const auto& type : global_scheduler_types()) {
    auto g = type.make(7);
    for (int i = 0; i < 10; ++i) {
      const int64_t r = g->route(replicas);
      EXPECT_GE(r, 0) << type.name;
      EXPECT_LT(r, 3) << type.name;
    }
  }
  EXPECT_EQ(make_global_scheduler("lor", 0)->route(replicas), 1);
  auto rr = make_global_scheduler("round_robin", 0);
  EXPECT_EQ(rr->route(replicas), 0);
  EXPECT_EQ(rr->route(replicas), 1);
  EXPECT_EQ(rr->route(replicas), 2);
  EXPECT_EQ(rr->route(replicas), 0);
  EXPECT_THROW(make_global_scheduler("least_loaded", 0), std::invalid_argument);
}

}  // namespace
}  // namespace xp::serving
