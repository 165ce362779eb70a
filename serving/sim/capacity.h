// Capacity search (docs/metrics.md): the largest Poisson QPS whose run meets an SLO, by
// the two reference binary searches. `probe(qps)` runs one benchmark (a whole simulation) and
// reports whether it passed, with the measured scheduling delay the Sarathi-Serve variant uses
// to grow its bound. Pure functions of the probe; they never return a QPS that failed.
#pragma once
#include <functional>
#include <optional>
#include <vector>

namespace xp::serving {

struct ProbeResult {
  bool passed = false;
  double scheduling_delay_s = 0;  // the SLO's measured delay (Sarathi-Serve variant only)
};

struct CapacityResult {
  std::optional<double> best_qps;  // none: no probed QPS met the SLO
  std::vector<std::pair<double, ProbeResult>> probes;
};

struct CapacitySearchConfig {
  double start_qps = 1.0;
  int max_iterations = 20;
  double granularity_pct = 2.5;
  double scheduling_delay_slo_s = 2.0;  // Sarathi-Serve variant: bound growth uses it
};

// Metron's search: qps rounded to 2 decimals; the bound doubles on success near it.
CapacityResult metron_capacity_search(const CapacitySearchConfig& c, const std::function<ProbeResult(double)>& probe);
// Sarathi-Serve's search: faster bound growth when the delay is far below the SLO.
CapacityResult sarathi_capacity_search(const CapacitySearchConfig& c, const std::function<ProbeResult(double)>& probe);

}  // namespace xp::serving
