// Process groups on the thread backend: the shared checks, plus what only threads can show
// (a failing rank aborts its peers at once).
#include <gtest/gtest.h>

#include "core/dist/launch.h"
#include "core/dist/thread_group.h"
#include "tests/dist/group_checks.h"

namespace xp::dist {
namespace {

void on_threads(int n, void (*check)(ProcessGroup&)) {
  run_threads(n, Seconds(20), [&](ProcessGroup& g) { check(g); });
}

class ThreadGroups : public ::testing::TestWithParam<int> {};

TEST_P(ThreadGroups, AllGatherConcatenatesInRankOrder) { on_threads(GetParam(), checks::all_gather_concatenates_in_rank_order); }
TEST_P(ThreadGroups, AllReduceSumsInRankOrderOnEveryRank) {
  on_threads(GetParam(), checks::all_reduce_sums_in_rank_order_on_every_rank);
}
TEST_P(ThreadGroups, BroadcastSendsRootsBytesOfAnyLength) { on_threads(GetParam(), checks::broadcast_sends_roots_bytes_of_any_length); }
TEST_P(ThreadGroups, SendAndRecvAroundARing) { on_threads(GetParam(), checks::send_and_recv_around_a_ring); }
TEST_P(ThreadGroups, LargeSendsDoNotWaitForTheirReceives) {
  on_threads(GetParam(), checks::large_sends_do_not_wait_for_their_receives);
}
TEST_P(ThreadGroups, SplitMakesGroupsOfTheSameColor) { on_threads(GetParam(), checks::split_makes_groups_of_the_same_color); }

TEST_P(ThreadGroups, RankRegionsInSharedMemoryCarryEveryRanksPublishedBytes) {
  run_threads(GetParam(), Seconds(20), [](ProcessGroup& g) {
    checks::rank_regions_carry_every_ranks_published_bytes(g, RankRegions::Transport::kAuto);
  });
}
TEST_P(ThreadGroups, RankRegionsOverMessagesCarryEveryRanksPublishedBytes) {
  run_threads(GetParam(), Seconds(20), [](ProcessGroup& g) {
    checks::rank_regions_carry_every_ranks_published_bytes(g, RankRegions::Transport::kMessages);
  });
}

INSTANTIATE_TEST_SUITE_P(Sizes, ThreadGroups, ::testing::Values(1, 2, 3, 4));

TEST(ThreadGroup, ALateRankIsNamedByTheTimeout) {
  run_threads(3, Seconds(20), [](ProcessGroup& g) {
    auto late = g.split(0, "late", Seconds(0.3));
    checks::a_late_rank_is_named_by_the_timeout(g, *late);
  });
}

TEST(ThreadGroup, ARankThatThrowsEndsItsPeersCollectivesAtOnceNamingIt) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    run_threads(3, Seconds(30), [](ProcessGroup& g) {
      if (g.rank() == 2) throw std::runtime_error("out of memory");
      g.barrier();
    });
    FAIL() << "no error";
  } catch (const CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 2 failed: out of memory"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5);
}

TEST(Launch, AProcessStartedAloneIsNotALaunchOfSeveral) {
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("PMI_SIZE");
  ::setenv("SLURM_PROCID", "0", 1);
  ::setenv("SLURM_STEP_NUM_TASKS", "1", 1);  // a batch script's own step
  EXPECT_EQ(detect_launch().size, 1);
  ::setenv("SLURM_STEP_NUM_TASKS", "4", 1);
  ::setenv("SLURM_PROCID", "3", 1);
  LaunchInfo l = detect_launch();
  EXPECT_EQ(l.size, 4);
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.launcher, "srun");
  ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  ::setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  l = detect_launch();
  EXPECT_EQ(l.launcher, "mpirun");
  EXPECT_EQ(l.rank, 1);
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS"}) ::unsetenv(v);
}

}  // namespace
}  // namespace xp::dist
