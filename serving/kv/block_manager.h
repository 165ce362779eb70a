// Paged KV-cache block manager (docs/scheduling.md, "The paged KV cache"): fixed-size blocks
// from a free list, a block table per sequence, a watermark kept free at admission. The scheduler decides how many
// blocks an admission reserves (whole prompt, or max_model_len for Orca/FasterTransformer);
// the engine uses the block tables to address its paged KV cache. Not thread-safe.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace xp::serving {

class BlockManager {
 public:
  BlockManager(int64_t num_blocks, int64_t block_size, double watermark_fraction);

  int64_t blocks_for(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  // Admission: `blocks` fit and leave the watermark free.
  bool can_allocate(int64_t blocks) const { return num_free() - blocks >= watermark_blocks_; }
  void allocate(uint64_t seq, int64_t blocks);
  // Reference rule: appending needs a whole free block, even when the last block has room.
  bool can_append_slot() const { return num_free() > 0; }
  // Grows the table to hold `seq_len` tokens (at most one block per call in practice).
  void append_slot(uint64_t seq, int64_t seq_len);
  void free(uint64_t seq);

  const std::vector<int32_t>& table(uint64_t seq) const;
  bool has(uint64_t seq) const { return tables_.count(seq) > 0; }
  int64_t num_free() const { return static_cast<int64_t>(free_list_.size()); }
  int64_t num_total() const { return num_blocks_; }
  int64_t num_used() const { return num_blocks_ - num_free(); }
  int64_t watermark_blocks() const { return watermark_blocks_; }
  int64_t block_size() const { return block_size_; }

 private:
  int64_t num_blocks_, block_size_, watermark_blocks_;
  std::vector<int32_t> free_list_;  // a stack: recently freed blocks are reused first
  std::unordered_map<uint64_t, std::vector<int32_t>> tables_;
};

}  // namespace xp::serving
