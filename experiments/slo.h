// Serving SLOs for capacity searches (docs/metrics.md), checked on a run's summary.
#pragma once
#include <string>

#include "core/config/reader.h"
#include "serving/metrics/collector.h"
#include "serving/sim/capacity.h"

namespace xp::experiments {

struct SloConfig {
  std::string type = "sarathi";         // sarathi | delay | deadline | tbt_ttft | ttft_tpot
  double tbt_slo_s = 0.2;               // sarathi / tbt_ttft: P99 TBT bound
  double scheduling_delay_slo_s = 2.0;  // sarathi: P50 delay bound; delay: P99 delay bound (Vidur-Search: 5)
  double ttft_slo_s = 0.1;              // tbt_ttft / ttft_tpot: P90 TTFT bound
  double tpot_slo_s = 0.1;              // ttft_tpot: P90 TPOT bound
  double ttft_slack_s = 0.3;            // deadline: D_p = predicted lone prefill(P) + slack
  double tbt_deadline_s = 0.03;         // deadline: D_d
  double miss_rate_slo = 0.1;           // deadline: bound on the P99 per-request miss rate

  static SloConfig from(const config::ConfigReader& r);
  bool passes(const serving::ServingSummary& s) const;
  std::string describe() const;
  // The metrics a probe must compute for this SLO (deadlines for `deadline`).
  serving::MetricsConfig probe_metrics(serving::MetricsConfig base) const;
};

struct CapacityPlan {
  SloConfig slo;
  serving::CapacitySearchConfig search;
  static CapacityPlan from(const config::ConfigReader& capacity_section);
  // Runs the SLO's search (Sarathi-Serve's for `sarathi`, Metron's otherwise).
  serving::CapacityResult run(const std::function<serving::ProbeResult(double)>& probe) const;
};

}  // namespace xp::experiments
