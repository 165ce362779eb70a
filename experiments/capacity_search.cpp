#include "experiments/capacity_search.h"

#include <fmt/format.h>

#include "core/runtime/logging.h"
#include "experiments/serving_setup.h"
#include "experiments/slo.h"

namespace xp::experiments {
namespace {

using namespace xp::serving;
using results::ColumnType;

struct Config {
  CapacityPlan plan;
  bool plots = false;  // capacity bars and throughput-latency curves (scripts/plot_serving.py)
};

class CapacitySearch final : public Experiment {
 public:
  CapacitySearch(ServingSetup setup, Config c) : setup_(std::move(setup)), cfg_(c) {}

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    auto log = runtime::logger();
    std::string why;
    int64_t blocks = setup_.kv_blocks(&why);
    auto& results = ctx.table("/capacity/results", {
        {"system_index", ColumnType::kUInt32, "", "index into the `systems` attribute"},
        {"capacity_qps", ColumnType::kFloat64, "requests/s", "largest QPS that met the SLO (0: none did)"},
        {"probes", ColumnType::kUInt32, "", "simulations run by the search"},
    });
    auto& probes = ctx.table("/capacity/probes", {
        {"system_index", ColumnType::kUInt32, "", "index into the `systems` attribute"},
        {"qps", ColumnType::kFloat64, "requests/s", "offered Poisson load"},
        {"passed", ColumnType::kUInt8, "", "1 = met the SLO"},
        {"p90_ttft_s", ColumnType::kFloat64, "s", "P90 TTFT"},
        {"p99_ttft_s", ColumnType::kFloat64, "s", "P99 TTFT"},
        {"p99_tbt_s", ColumnType::kFloat64, "s", "P99 time between tokens"},
        {"p90_tpot_s", ColumnType::kFloat64, "s", "P90 TPOT"},
        {"p50_scheduling_delay_s", ColumnType::kFloat64, "s", "median scheduling delay"},
        {"p99_request_miss_rate", ColumnType::kFloat64, "", "P99 of per-request deadline miss rates"},
        {"throughput_tok_s", ColumnType::kFloat64, "tokens/s", "output tokens per second"},
    });
    std::vector<std::string> names;
    for (const auto& v : setup_.variants) names.push_back(v.name);
    ctx.results().set_attr("/capacity/results", "systems", names);
    ctx.results().set_attr("/capacity/results", "slo", cfg_.plan.slo.describe());
    MetricsConfig mc = cfg_.plan.slo.probe_metrics(setup_.metrics);
    for (size_t i = 0; i < setup_.variants.size(); ++i) {
      const auto& v = setup_.variants[i];
      if (blocks == 0) {  // the model does not fit: capacity 0, with the reason
        results.append({static_cast<int64_t>(i), 0.0, int64_t{0}});
        ctx.set_summary(v.name + ".capacity_qps", 0.0);
        ctx.set_summary(v.name + ".capacity_note", why);
        rows_.emplace_back(v.name, 0.0, why);
        continue;
      }
      auto probe = [&](double qps) {
        WorkloadConfig w = setup_.workload;
        w.qps = qps;
        w.arrivals = "poisson";
        SimulationOutput out = simulate(setup_, v, w, mc, nullptr, "", blocks, ctx.seed());
        const ServingSummary& s = out.summary;
        ProbeResult p{cfg_.plan.slo.passes(s), s.get("p50_scheduling_delay_s")};
        probes.append({static_cast<int64_t>(i), qps, int64_t{p.passed ? 1 : 0}, s.get("p90_ttft_s"), s.get("p99_ttft_s"),
                       s.get("p99_tbt_s"), s.get("p90_tpot_s"), s.get("p50_scheduling_delay_s"),
                       s.get("p99_request_miss_rate"), s.get("throughput_tok_s")});
        log->info("{} at {:.2f} QPS: {} (P99 TBT {:.3f} s, P50 delay {:.3f} s)", v.name, qps,
                  p.passed ? "meets the SLO" : "misses", s.get("p99_tbt_s"), s.get("p50_scheduling_delay_s"));
        return p;
      };
      CapacityResult r = cfg_.plan.run(probe);
      double cap = r.best_qps.value_or(0.0);
      std::string note = r.best_qps ? "" : fmt::format("no probed QPS (lowest {:.2f}) met the SLO", lowest(r));
      results.append({static_cast<int64_t>(i), cap, static_cast<int64_t>(r.probes.size())});
      ctx.set_summary(v.name + ".capacity_qps", cap);
      if (!note.empty()) ctx.set_summary(v.name + ".capacity_note", note);
      rows_.emplace_back(v.name, cap, note);
    }
    return jobs::RunOutcome::kDone;
  }

  void after_close(const std::filesystem::path& run_dir) const override {
    if (cfg_.plots) plot_serving_results(run_dir);
  }

  void report(const jobs::RunContext&) const override {
    fmt::print("capacity of {} on {} ({}) under {}\n", setup_.model.name, setup_.device.name, setup_.layout.label(),
               cfg_.plan.slo.describe());
    for (const auto& [name, qps, note] : rows_)
      fmt::print("  {:<20} {:>8.2f} QPS  {}\n", name, qps, note);
  }

 private:
  static double lowest(const CapacityResult& r) {
    double m = 1e300;
    for (const auto& [q, p] : r.probes) m = std::min(m, q);
    return m;
  }

  ServingSetup setup_;
  Config cfg_;
  std::vector<std::tuple<std::string, double, std::string>> rows_;
};

}  // namespace

std::unique_ptr<Experiment> make_capacity_search(const config::ConfigNode& job_config) {
  auto top = top_level_reader(job_config);
  ServingSetup setup = ServingSetup::parse(top);
  Config c;
  c.plan = CapacityPlan::from(top.section("capacity"));
  top.get("plots", c.plots);
  top.finish();
  return std::make_unique<CapacitySearch>(std::move(setup), c);
}

}  // namespace xp::experiments
