#include "serving/sim/capacity.h"

#include <algorithm>
#include <cmath>

namespace xp::serving {
namespace {
double round2(double x) { return std::round(x * 100.0) / 100.0; }
}  // namespace

CapacityResult metron_capacity_search(const CapacitySearchConfig& c, const std::function<ProbeResult(double)>& probe) {
  CapacityResult r;
  double left = 0, right = 2 * c.start_qps, qps = 0, last = 0, min_over = std::pow(2.0, 32);
  for (int i = 0; i < c.max_iterations; ++i) {
    if (std::fabs(left - right) < c.granularity_pct * qps / 100) break;
    qps = round2((left + right) / 2);
    if (qps == last) break;
    last = qps;
    ProbeResult p = probe(qps);
    r.probes.emplace_back(qps, p);
    if (p.passed) {
      r.best_qps = qps;
      if (qps > 0.8 * right) right = std::min(2 * right, min_over);
      left = qps;
    } else {
      right = qps;
      min_over = std::min(min_over, qps);
    }
  }
  return r;
}

CapacityResult sarathi_capacity_search(const CapacitySearchConfig& c, const std::function<ProbeResult(double)>& probe) {
  CapacityResult r;
  double left = 0, right = 2 * c.start_qps, qps = 0, last = 0, min_over = std::pow(2.0, 32);
  const double slo = c.scheduling_delay_slo_s;
  for (int i = 0; i < c.max_iterations; ++i) {
    if (std::fabs(left - right) < c.granularity_pct * qps / 100) break;
    qps = round2((left + right) / 2);
    if (qps == last) break;
    last = qps;
    ProbeResult p = probe(qps);
    r.probes.emplace_back(qps, p);
    if (p.passed) {
      r.best_qps = qps;
      if (p.scheduling_delay_s < slo / 8) right = std::min(4 * right, min_over);
      else if (p.scheduling_delay_s < slo / 4) right = std::min(2 * right, min_over);
      else if (qps > 0.8 * right) right = std::min(2 * right, min_over);
      left = qps;
    } else {
      // The reference halves the bound after a catastrophic delay (its > 1000 branch is unreachable).
      right = p.scheduling_delay_s > 500 ? qps / 2 : qps;
      min_over = std::min(min_over, qps);
      if (right <= left) left = 0;
    }
  }
  return r;
}

}  // namespace xp::serving
