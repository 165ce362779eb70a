// Behaviours every ProcessGroup backend must show, written once over the interface and run on
// each backend: on threads (test_dist.cpp) and under mpirun -np 2 and 4 (test_dist_mpi.cpp).
#pragma once
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <filesystem>
#include <string>
#include <unistd.h>

#include "core/dist/process_group.h"
#include "core/dist/rank_regions.h"

namespace xp::dist::checks {

inline void all_gather_concatenates_in_rank_order(ProcessGroup& g) {
  const int mine[2] = {g.rank() * 10, g.rank() * 10 + 1};
  std::vector<int> all = g.all_gather(std::span<const int>(mine, 2));
  ASSERT_EQ(all.size(), static_cast<size_t>(2 * g.size()));
  for (int r = 0; r < g.size(); ++r) {
    EXPECT_EQ(all[static_cast<size_t>(2 * r)], r * 10);
    EXPECT_EQ(all[static_cast<size_t>(2 * r + 1)], r * 10 + 1);
  }
}

// Float addition is not associative: 1e8 + 1 − 1e8 depends on the order. Every rank must hold
// the sum taken in rank order, bit for bit.
inline void all_reduce_sums_in_rank_order_on_every_rank(ProcessGroup& g) {
  std::vector<float> v = {g.rank() % 2 ? -1e8f : 1e8f, static_cast<float>(g.rank()) + 0.1f, 1.0f / (g.rank() + 3.0f)};
  std::vector<float> expect(v.size(), 0.0f);
  for (int r = 0; r < g.size(); ++r) {
    const float c[3] = {r % 2 ? -1e8f : 1e8f, static_cast<float>(r) + 0.1f, 1.0f / (r + 3.0f)};
    for (size_t i = 0; i < 3; ++i) expect[i] = r == 0 ? c[i] : expect[i] + c[i];
  }
  g.all_reduce_sum(std::span<float>(v));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(std::memcmp(&v[i], &expect[i], sizeof(float)), 0) << "element " << i;
  std::vector<double> m = {static_cast<double>(g.rank()), -static_cast<double>(g.rank())};
  g.all_reduce_max(std::span<double>(m));
  EXPECT_EQ(m[0], g.size() - 1);
  EXPECT_EQ(m[1], 0.0);
}

inline void broadcast_sends_roots_bytes_of_any_length(ProcessGroup& g) {
  const int root = g.size() - 1;
  std::vector<std::byte> data;
  if (g.rank() == root) data.assign(1000 + 7, std::byte{42});
  else data.assign(3, std::byte{1});
  g.broadcast_bytes(data, root);
  EXPECT_EQ(data.size(), 1007u);
  EXPECT_EQ(data.back(), std::byte{42});
}

inline void send_and_recv_around_a_ring(ProcessGroup& g) {
  const int next = (g.rank() + 1) % g.size(), prev = (g.rank() + g.size() - 1) % g.size();
  for (int round = 0; round < 3; ++round) {
    const int msg[2] = {g.rank(), round};
    g.send_bytes(std::as_bytes(std::span<const int>(msg, 2)), next);
    std::vector<std::byte> got = g.recv_bytes(prev);
    ASSERT_EQ(got.size(), sizeof msg);
    int back[2];
    std::memcpy(back, got.data(), sizeof back);
    EXPECT_EQ(back[0], prev);
    EXPECT_EQ(back[1], round);  // in order between a pair
  }
}

// Every rank sends 4 MB to the next before receiving from the previous (past any eager limit):
// the sends are buffered, so this neither deadlocks nor times out (not on NCCL, whose sends wait).
inline void large_sends_do_not_wait_for_their_receives(ProcessGroup& g) {
  const int next = (g.rank() + 1) % g.size(), prev = (g.rank() + g.size() - 1) % g.size();
  std::vector<int> big(1 << 20, g.rank());
  g.send_bytes(std::as_bytes(std::span<const int>(big)), next);
  big.assign(big.size(), -1);  // the send took a copy
  std::vector<std::byte> got = g.recv_bytes(prev);
  ASSERT_EQ(got.size(), big.size() * sizeof(int));
  int first = 0;
  std::memcpy(&first, got.data(), sizeof first);
  EXPECT_EQ(first, prev);
}

inline void split_makes_groups_of_the_same_color(ProcessGroup& g) {
  auto sub = g.split(g.rank() % 2, "parity");
  EXPECT_EQ(sub->size(), (g.size() + 1 - g.rank() % 2) / 2);
  EXPECT_EQ(sub->rank(), g.rank() / 2);
  const int mine = g.rank();
  std::vector<int> all = sub->all_gather(std::span<const int>(&mine, 1));
  for (int i = 0; i < sub->size(); ++i) EXPECT_EQ(all[static_cast<size_t>(i)], 2 * i + g.rank() % 2);
  EXPECT_NE(sub->name().find("parity"), std::string::npos);
}

// Rank 1 comes late to a collective: the others' calls end, within their timeout, with an error
// naming the group and rank 1 — and only rank 1. Rank 1 then completes it (its peers' messages
// are posted), so the group stays usable for the barrier after.
inline void a_late_rank_is_named_by_the_timeout(ProcessGroup& g, ProcessGroup& late_group) {
  const int mine = g.rank();
  if (g.rank() == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    if (late_group.name().find("threads") == std::string::npos) late_group.all_gather(std::span<const int>(&mine, 1));
  } else {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      late_group.all_gather(std::span<const int>(&mine, 1));
      ADD_FAILURE() << "the collective completed without rank 1";
    } catch (const CollectiveError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("timed out"), std::string::npos) << what;
      EXPECT_NE(what.find("waiting for rank 1"), std::string::npos) << what;
      EXPECT_EQ(what.find("rank 2,"), std::string::npos) << what;
      EXPECT_NE(what.find("late"), std::string::npos) << what;  // the group's name
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.4);
  }
  g.barrier();
}

