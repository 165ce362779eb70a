// The configuration search (docs/dynaquant.md): on synthetic monotone quality functions the
// guided search returns the exhaustive optimum with fewer evaluations, and the neighbourhood
// search never picks a configuration more aggressive than the previous one; checked in parallel,
// both find what they find one check at a time.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "compression/search.h"
#include "core/runtime/rng.h"

namespace xp::compression {
namespace {

// quality = Σ w_a·index_a (+ a bonus for one metric), feasible above a threshold; ratio falls
// along every axis. Both monotone, as the search assumes.
struct Synthetic {
  std::array<double, 3> w;
  double metric_bonus, threshold;
  SearchOracle oracle() const {
    return {[](const CubePoint& p) {
              return 1000.0 / ((1 + p.index[0]) * (1.5 + p.index[1]) * (1.2 + p.index[2])) +
                     (p.metric == PruneMetric::kSensitivity ? 0.01 : 0.0);
            },
            [this](const CubePoint& p) {
              double q = metric_bonus * (p.metric == PruneMetric::kSensitivity);
              for (int a = 0; a < 3; ++a) q += w[static_cast<size_t>(a)] * p.index[static_cast<size_t>(a)];
              return q >= threshold;
            }};
  }
};

Synthetic random_synthetic(uint64_t i) {
  runtime::RngStream rng(31, i);
  return {{rng.uniform(), rng.uniform(), rng.uniform()}, rng.uniform() - 0.5, rng.uniform() * 8};
}

TEST(SearchTest, GuidedSearchFindsTheExhaustiveOptimumWithFewerEvaluations) {
  ConfigCube cube;
  int guided_total = 0, exhaustive_total = 0;
  for (uint64_t i = 0; i < 300; ++i) {
    Synthetic s = random_synthetic(i);
    auto oracle = s.oracle();
    SearchResult g = guided_search(cube, oracle), e = exhaustive_search(cube, oracle);
    ASSERT_EQ(g.best.has_value(), e.best.has_value()) << i;
    if (e.best) {
      EXPECT_DOUBLE_EQ(g.ratio, e.ratio) << i;
    }
    guided_total += g.evaluations;
    exhaustive_total += e.evaluations;
  }
  RecordProperty("mean_guided_evaluations", std::to_string(guided_total / 300.0));
  RecordProperty("exhaustive_evaluations", std::to_string(exhaustive_total / 300.0));
  std::printf("guided search: %.1f evaluations on average, exhaustive: %.0f\n", guided_total / 300.0,
              exhaustive_total / 300.0);
  EXPECT_EQ(exhaustive_total, 300 * 216);
  EXPECT_LT(guided_total, exhaustive_total / 3);
}

TEST(SearchTest, NeighbourhoodNeverPicksAMoreAggressiveConfiguration) {
  ConfigCube cube;
  for (uint64_t i = 0; i < 300; ++i) {
    Synthetic s = random_synthetic(1000 + i);
    auto oracle = s.oracle();
    runtime::RngStream rng(32, i);
    CubePoint previous{{static_cast<int>(rng.below(6)), static_cast<int>(rng.below(6)), static_cast<int>(rng.below(3))},
                       PruneMetric::kMagnitude};
    SearchResult r = neighbourhood_search(cube, oracle, previous);
    if (!r.best) continue;
    for (int a = 0; a < 3; ++a) EXPECT_GE(r.best->index[static_cast<size_t>(a)], previous.index[static_cast<size_t>(a)]) << i;
    EXPECT_TRUE(oracle.feasible(*r.best));
  }
}

TEST(SearchTest, NeighbourhoodKeepsAFeasiblePreviousPointCheaply) {
  ConfigCube cube;
  Synthetic s{{1, 1, 1}, 0, 0};  // everything feasible
  auto oracle = s.oracle();
  CubePoint previous{{2, 2, 1}, PruneMetric::kMagnitude};
  SearchResult r = neighbourhood_search(cube, oracle, previous);
  ASSERT_TRUE(r.best);
  EXPECT_EQ(*r.best, previous);  // the most compressive candidate that is not more aggressive
  EXPECT_LE(r.evaluations, 2);
}

TEST(SearchTest, ParallelChecksFindTheSameOptimumWithTheSameEvaluations) {
  ConfigCube cube;
  for (uint64_t i = 0; i < 100; ++i) {
    Synthetic s = random_synthetic(2000 + i);
    auto sequential = s.oracle(), parallel = s.oracle();
    parallel.parallel = 4;
    SearchResult a = guided_search(cube, sequential), b = guided_search(cube, parallel);
    ASSERT_EQ(a.best.has_value(), b.best.has_value()) << i;
    if (a.best) {
      EXPECT_EQ(*a.best, *b.best) << i;
    }
    EXPECT_EQ(a.evaluations, b.evaluations) << i;
    CubePoint previous{{1, 2, 0}, PruneMetric::kMagnitude};
    SearchResult n1 = neighbourhood_search(cube, sequential, previous), n4 = neighbourhood_search(cube, parallel, previous);
    ASSERT_EQ(n1.best.has_value(), n4.best.has_value()) << i;
    if (n1.best) {
      EXPECT_EQ(*n1.best, *n4.best) << i;
    }
  }
}

TEST(SearchTest, ParallelChecksOverlap) {
  ConfigCube cube;
  std::atomic<int> running{0}, most{0};
  const Synthetic s = random_synthetic(7);  // the oracle refers to it
  SearchOracle oracle = s.oracle();
  auto feasible = oracle.feasible;
  oracle.feasible = [&](const CubePoint& p) {
    const int now = ++running;
    for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a model evaluation's worth of waiting
    --running;
    return feasible(p);
  };
  oracle.parallel = 4;
  guided_search(cube, oracle);
  EXPECT_GE(most.load(), 2);
}

TEST(SearchTest, AnOracleErrorInAParallelCheckReachesTheCaller) {
  ConfigCube cube;
  const Synthetic s = random_synthetic(8);
  SearchOracle oracle = s.oracle();
  oracle.feasible = [](const CubePoint& p) -> bool {
    if (p.metric == PruneMetric::kSensitivity) throw std::runtime_error("evaluation failed");
    return true;
  };
  oracle.parallel = 4;
  EXPECT_THROW(guided_search(cube, oracle), std::runtime_error);
}

}  // namespace
}  // namespace xp::compression
