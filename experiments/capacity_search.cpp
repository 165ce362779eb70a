#include "experiments/capacity_search.h"

#include <fmt/format.h>

#include "core/config/error.h"
#include "core/runtime/logging.h"
#include "experiments/serving_setup.h"
#include "serving/sim/capacity.h"

namespace xp::experiments {
namespace {

using namespace xp::serving;
using results::ColumnType;

struct SloConfig {
  std::string type = "sarathi";         // sarathi | deadline | tbt_ttft | ttft_tpot
  double tbt_slo_s = 0.2;               // sarathi: P99 TBT; tbt_ttft: P99 TBT
  double scheduling_delay_slo_s = 2.0;  // sarathi: P50 scheduling delay
  double ttft_slo_s = 0.1;              // tbt_ttft / ttft_tpot: P90 TTFT
  double tpot_slo_s = 0.1;              // ttft_tpot: P90 TPOT
  double ttft_slack_s = 0.3;            // deadline: D_p = predicted prefill(P) + slack
  double tbt_deadline_s = 0.03;         // deadline: D_d
  double miss_rate_slo = 0.1;           // deadline: P99 of per-request miss rates must stay below
  double miss_rate_percentile = 0.99;
};

struct Config {
  SloConfig slo;
  CapacitySearchConfig search;
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
    ctx.results().set_attr("/capacity/results", "slo", slo_text());
    MetricsConfig mc = setup_.metrics;
    mc.fluid_rate = false;
    mc.store_batches = false;
    if (cfg_.slo.type == "deadline") {
      mc.ttft_slack_s = cfg_.slo.ttft_slack_s;
      mc.tbt_deadline_s = cfg_.slo.tbt_deadline_s;
    }
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
        ProbeResult p{passes(s), s.get("p50_scheduling_delay_s")};
        probes.append({static_cast<int64_t>(i), qps, int64_t{p.passed ? 1 : 0}, s.get("p90_ttft_s"), s.get("p99_ttft_s"),
                       s.get("p99_tbt_s"), s.get("p90_tpot_s"), s.get("p50_scheduling_delay_s"),
                       s.get("p99_request_miss_rate"), s.get("throughput_tok_s")});
        log->info("{} at {:.2f} QPS: {} (P99 TBT {:.3f} s, P50 delay {:.3f} s)", v.name, qps,
                  p.passed ? "meets the SLO" : "misses", s.get("p99_tbt_s"), s.get("p50_scheduling_delay_s"));
        return p;
      };
      CapacityResult r = cfg_.slo.type == "sarathi" ? sarathi_capacity_search(cfg_.search, probe)
                                                    : metron_capacity_search(cfg_.search, probe);
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
    fmt::print("capacity of {} on {} (TP{} PP{}) under {}\n", setup_.model.name, setup_.device.name,
               setup_.layout.tensor_parallel, setup_.layout.pipeline_parallel, slo_text());
    for (const auto& [name, qps, note] : rows_)
      fmt::print("  {:<20} {:>8.2f} QPS  {}\n", name, qps, note);
  }

 private:
  static double lowest(const CapacityResult& r) {
    double m = 1e300;
    for (const auto& [q, p] : r.probes) m = std::min(m, q);
    return m;
  }

  bool passes(const ServingSummary& s) const {
    const SloConfig& o = cfg_.slo;
    if (s.get("requests") <= 0) return false;
    if (o.type == "sarathi") return s.get("p99_tbt_s") <= o.tbt_slo_s && s.get("p50_scheduling_delay_s") <= o.scheduling_delay_slo_s;
    if (o.type == "tbt_ttft") return s.get("p99_tbt_s") <= o.tbt_slo_s && s.get("p90_ttft_s") <= o.ttft_slo_s;
    if (o.type == "ttft_tpot") return s.get("p90_ttft_s") <= o.ttft_slo_s && s.get("p90_tpot_s") <= o.tpot_slo_s;
    return s.get("p99_request_miss_rate") <= o.miss_rate_slo;  // deadline
  }

  std::string slo_text() const {
    const SloConfig& o = cfg_.slo;
    if (o.type == "sarathi")
      return fmt::format("P99 TBT <= {} s and P50 scheduling delay <= {} s", o.tbt_slo_s, o.scheduling_delay_slo_s);
    if (o.type == "tbt_ttft") return fmt::format("P99 TBT <= {} s and P90 TTFT <= {} s", o.tbt_slo_s, o.ttft_slo_s);
    if (o.type == "ttft_tpot") return fmt::format("P90 TTFT <= {} s and P90 TPOT <= {} s", o.ttft_slo_s, o.tpot_slo_s);
    return fmt::format("P99 request deadline miss rate <= {} (D_p = prefill + {} s, D_d = {} s)", o.miss_rate_slo,
                       o.ttft_slack_s, o.tbt_deadline_s);
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
  auto cap = top.section("capacity");
  auto slo = cap.section("slo");
  slo.get_enum("type", c.slo.type, {"sarathi", "deadline", "tbt_ttft", "ttft_tpot"});
  slo.get("tbt_slo_s", c.slo.tbt_slo_s);
  slo.get("scheduling_delay_slo_s", c.slo.scheduling_delay_slo_s);
  slo.get("ttft_slo_s", c.slo.ttft_slo_s);
  slo.get("tpot_slo_s", c.slo.tpot_slo_s);
  slo.get("ttft_slack_s", c.slo.ttft_slack_s);
  slo.get("tbt_deadline_s", c.slo.tbt_deadline_s);
  slo.get("miss_rate_slo", c.slo.miss_rate_slo);
  slo.get("miss_rate_percentile", c.slo.miss_rate_percentile);
  slo.finish();
  cap.get("start_qps", c.search.start_qps);
  cap.get("max_iterations", c.search.max_iterations);
  cap.get("granularity_pct", c.search.granularity_pct);
  cap.finish();
  c.search.scheduling_delay_slo_s = c.slo.scheduling_delay_slo_s;
  if (!(c.search.start_qps > 0))
    throw config::ConfigError("must be positive", {}, "capacity.start_qps", "set capacity.start_qps=1.0");
  top.get("plots", c.plots);
  top.finish();
  return std::make_unique<CapacitySearch>(std::move(setup), c);
}

}  // namespace xp::experiments
