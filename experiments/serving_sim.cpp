#include "experiments/serving_sim.h"

#include <fmt/format.h>

#include "core/runtime/logging.h"
#include "experiments/serving_setup.h"

namespace xp::experiments {
namespace {

namespace fs = std::filesystem;
using serving::ServingSummary;

// Prints metric rows × one column per system.
void print_comparison(const std::vector<std::pair<std::string, ServingSummary>>& systems,
                      const std::vector<std::pair<std::string, std::string>>& shown) {
  std::string head = fmt::format("  {:<24}", "");
  for (const auto& [name, s] : systems) head += fmt::format("{:>16}", name);
  fmt::print("{}\n", head);
  for (const auto& [key, label] : shown) {
    std::string line = fmt::format("  {:<24}", label);
    for (const auto& [name, s] : systems) line += fmt::format("{:>16.4g}", s.get(key));
    fmt::print("{}\n", line);
  }
}

class ServingSim final : public Experiment {
 public:
  ServingSim(ServingSetup setup, bool plots) : setup_(std::move(setup)), plots_(plots) {}

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    auto log = runtime::logger();
    for (const auto& [op, src] : setup_.predictor->sources()) ctx.results().set_attr("/serving/predictor_sources", op, src);
    std::string why;
    int64_t blocks = setup_.kv_blocks(&why);
    ctx.set_summary("kv_blocks_per_replica", blocks);
    if (blocks == 0) {
      // A clear result, not a crash: this deployment cannot serve the model at all.
      log->warn("{}", why);
      ctx.set_summary("capacity_note", why);
      return jobs::RunOutcome::kDone;
    }
    bool several = setup_.variants.size() > 1;
    for (const auto& v : setup_.variants) {
      log->info("simulating {} ({} requests, {} replica(s) of {} x {})", v.name, setup_.workload.num_requests,
                setup_.cluster.num_replicas, setup_.device.name, setup_.layout.label());
      SimulationOutput out = simulate(setup_, v, setup_.workload, setup_.metrics, &ctx,
                                      several ? "/serving/" + v.name : "/serving", blocks, ctx.seed());
      if (out.result.stopped && ctx.should_stop()) return jobs::RunOutcome::kPreempted;  // restarts whole
      log->info("{}: {} requests, {} iterations in {:.3f} s of wall time ({:.0f} simulated requests/s)", v.name,
                out.result.requests_finished, out.result.iterations, out.wall_s,
                static_cast<double>(out.result.requests_finished) / out.wall_s);
      out.summary.values.emplace_back("wall_s", out.wall_s);
      serving::ServingMetrics::write_summary(ctx, out.summary, several ? v.name + "." : "");
      summaries_.emplace_back(v.name, out.summary);
    }
    return jobs::RunOutcome::kDone;
  }

  void report(const jobs::RunContext& ctx) const override {
    if (summaries_.empty()) {
      Experiment::report(ctx);
      return;
    }
    fmt::print("{} on {} ({}, {} replica(s)), {} requests\n", setup_.model.name, setup_.device.name,
               setup_.layout.label(), setup_.cluster.num_replicas, setup_.workload.num_requests);
    print_comparison(summaries_, {{"p50_ttft_s", "P50 TTFT (s)"},
                                  {"p99_ttft_s", "P99 TTFT (s)"},
                                  {"p99_tbt_s", "P99 TBT (s)"},
                                  {"p50_tpot_s", "P50 TPOT (s)"},
                                  {"throughput_tok_s", "throughput (tok/s)"},
                                  {"fluidity_index", "fluidity-index"},
                                  {"preemptions", "preemptions"},
                                  {"p50_scheduling_delay_s", "P50 sched. delay (s)"}});
  }

  void after_close(const fs::path& run_dir) const override {
    if (plots_) plot_serving_results(run_dir);
  }

 private:
  ServingSetup setup_;
  bool plots_;
  std::vector<std::pair<std::string, ServingSummary>> summaries_;
};

}  // namespace

std::unique_ptr<Experiment> make_serving_sim(const config::ConfigNode& job_config) {
  auto top = top_level_reader(job_config);
  ServingSetup setup = ServingSetup::parse(top);
  bool plots = false;
  top.get("plots", plots);
  top.finish();
  return std::make_unique<ServingSim>(std::move(setup), plots);
}

}  // namespace xp::experiments
