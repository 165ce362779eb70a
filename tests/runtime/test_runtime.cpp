#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <csignal>
#include <set>

#include "core/runtime/check.h"
#include "core/runtime/files.h"
#include "core/runtime/progress.h"
#include "core/runtime/rng.h"
#include "core/runtime/signals.h"
#include "core/runtime/thread_pool.h"
#include "tests/support/temp_dir.h"

namespace xp::runtime {

// Known-answer vectors from Random123's kat_vectors (Philox4x32-10).
TEST(Philox, MatchesRandom123KnownAnswers) {
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (Philox4x32Ctr{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (Philox4x32Ctr{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (Philox4x32Ctr{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(RngStream, SameSeedAndStreamGiveSameNumbers) {
  RngStream a(42, 7), b(42, 7), c(42, 8), d(43, 7);
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    EXPECT_NE(x, c.next_u64());
    EXPECT_NE(x, d.next_u64());
  }
}

TEST(RngStream, SeekResumesExactly) {
  RngStream a(1, 2);
  for (int i = 0; i < 7; ++i) a.next_u32();  // mid-block
  uint64_t pos = a.position();
  EXPECT_EQ(pos, 7u);
  std::vector<uint32_t> rest;
  for (int i = 0; i < 10; ++i) rest.push_back(a.next_u32());
  RngStream b(1, 2);
  b.seek(pos);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b.next_u32(), rest[static_cast<size_t>(i)]);
}

TEST(RngStream, UniformAndBelowStayInRange) {
  RngStream r(5, 0);
  std::set<uint64_t> seen;
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    uint64_t k = r.below(6);
    ASSERT_LT(k, 6u);
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

TEST(RngStream, NormalHasUnitMoments) {
  RngStream r(9, 1);
  double s = 0, s2 = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    double x = r.normal();
    s += x;
    s2 += x * x;
  }
  EXPECT_NEAR(s / n, 0.0, 0.03);
  EXPECT_NEAR(s2 / n, 1.0, 0.05);
}

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(hits.size(), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) hits[i]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPool, RangesDependOnlyOnSizeAndThreads) {
  ThreadPool pool(4);
  std::mutex m;
  std::vector<std::pair<size_t, size_t>> ranges;
  pool.parallel_for(10, [&](size_t b, size_t e) {
    std::lock_guard<std::mutex> lock(m);
    ranges.emplace_back(b, e);
  });
  std::sort(ranges.begin(), ranges.end());
  EXPECT_EQ(ranges, (std::vector<std::pair<size_t, size_t>>{{0, 2}, {2, 5}, {5, 7}, {7, 10}}));
}

TEST(ThreadPool, RethrowsTheFirstException) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(4, [](size_t b, size_t) {
    if (b == 0) throw std::runtime_error("boom");
  }),
               std::runtime_error);
}

TEST(Signals, HandlerOnlySetsTheFlag) {
  clear_stop_request();
  install_stop_handlers(SIGUSR1);
  EXPECT_FALSE(stop_requested());
  std::raise(SIGUSR1);
  EXPECT_TRUE(stop_requested());
  EXPECT_EQ(stop_signal(), SIGUSR1);
  clear_stop_request();
  std::raise(SIGTERM);
  EXPECT_EQ(stop_signal(), SIGTERM);
  clear_stop_request();
}

TEST(Progress, LineShowsFractionAndCount) {
  Progress p("train", 200, 1e9);
  p.set(50);
  std::string line = p.line();
  EXPECT_NE(line.find("train"), std::string::npos);
  EXPECT_NE(line.find(" 25%"), std::string::npos) << line;
  EXPECT_NE(line.find("50/200"), std::string::npos);
  p.finish();
}

TEST(Files, AtomicWriteReplacesWholeFile) {
  testing::TempDir d;
  ASSERT_NO_THROW(write_file_atomic(d / "f.txt", "first"));
  ASSERT_NO_THROW(write_file_atomic(d / "f.txt", "second"));
  EXPECT_EQ(read_file(d / "f.txt"), "second");
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(d.path())) n += e.is_regular_file();
  EXPECT_EQ(n, 1u);  // no temp file left behind
  EXPECT_THROW(write_file_atomic(d / "missing-dir" / "f.txt", "x"), IoError);
  EXPECT_THROW(read_file(d / "missing.txt"), IoError);
}

TEST(Check, FailureCarriesFileLineAndHint) {
  try {
    EXP_CHECK(1 + 1 == 3, "arithmetic is {}", "broken");
    FAIL();
  } catch (const CheckError& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("test_runtime.cpp"), std::string::npos);
    EXPECT_NE(w.find("arithmetic is broken"), std::string::npos);
  }
}

}  // namespace xp::runtime
