// Metron's metrics (docs/metrics.md): fluidity-index worked examples, fluid rate, metric plumbing.
#include <gtest/gtest.h>

#include "serving/metrics/metron.h"

namespace xp::serving {
namespace {

std::vector<double> concat(std::vector<double> a, double v, int n) {
  a.insert(a.end(), static_cast<size_t>(n), v);
  return a;
}

struct Example {
  std::vector<double> itt;
  int64_t missed, total;
};

}  // namespace

TEST(FluidityIndex, ReproducesTheWorkedExamples) {
  const double dp = 0.1, dd = 0.05;
  std::vector<Example> ex = {
      {concat({0.05}, 0.03, 10), 0, 11},
      {{0.1, 0.02, 0.02, 0.2, 0.02}, 2, 6},
      {{0.05, 0.03, 0.03, 0.26, 0.03}, 3, 7},
      {{0.35, 0.03, 0.03}, 5, 7},                              // (0.35 − 0.1)/0.05 floors to 4
      {concat({0, 0.02, 0.2}, 0.02, 18), 1, 21},                // early stall
      {concat(concat({0}, 0.02, 18), 0.2, 1), 0, 20},
  };
  ex.back().itt.push_back(0.02);
  ex.back().total = 21;                                        // late stall: slack absorbs it
  for (const auto& e : ex) {
    DeadlineMisses m = deadline_misses(e.itt, dp, dd);
    EXPECT_EQ(m.missed, e.missed);
    EXPECT_EQ(m.total, e.total);
  }
  EXPECT_NEAR(deadline_misses(ex[4].itt, dp, dd).fluidity_index(), 0.952, 5e-4);
  EXPECT_EQ(deadline_misses(ex[5].itt, dp, dd).fluidity_index(), 1.0);
}

TEST(FluidityIndex, PerfectStreamIsOneAndPowerOfTwoScalingChangesNothing) {
  std::vector<double> itt = {0.3, 0.07, 0.01, 0.4, 0.02, 0.09};
  DeadlineMisses base = deadline_misses(itt, 0.1, 0.05);
  for (double s : {0.25, 4.0, 1024.0}) {
    std::vector<double> scaled;
    for (double t : itt) scaled.push_back(t * s);
    DeadlineMisses m = deadline_misses(scaled, 0.1 * s, 0.05 * s);
    EXPECT_EQ(m.missed, base.missed);
    EXPECT_EQ(m.total, base.total);
  }
  EXPECT_EQ(deadline_misses(concat({0.01}, 0.01, 50), 0.1, 0.05).fluidity_index(), 1.0);
}

TEST(FluidRate, ConstantGapStreamGivesItsGap) {
  for (double g : {0.001, 0.02, 0.5}) {
    std::vector<double> tbts(200, g);
    double d = min_tbt_deadline(tbts);
    EXPECT_GE(d, g);
    EXPECT_LE(d, g + 2e-4);
  }
  EXPECT_NEAR(min_tbt_deadline(std::vector<double>(100, 0.02)), 0.020079, 1e-4);
}

// Worked examples from Metron's metric_utils.py (its functions run on these inputs; values as
// Python printed them): floor division as Python's, the bisection's bounds as Metron's.
TEST(MetronAgreement, FloorDivisionIsPythons) {
  EXPECT_EQ(python_floor_div(1.0, 0.1), 9.0);  // std::floor(1.0 / 0.1) is 10
  EXPECT_EQ(python_floor_div(0.3, 0.1), 2.0);
  EXPECT_EQ(python_floor_div(0.7, 0.1), 6.0);
  EXPECT_EQ(python_floor_div(-1.0, 0.3), -4.0);
  EXPECT_EQ(python_floor_div(6.0, 2.0), 3.0);
  // A stall of 1.0 s against a 0.1 s deadline misses 9 deadlines in Metron, not 10.
  DeadlineMisses m = deadline_misses({0.0, 1.0}, 0.0, 0.1, /*ignore_first=*/true);
  EXPECT_EQ(m.missed, 9);
  EXPECT_EQ(m.total, 9);
  m = deadline_misses({0.35, 0.3, 0.7}, 0.1, 0.1);  // 1 + 0.25 // 0.1, 0.3 // 0.1, 0.7 // 0.1
  EXPECT_EQ(m.missed, 11);
  EXPECT_EQ(m.total, 11);
}

TEST(MetronAgreement, MinimumTbtDeadlineIsMetronsBitForBit) {
  EXPECT_EQ(min_tbt_deadline({0.02, 0.03, 0.5, 0.02}), 0.18350424292041356);
  std::vector<double> steady(10, 0.05);
  steady.push_back(0.31);
  EXPECT_EQ(min_tbt_deadline(steady), 0.0675436684443629);
  EXPECT_EQ(min_tbt_deadline({0.012, 0.013, 0.011, 0.2, 0.014}), 0.05901715561524152);
}

TEST(MetronAgreement, TheMetricStoreVariantCountsTheTtftAgainstThePrefillDeadline) {
  const std::vector<double> itt = {0.3, 0.02, 0.03, 0.5, 0.02};
  // A first token later than its 0.25 s deadline is a miss no TBT deadline can undo.
  EXPECT_EQ(min_tbt_deadline_counting_ttft(itt, 0.25), 1e10);
  EXPECT_EQ(min_tbt_deadline_counting_ttft(itt, 0.35), 0.1667354343564748);
}

TEST(RequestMetrics, ComeFromInterTokenTimes) {
  std::vector<double> itt = inter_token_times(1.0, {1.5, 1.6, 1.8});
  ASSERT_EQ(itt.size(), 3u);
  EXPECT_DOUBLE_EQ(itt[0], 0.5);
  RequestLatency l = request_latency(itt);
  EXPECT_DOUBLE_EQ(l.ttft, 0.5);
  EXPECT_NEAR(l.tpot, 0.15, 1e-12);
  EXPECT_NEAR(l.e2e, 0.8, 1e-12);
  EXPECT_NEAR(l.normalized_e2e, 0.8 / 3, 1e-12);
  EXPECT_NEAR(l.decode_time_normalized, 0.3 / 3, 1e-12);  // Vidur: the decode time over all 3 tokens
  EXPECT_EQ(request_latency({}).ttft, 0.0);
}

TEST(RequestMetrics, BurstsExpandToZeroGaps) {
  EXPECT_EQ(expand_bursts({0.2, 0.05, 0.1}, {1, 3, 1}), (std::vector<double>{0.2, 0.05, 0, 0, 0.1}));
  EXPECT_THROW(expand_bursts({0.1}, {1, 2}), std::invalid_argument);
}

}  // namespace xp::serving
