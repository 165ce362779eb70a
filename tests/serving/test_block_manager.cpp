#include <gtest/gtest.h>

#include <set>

#include "serving/kv/block_manager.h"

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

}  // namespace xp::serving