// Rank regions: every rank reads what each rank published, round after round, in two areas; the
// ranks of one machine share memory (kAuto) unless messages are asked for, and the segment's name
// is gone from /dev/shm once they are set up. Rank 0 reads each round late, so a rank that wrote
// its next round's bytes before every rank had read the last (writable() not waiting) is caught.
inline void rank_regions_carry_every_ranks_published_bytes(ProcessGroup& g, RankRegions::Transport transport) {
  constexpr size_t kArea = 1000;  // not a multiple of the cache line
  RankRegions regions(g, 2 * kArea, transport);
  EXPECT_EQ(regions.shared(), transport == RankRegions::Transport::kAuto && g.size() > 1);
  if (g.rank() == 0) {
    const std::string mine = fmt::format("exp-regions-{}-", getpid());
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
      EXPECT_NE(entry.path().filename().string().rfind(mine, 0), 0u) << entry.path() << " left in /dev/shm";
  }
  for (int round = 0; round < 6; ++round) {
    const size_t area = static_cast<size_t>(round % 3 == 2) * kArea;  // area 0 twice in a row, then area 1
    std::byte* out = regions.writable(area, kArea);
    for (size_t i = 0; i < kArea; ++i) out[i] = static_cast<std::byte>(g.rank() * 31 + round * 7 + static_cast<int>(i % 13));
    regions.publish(area, kArea);
    if (g.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (int r = 0; r < g.size(); ++r)
      for (size_t i = 0; i < kArea; i += 97)
        ASSERT_EQ(regions.of(r)[area + i], static_cast<std::byte>(r * 31 + round * 7 + static_cast<int>(i % 13)))
            << "rank " << r << ", round " << round << ", byte " << i;
  }
  EXPECT_THROW(regions.publish(kArea, kArea + 1), std::out_of_range);
}

}  // namespace xp::dist::checks
