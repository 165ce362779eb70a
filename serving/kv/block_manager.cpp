#include "serving/kv/block_manager.h"

#include <cmath>

#include "core/runtime/check.h"

namespace xp::serving {

BlockManager::BlockManager(int64_t num_blocks, int64_t block_size, double watermark_fraction)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      watermark_blocks_(static_cast<int64_t>(std::floor(watermark_fraction * static_cast<double>(num_blocks)))) {
  EXP_CHECK(num_blocks >= 0 && block_size > 0, "bad KV cache geometry: {} blocks of {} tokens", num_blocks, block_size);
  free_list_.reserve(static_cast<size_t>(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_list_.push_back(static_cast<int32_t>(b));
}

void BlockManager::allocate(uint64_t seq, int64_t blocks) {
  EXP_CHECK(blocks <= num_free(), "allocating {} blocks with {} free", blocks, num_free());
  auto& t = tables_[seq];
  for (int64_t i = 0; i < blocks; ++i) {
    t.push_back(free_list_.back());
    free_list_.pop_back();
  }
}

void BlockManager::append_slot(uint64_t seq, int64_t seq_len) {
  auto& t = tables_[seq];
  while (static_cast<int64_t>(t.size()) < blocks_for(seq_len)) {
    EXP_CHECK(!free_list_.empty(), "append_slot with no free block (check can_append_slot first)");
    t.push_back(free_list_.back());
    free_list_.pop_back();
  }
}

void BlockManager::free(uint64_t seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) free_list_.push_back(*b);
  tables_.erase(it);
}

const std::vector<int32_t>& BlockManager::table(uint64_t seq) const {
  static const std::vector<int32_t> kEmpty;
  auto it = tables_.find(seq);
  return it == tables_.end() ? kEmpty : it->second;
}

}  // namespace xp::serving
