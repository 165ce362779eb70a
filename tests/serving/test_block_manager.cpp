#include <gtest/gtest.h>

#include <set>

#include "serving/kv/block_manager.h"
#include "serving/kv/kv_groups.h"

namespace xp::serving {

TEST(BlockManager, WatermarkIsOnePercentRoundedDown) {
  EXPECT_EQ(BlockManager(1000, 16, 0.01).watermark_blocks(), 10);
  EXPECT_EQ(BlockManager(99, 16, 0.01).watermark_blocks(), 0);
}

TEST(BlockManager, AdmissionKeepsTheWatermarkFree) {
  BlockManager m(100, 16, 0.01);  // watermark 1 block
  EXPECT_TRUE(m.can_allocate(99));
  EXPECT_FALSE(m.can_allocate(100));
  m.allocate(1, 99);
  EXPECT_EQ(m.num_free(), 1);
  EXPECT_TRUE(m.can_append_slot());
}

TEST(BlockManager, AppendGrowsOnlyAtBlockBoundaries) {
  BlockManager m(10, 16, 0.0);
  m.allocate(7, m.blocks_for(16));
  EXPECT_EQ(m.table(7).size(), 1u);
  m.append_slot(7, 16);
  EXPECT_EQ(m.table(7).size(), 1u);
  m.append_slot(7, 17);
  EXPECT_EQ(m.table(7).size(), 2u);
}

TEST(BlockManager, TablesNeverShareBlocksAndFreeReturnsAll) {
  BlockManager m(8, 4, 0.0);
  m.allocate(1, 3);
  m.allocate(2, 5);
  std::set<int32_t> all(m.table(1).begin(), m.table(1).end());
  all.insert(m.table(2).begin(), m.table(2).end());
  EXPECT_EQ(all.size(), 8u);
  EXPECT_FALSE(m.can_append_slot());
  m.free(1);
  m.free(2);
  EXPECT_EQ(m.num_free(), 8);
  EXPECT_TRUE(m.table(1).empty());
}

// KV parallelism: a request's KV split along the sequence, 64 tokens (4 blocks) per group here;
// its groups chosen at admission, full shares first and the remainder's group last.
TEST(KvGroups, SplitsARequestIntoWholeGroupsAndARemainder) {
  KvGroups kv(4, 10, 16, 0.0, 64);
  EXPECT_EQ(kv.groups_for(64), 1);
  EXPECT_EQ(kv.groups_for(65), 2);
  kv.allocate(1, kv.blocks_for(150), 150);  // 10 blocks: 4 + 4 + 2
  const auto& g = kv.groups(1);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(kv.group(g[0]).table(1).size(), 4u);
  EXPECT_EQ(kv.group(g[1]).table(1).size(), 4u);
  EXPECT_EQ(kv.group(g[2]).table(1).size(), 2u);
  EXPECT_EQ(kv.num_used(), 10);
  // New tokens go to the last group: 160 fits its 2 blocks, 161 takes a third there.
  EXPECT_TRUE(kv.has_room(1, 160));
  EXPECT_FALSE(kv.has_room(1, 161));
  kv.append_slot(1, 161);
  EXPECT_EQ(kv.group(g[2]).table(1).size(), 3u);
  kv.free(1);
  EXPECT_EQ(kv.num_free(), 40);
}

TEST(KvGroups, RefusesWhatNoPlacementHoldsAndPlacesShortRequestsApart) {
  KvGroups kv(2, 6, 16, 0.0, 64);
  EXPECT_FALSE(kv.can_allocate(kv.blocks_for(64 * 2 + 1)));  // needs 3 groups of 2
  // Short requests each take one group, the one with the least prefill work pending.
  kv.allocate(1, 4, 64);
  kv.allocate(2, 4, 64);
  EXPECT_NE(kv.groups(1).front(), kv.groups(2).front());
  // Each group has 2 blocks left: a 5-block request (4 + 1) finds no group with room for 4.
  EXPECT_FALSE(kv.can_allocate(5));
  EXPECT_TRUE(kv.can_allocate(2));
}

TEST(KvGroups, PendingPrefillWorkSteersPlacement) {
  KvGroups kv(2, 100, 16, 0.0, 64);
  kv.allocate(1, 4, 64);  // group 0: 64² of prefill work pending
  EXPECT_EQ(kv.groups(1).front(), 0);
  kv.allocate(2, 2, 32);  // the idle group
  EXPECT_EQ(kv.groups(2).front(), 1);
  kv.on_prefill_progress(1, 0, 64);  // request 1's prompt is done: group 0 has nothing pending
  kv.allocate(3, 1, 16);
  EXPECT_EQ(kv.groups(3).front(), 0);
}

TEST(KvGroups, OneGroupIsThePlainPagedCache) {
  KvGroups kv(1, 100, 16, 0.01);
  BlockManager m(100, 16, 0.01);
  EXPECT_EQ(kv.watermark_blocks(), m.watermark_blocks());
  kv.allocate(1, 99, 1584);
  m.allocate(1, 99);
  EXPECT_EQ(kv.table(1), m.table(1));
  EXPECT_EQ(kv.can_append_slot(1), m.can_append_slot());
}

}  // namespace xp::serving
