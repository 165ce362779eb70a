// Capacity search (docs/metrics.md) on a synthetic monotone oracle.
#include <gtest/gtest.h>

#include "core/runtime/rng.h"
#include "serving/sim/capacity.h"

namespace xp::serving {

TEST(MetronCapacitySearch, ConvergesWithinTheBoundAndNeverReturnsAFailingQps) {
  runtime::RngStream rng(5, 0);
  CapacitySearchConfig c;
  c.start_qps = 1.0;
  for (int trial = 0; trial < 20000; ++trial) {
    double q_star = 0.1 + 7.9 * rng.uniform();  // [0.1, 8]·start_qps
    CapacityResult r = metron_capacity_search(c, [&](double qps) { return ProbeResult{qps <= q_star, 0}; });
    ASSERT_TRUE(r.best_qps.has_value()) << q_star;
    EXPECT_LE(*r.best_qps, q_star);
    ASSERT_LE(r.probes.size(), 13u) << q_star;
    EXPECT_GE(*r.best_qps, q_star * 0.95 - 0.01) << q_star;
    for (auto& [qps, p] : r.probes) {
      if (!p.passed) {
        EXPECT_GT(qps, q_star);
      }
    }
  }
}

TEST(MetronCapacitySearch, FarAboveTheStartItStillNeverOvershoots) {
  CapacitySearchConfig c;
  CapacityResult r = metron_capacity_search(c, [](double qps) { return ProbeResult{qps <= 300, 0}; });
  ASSERT_TRUE(r.best_qps.has_value());
  EXPECT_LE(*r.best_qps, 300);
  if (r.probes.size() < 20u) {
    EXPECT_GE(*r.best_qps, 300 * 0.95 - 0.01);
  }
}

TEST(MetronCapacitySearch, NothingPassesGivesNoCapacity) {
  CapacityResult r = metron_capacity_search({}, [](double) { return ProbeResult{false, 0}; });
  EXPECT_FALSE(r.best_qps.has_value());
  EXPECT_FALSE(r.probes.empty());
}

TEST(SarathiCapacitySearch, ConvergesOnAMonotoneOracle) {
  runtime::RngStream rng(6, 0);
  CapacitySearchConfig c;
  for (int trial = 0; trial < 2000; ++trial) {
    double q_star = 0.2 + 15 * rng.uniform();
    // Delay grows as the load approaches capacity, as a queue's does.
    auto probe = [&](double qps) {
      double delay = qps < q_star ? 0.05 / (1 - qps / q_star + 1e-9) : 1000;
      return ProbeResult{qps <= q_star, delay};
    };
    CapacityResult r = sarathi_capacity_search(c, probe);
    ASSERT_TRUE(r.best_qps.has_value()) << q_star;
    EXPECT_LE(*r.best_qps, q_star);
    if (r.probes.size() < 20u) {
      EXPECT_GE(*r.best_qps, q_star * 0.9 - 0.02) << q_star;
    }
  }
}

}  // namespace xp::serving
