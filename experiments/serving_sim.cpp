#include "experiments/serving_sim.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/config/error.h"
#include "core/runtime/logging.h"
#include "serving/metrics/collector.h"
#include "serving/sim/simulator.h"

#ifndef EXP_SOURCE_DIR
#define EXP_SOURCE_DIR "."
#endif

namespace xp::experiments {
namespace {

namespace fs = std::filesystem;
using namespace xp::serving;

struct Variant {
  std::string name;
  SchedulerConfig scheduler;
};

struct Config {
  fs::path data_dir;
  ModelSpec model;
  DeviceSpec device;
  ReplicaLayout layout;
  ClusterConfig cluster;
  std::vector<Variant> variants;
  WorkloadConfig workload;
  MetricsConfig metrics;
  bool plots = false;  // run scripts/plot_serving.py on the finished run
};

Config parse(const config::ConfigNode& job) {
  Config c;
  auto top = top_level_reader(job);
  std::string data_dir;
  top.get("data_dir", data_dir);
  c.data_dir = data_dir.empty() ? fs::path(EXP_SOURCE_DIR) / "data" : fs::path(data_dir);
  c.model = ModelSpec::from(top.section("model"));
  c.device = DeviceSpec::from(top.section("hardware"));
  auto d = top.section("deployment");
  d.get("num_replicas", c.cluster.num_replicas);
  d.get_enum("global_scheduler", c.cluster.global_scheduler, {"round_robin", "random", "lor"});
  d.get("time_limit_s", c.cluster.time_limit_s);
  d.get("tensor_parallel", c.layout.tensor_parallel);
  d.get("pipeline_parallel", c.layout.pipeline_parallel);
  d.get("memory_margin_fraction", c.layout.memory_margin_fraction);
  d.finish();
  auto fill = [&](SchedulerConfig s) {
    s.max_model_len = c.model.max_model_len;
    s.pipeline_stages = c.layout.pipeline_parallel;
    return s;
  };
  if (top.has("schedulers")) {
    const config::ConfigNode* all = top.raw("schedulers");
    if (!all->is_map() || all->items().empty())
      throw config::ConfigError("`schedulers` must map names to scheduler settings", all->loc(), "schedulers",
                                "e.g. schedulers: {vllm: {type: vllm}, sarathi_serve: {type: sarathi}}");
    for (const auto& [name, node] : all->items())
      c.variants.push_back({name, fill(SchedulerConfig::from(config::ConfigReader(node, "schedulers." + name)))});
    if (top.has("scheduler")) top.raw("scheduler");  // composed defaults may leave one; `schedulers` wins
  } else {
    SchedulerConfig s = fill(SchedulerConfig::from(top.section("scheduler")));
    c.variants.push_back({s.type, s});
  }
  c.workload = WorkloadConfig::from(top.section("workload"), c.data_dir);
  c.metrics = MetricsConfig::from(top.section("metrics"));
  top.get("plots", c.plots);
  top.finish();
  if (c.layout.tensor_parallel < 1 || c.layout.pipeline_parallel < 1)
    throw config::ConfigError("tensor_parallel and pipeline_parallel must be >= 1", {}, "deployment",
                              "set deployment.tensor_parallel=1 deployment.pipeline_parallel=1");
  return c;
}

class ServingSim final : public Experiment {
 public:
  explicit ServingSim(Config c) : cfg_(std::move(c)) {
    // Load the profiles now: a missing or malformed profile is reported before anything is written.
    try {
      predictor_ = std::make_unique<ExecutionPredictor>(cfg_.model, cfg_.device, cfg_.layout, cfg_.data_dir);
      RequestGenerator probe(cfg_.workload, 0);  // reads and checks the trace
    } catch (const std::runtime_error& e) {
      throw config::ConfigError(e.what(), {}, "model/hardware/workload",
                                "check the profile and trace files under data_dir, and the TP degree");
    }
  }

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    auto log = runtime::logger();
    for (const auto& [op, src] : predictor_->sources()) ctx.results().set_attr("/serving/predictor_sources", op, src);
    std::string why;
    int64_t blocks = plan_kv_blocks(cfg_.model, cfg_.device, cfg_.layout, cfg_.variants[0].scheduler.block_size, &why);
    ctx.set_summary("kv_blocks_per_replica", blocks);
    if (blocks == 0) {
      // A clear result, not a crash: this deployment cannot serve the model at all.
      log->warn("{}", why);
      ctx.set_summary("capacity_note", why);
      return jobs::RunOutcome::kDone;
    }
    for (const auto& v : cfg_.variants) {
      std::string group = cfg_.variants.size() > 1 ? "/serving/" + v.name : "/serving";
      std::string prefix = cfg_.variants.size() > 1 ? v.name + "." : "";
      ServingMetrics metrics(cfg_.metrics, &ctx, group);
      RequestGenerator gen(cfg_.workload, ctx.seed());
      Simulator sim(cfg_.cluster, v.scheduler, *predictor_, blocks, cfg_.layout.num_gpus(), gen, metrics, ctx.seed());
      log->info("simulating {} ({} requests, {} replica(s) of {} x TP{} PP{})", v.name, cfg_.workload.num_requests,
                cfg_.cluster.num_replicas, cfg_.device.name, cfg_.layout.tensor_parallel, cfg_.layout.pipeline_parallel);
      auto t0 = std::chrono::steady_clock::now();
      SimulationResult r = sim.run([&] { return ctx.should_stop(); });
      double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log->info("{}: {} requests, {} iterations in {:.3f} s of wall time ({:.0f} simulated requests/s)", v.name,
                r.requests_finished, r.iterations, wall, static_cast<double>(r.requests_finished) / wall);
      if (r.stopped && ctx.should_stop()) return jobs::RunOutcome::kPreempted;  // a simulation restarts whole
      ServingSummary s = metrics.summary(r.preemptions, cfg_.cluster.num_replicas * cfg_.layout.num_gpus(),
                                         predictor_->peak_flops());
      s.values.emplace_back("iterations", static_cast<double>(r.iterations));
      s.values.emplace_back("wall_s", wall);
      metrics.write(s, prefix);
      summaries_.emplace_back(v.name, s);
    }
    return jobs::RunOutcome::kDone;
  }

