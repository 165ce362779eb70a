// Process groups on OpenMPI: the same checks as on threads, run by every rank of
// `mpirun -np 2|4` (CTest label mpi). Each rank is a gtest process; a failure on any rank fails
// the mpirun.
#include <gtest/gtest.h>

#include "core/dist/launch.h"
#include "tests/dist/group_checks.h"

namespace xp::dist {
namespace {

ProcessGroup& world() {
  static std::unique_ptr<ProcessGroup> w = mpi_world(Seconds(60));
  return *w;
}

TEST(MpiGroup, TheWorldIsTheLaunch) {
  const LaunchInfo l = detect_launch();
  ASSERT_GT(l.size, 1) << "run under mpirun -np 2 or more";
  EXPECT_EQ(world().size(), l.size);
  EXPECT_EQ(world().rank(), l.rank);
}
TEST(MpiGroup, AllGatherConcatenatesInRankOrder) { checks::all_gather_concatenates_in_rank_order(world()); }
TEST(MpiGroup, AllReduceSumsInRankOrderOnEveryRank) { checks::all_reduce_sums_in_rank_order_on_every_rank(world()); }
TEST(MpiGroup, BroadcastSendsRootsBytesOfAnyLength) { checks::broadcast_sends_roots_bytes_of_any_length(world()); }
TEST(MpiGroup, LargeBroadcastsAndGathersArrive) {
  std::vector<std::byte> big;
  if (world().rank() == 0) big.assign(8 << 20, std::byte{7});
  world().broadcast_bytes(big, 0);
  EXPECT_EQ(big.size(), 8u << 20);
  std::vector<float> v(1 << 20, static_cast<float>(world().rank()));
  world().all_reduce_sum(std::span<float>(v));
  EXPECT_EQ(v.back(), static_cast<float>(world().size() * (world().size() - 1) / 2));
}
TEST(MpiGroup, SendAndRecvAroundARing) { checks::send_and_recv_around_a_ring(world()); }
TEST(MpiGroup, LargeSendsDoNotWaitForTheirReceives) { checks::large_sends_do_not_wait_for_their_receives(world()); }
TEST(MpiGroup, SplitMakesGroupsOfTheSameColor) { checks::split_makes_groups_of_the_same_color(world()); }
TEST(MpiGroup, RankRegionsInSharedMemoryCarryEveryRanksPublishedBytes) {
  checks::rank_regions_carry_every_ranks_published_bytes(world(), RankRegions::Transport::kAuto);
}
TEST(MpiGroup, RankRegionsOverMessagesCarryEveryRanksPublishedBytes) {
  checks::rank_regions_carry_every_ranks_published_bytes(world(), RankRegions::Transport::kMessages);
}
TEST(MpiGroup, ALateRankIsNamedByTheTimeout) {
  auto late = world().split(0, "late", Seconds(0.3));
  checks::a_late_rank_is_named_by_the_timeout(world(), *late);
}

}  // namespace
}  // namespace xp::dist
