#include <gtest/gtest.h>

#include <cmath>

#include "serving/workload/workload.h"
#include "tests/support/temp_dir.h"

namespace xp::serving {

TEST(Workload, ClippingTrimsPromptAndOutputInProportionAsVidur) {
  // 5100 − 4096 = 1004 over: the prompt gives ceil(1004 · 5000/5100) = 985, the output ceil(19.7) = 20.
  EXPECT_EQ(clip_lengths(5000, 100, 4096), (std::pair<int64_t, int64_t>{4015, 80}));
  EXPECT_EQ(clip_lengths(3000, 2000, 4096), (std::pair<int64_t, int64_t>{2457, 1638}));  // 904 over: 543 + 362
  EXPECT_EQ(clip_lengths(10, 20, 4096), (std::pair<int64_t, int64_t>{10, 20}));
  EXPECT_EQ(clip_lengths(5000, 1, 4096), (std::pair<int64_t, int64_t>{4095, 1}));  // at least one output token
  for (auto [p, d] : {std::pair<int64_t, int64_t>{9000, 7}, {1, 9000}, {4096, 4096}}) {
    auto [cp, cd] = clip_lengths(p, d, 4096);
    EXPECT_LE(cp + cd, 4096);
    EXPECT_GE(cp, 1);
    EXPECT_GE(cd, 1);
  }
}

TEST(Workload, PoissonHasTheMeanGapAndIsClippedAtThreeMeans) {
  WorkloadConfig w;
  w.num_requests = 20000;
  w.lengths = "fixed";
  w.qps = 4;
  RequestGenerator g(w, 7);
  double prev = 0, max_gap = 0, last = 0;
  int n = 0;
  while (auto r = g.next()) {
    max_gap = std::max(max_gap, r->arrival_s - prev);
    prev = last = r->arrival_s;
    ++n;
  }
  EXPECT_EQ(n, 20000);
  EXPECT_NEAR(last / (n - 1), 0.25 * (1 - std::exp(-3.0)), 0.01);  // E[min(X, 3/λ)] = (1 − e^-3)/λ
  EXPECT_LE(max_gap, 0.75 + 1e-12);
}

TEST(Workload, GammaArrivalsKeepTheMeanAndCv) {
  WorkloadConfig w;
  w.num_requests = 20000;
  w.lengths = "fixed";
  w.arrivals = "gamma";
  w.qps = 2;
  w.cv = 0.5;
  RequestGenerator g(w, 3);
  std::vector<double> gaps;
  double prev = 0;
  while (auto r = g.next()) {
    if (r->id) gaps.push_back(r->arrival_s - prev);
    prev = r->arrival_s;
  }
  double m = 0, v = 0;
  for (double x : gaps) m += x / static_cast<double>(gaps.size());
  for (double x : gaps) v += (x - m) * (x - m) / static_cast<double>(gaps.size());
  EXPECT_NEAR(m, 0.5, 0.02);
  EXPECT_NEAR(std::sqrt(v) / m, 0.5, 0.03);
}

TEST(Workload, ZipfAndUniformLengthsStayInRange) {
  for (std::string kind : {"zipf", "uniform"}) {
    WorkloadConfig w;
    w.num_requests = 2000;
    w.lengths = kind;
    w.min_tokens = 64;
    w.max_tokens = 2048;
    w.arrivals = "static";
    RequestGenerator g(w, 1);
    while (auto r = g.next()) {
      EXPECT_EQ(r->arrival_s, 0);
      EXPECT_GE(r->prompt_tokens + r->decode_tokens, 2);
      EXPECT_LE(r->prompt_tokens + r->decode_tokens, 2048);
    }
  }
}

TEST(Workload, TraceReplayUsesArrivalsAndLengths) {
  testing::TempDir d;
  d.write("t.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,100,10\n1.5,200,20\n3.0,300,30\n");
  WorkloadConfig w;
  w.num_requests = 10;
  w.trace_file = (d / "t.csv").string();
  w.arrivals = "trace";
  w.time_scale = 2;
  RequestGenerator g(w, 1);
  std::vector<Request> all;
  while (auto r = g.next()) all.push_back(*r);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].arrival_s, 3.0);
  EXPECT_EQ(all[2].prompt_tokens, 300);
}

TEST(Workload, BadTraceRowsNameFileAndLine) {
  testing::TempDir d;

  d.write("bad.csv", "num_prefill_tokens,num_decode_tokens\n100,10\n-5,3\n");
  WorkloadConfig w;
  w.trace_file = (d / "bad.csv").string();
  try {
    RequestGenerator g(w, 1);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv:3: token counts must be positive integers"), std::string::npos)
        << e.what();
  }
  d.write("ragged.csv", "num_prefill_tokens,num_decode_tokens\n100\n");
  w.trace_file = (d / "ragged.csv").string();
  EXPECT_THROW(RequestGenerator(w, 1), std::runtime_error);
  d.write("cols.csv", "prompt,decode\n1,2\n");
  w.trace_file = (d / "cols.csv").string();
  try {
    RequestGenerator g(w, 1);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no column 'num_prefill_tokens'"), std::string::npos);
  }
}

}  // namespace xp::serving