  void report(const jobs::RunContext& ctx) const override {
    if (summaries_.empty()) {
      Experiment::report(ctx);
      return;
    }
    fmt::print("{} on {} (TP{} PP{}, {} replica(s)), {} requests\n", cfg_.model.name, cfg_.device.name,
               cfg_.layout.tensor_parallel, cfg_.layout.pipeline_parallel, cfg_.cluster.num_replicas,
               cfg_.workload.num_requests);
    const std::vector<std::pair<std::string, std::string>> shown = {
        {"p50_ttft_s", "P50 TTFT (s)"},          {"p99_ttft_s", "P99 TTFT (s)"},
        {"p99_tbt_s", "P99 TBT (s)"},            {"p50_tpot_s", "P50 TPOT (s)"},
        {"throughput_tok_s", "throughput (tok/s)"}, {"fluidity_index", "fluidity-index"},
        {"preemptions", "preemptions"},          {"p50_scheduling_delay_s", "P50 sched. delay (s)"}};
    std::string head = fmt::format("  {:<24}", "");
    for (const auto& [name, s] : summaries_) head += fmt::format("{:>16}", name);
    fmt::print("{}\n", head);
    for (const auto& [key, label] : shown) {
      std::string line = fmt::format("  {:<24}", label);
      for (const auto& [name, s] : summaries_) line += fmt::format("{:>16.4g}", s.get(key));
      fmt::print("{}\n", line);
    }
  }

  void after_close(const fs::path& run_dir) const override {
    if (!cfg_.plots) return;
    std::fflush(stdout);  // the table first, then the script's own output
    std::string cmd = fmt::format("MPLBACKEND=Agg /usr/bin/python3 {}/scripts/plot_serving.py {}", EXP_SOURCE_DIR,
                                  run_dir.string());
    if (std::system(cmd.c_str()) != 0) runtime::logger()->warn("plotting failed: {}", cmd);
  }

 private:
  Config cfg_;
  std::unique_ptr<ExecutionPredictor> predictor_;
  std::vector<std::pair<std::string, ServingSummary>> summaries_;
};

}  // namespace

std::unique_ptr<Experiment> make_serving_sim(const config::ConfigNode& job_config) {
  return std::make_unique<ServingSim>(parse(job_config));
}

}  // namespace xp::experiments
