#include "serving/sim/capacity.h"

#include <algorithm>
#include <cmath>

namespace xp::serving {
namespace {
double round2(double x) { return std::round(x * 100.0) / 100.0; }
}  // namespace

namespace {

// The binary search both references share; `grow(right, p, qps)` is how each raises the upper
// bound after a success, and `shrink(p, qps)` the new bound after a failure.
template <class Grow, class Shrink>
CapacityResult search(const CapacitySearchConfig& c, const std::function<ProbeResult(double)>& probe, Grow grow,
                      Shrink shrink) {
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
      right = std::min(grow(right, p, qps), min_over);
      left = qps;
    } else {
      right = shrink(p, qps);
      min_over = std::min(min_over, qps);
      if (right <= left) left = 0;
    }
  }
  return r;
}

}  // namespace

CapacityResult metron_capacity_search(const CapacitySearchConfig& c, const std::function<ProbeResult(double)>& probe) {
  return search(
      c, probe, [](double right, const ProbeResult&, double qps) { return qps > 0.8 * right ? 2 * right : right; },
      [](const ProbeResult&, double qps) { return qps; });
}

CapacityResult sarathi_capacity_search(const CapacitySearchConfig& c, const std::function<ProbeResult(double)>& probe) {
  const double slo = c.scheduling_delay_slo_s;
  return search(
      c, probe,
      [slo](double right, const ProbeResult& p, double qps) {
        if (p.scheduling_delay_s < slo / 8) return 4 * right;
        if (p.scheduling_delay_s < slo / 4) return 2 * right;
        return qps > 0.8 * right ? 2 * right : right;
      },
      // The reference halves the bound after a catastrophic delay (its > 1000 branch is unreachable).
      [](const ProbeResult& p, double qps) { return p.scheduling_delay_s > 500 ? qps / 2 : qps; });
}

}  // namespace xp::serving
