#include "experiments/slo.h"

#include <fmt/format.h>

#include "core/config/error.h"

namespace xp::experiments {

SloConfig SloConfig::from(const config::ConfigReader& r) {
  SloConfig c;
  r.get_enum("type", c.type, {"sarathi", "delay", "deadline", "tbt_ttft", "ttft_tpot"});
  r.get("tbt_slo_s", c.tbt_slo_s, config::Range::positive());
  r.get("scheduling_delay_slo_s", c.scheduling_delay_slo_s, config::Range::positive());
  r.get("ttft_slo_s", c.ttft_slo_s, config::Range::positive());
  r.get("tpot_slo_s", c.tpot_slo_s, config::Range::positive());
  r.get("ttft_slack_s", c.ttft_slack_s, config::Range::non_negative());
  r.get("tbt_deadline_s", c.tbt_deadline_s, config::Range::positive());
  r.get("miss_rate_slo", c.miss_rate_slo, config::Range::fraction());
  r.finish();
  return c;
}

bool SloConfig::passes(const serving::ServingSummary& s) const {
  if (s.get("requests") <= 0) return false;
  if (type == "sarathi") return s.get("p99_tbt_s") <= tbt_slo_s && s.get("p50_scheduling_delay_s") <= scheduling_delay_slo_s;
  if (type == "delay") return s.get("p99_scheduling_delay_s") <= scheduling_delay_slo_s;
  if (type == "tbt_ttft") return s.get("p99_tbt_s") <= tbt_slo_s && s.get("p90_ttft_s") <= ttft_slo_s;
  if (type == "ttft_tpot") return s.get("p90_ttft_s") <= ttft_slo_s && s.get("p90_tpot_s") <= tpot_slo_s;
  return s.get("p99_request_miss_rate") <= miss_rate_slo;  // deadline
}

std::string SloConfig::describe() const {
  if (type == "sarathi") return fmt::format("P99 TBT <= {} s and P50 scheduling delay <= {} s", tbt_slo_s, scheduling_delay_slo_s);
  if (type == "delay") return fmt::format("P99 scheduling delay <= {} s", scheduling_delay_slo_s);
  if (type == "tbt_ttft") return fmt::format("P99 TBT <= {} s and P90 TTFT <= {} s", tbt_slo_s, ttft_slo_s);
  if (type == "ttft_tpot") return fmt::format("P90 TTFT <= {} s and P90 TPOT <= {} s", ttft_slo_s, tpot_slo_s);
  return fmt::format("P99 request deadline miss rate <= {} (D_p = prefill + {} s, D_d = {} s)", miss_rate_slo,
                     ttft_slack_s, tbt_deadline_s);
}

serving::MetricsConfig SloConfig::probe_metrics(serving::MetricsConfig m) const {
  m.fluid_rate = false;
  m.store_batches = false;
  m.store_tokens = false;
  if (type == "deadline") {
    m.ttft_slack_s = ttft_slack_s;
    m.tbt_deadline_s = tbt_deadline_s;
  }
  return m;
}

CapacityPlan CapacityPlan::from(const config::ConfigReader& cap) {
  CapacityPlan p;
  p.slo = SloConfig::from(cap.section("slo"));
  cap.get("start_qps", p.search.start_qps, config::Range::positive());
  cap.get("max_iterations", p.search.max_iterations, config::Range::between(1, 1000));
  cap.get("granularity_pct", p.search.granularity_pct, config::Range::between(0, 100).open_below());
  cap.finish();
  p.search.scheduling_delay_slo_s = p.slo.scheduling_delay_slo_s;
  if (!(p.search.start_qps > 0))
    throw config::ConfigError("must be positive", {}, "capacity.start_qps", "set capacity.start_qps=1.0");
  return p;
}

serving::CapacityResult CapacityPlan::run(const std::function<serving::ProbeResult(double)>& probe) const {
  return slo.type == "sarathi" ? serving::sarathi_capacity_search(search, probe)
                               : serving::metron_capacity_search(search, probe);
}

}  // namespace xp::experiments
