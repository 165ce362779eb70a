// A replica's KV cache over its KV-parallel groups (Mnemosyne's KVP, docs/mnemosyne.md). Each
// group is a paged BlockManager of its own (one GPU's cache, per pipeline stage). A sequence's KV
// is split contiguously along the sequence: its first `tokens_per_group` tokens in one group, the
// next in another, and so on; the last group holds the remainder and every token appended later.
// All of a sequence's groups are chosen, and its blocks reserved, at admission (growing one group
// at a time can deadlock two long requests that each wait for the other's group): first fit over
// the groups ordered by pending prefill work (Σ of prompt² still to prefill, the reference's proxy).
// With one group this is exactly the plain paged cache. Not thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "serving/kv/block_manager.h"

namespace xp::serving {

class KvGroups {
 public:
  // `tokens_per_group` matters only with more than one group (a multiple of block_size).
  KvGroups(int64_t groups, int64_t blocks_per_group, int64_t block_size, double watermark_fraction,
           int64_t tokens_per_group = 0);

  int64_t num_groups() const { return static_cast<int64_t>(groups_.size()); }
  int64_t tokens_per_group() const { return tokens_per_group_; }
  int64_t blocks_for(int64_t tokens) const { return groups_[0].blocks_for(tokens); }
  // Groups a sequence of `tokens` is split over (1 with one group).
  int64_t groups_for(int64_t tokens) const;

  // Admission: `blocks` can be placed, each group keeping its watermark free.
  bool can_allocate(int64_t blocks) const { return !placement(blocks).empty(); }
  // The groups an allocation of `blocks` would take now, in sequence order (the full shares first,
  // the remainder's group last), or empty when they do not fit.
  std::vector<int32_t> placement(int64_t blocks) const;
  // Reserves `blocks` for `seq`; `prompt_tokens` weighs the groups' pending prefill work.
  void allocate(uint64_t seq, int64_t blocks, int64_t prompt_tokens);
  // Reference rule for a decode's slot: a whole free block in the group that takes new tokens.
  bool can_append_slot(uint64_t seq) const;
  // The sequence's last block still has room for its `seq_len`-th token.
  bool has_room(uint64_t seq, int64_t seq_len) const;
  // Grows the last group's table to hold a sequence of `seq_len` tokens.
  void append_slot(uint64_t seq, int64_t seq_len);
  // Prefill progress (prompt tokens processed before and after a chunk) lowers the pending work.
  void on_prefill_progress(uint64_t seq, int64_t before, int64_t after);
  void free(uint64_t seq);

  // The groups holding `seq`, in sequence order (empty if it holds none).
  const std::vector<int32_t>& groups(uint64_t seq) const;
  // The block table of `seq` in its only group (one-group caches: what the engine addresses).
  const std::vector<int32_t>& table(uint64_t seq) const;
  const BlockManager& group(int64_t g) const { return groups_[static_cast<size_t>(g)]; }

  int64_t num_free() const;
  int64_t num_used() const { return num_total() - num_free(); }
  int64_t num_total() const;
  int64_t watermark_blocks() const;

 private:
  void drop_work(uint64_t seq, double done);

  std::vector<BlockManager> groups_;
  int64_t tokens_per_group_, blocks_per_kvp_group_;
  std::vector<double> pending_work_;  // per group: Σ (prompt² − processed²) of its prefilling sequences
  std::unordered_map<uint64_t, std::vector<int32_t>> seq_groups_;
  std::unordered_map<uint64_t, double> seq_work_;  // prefill work each sequence still adds to its groups
};

}  // namespace xp::serving
