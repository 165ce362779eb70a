#include "serving/kv/kv_groups.h"

#include <algorithm>
#include <numeric>

#include "core/runtime/check.h"

namespace xp::serving {

KvGroups::KvGroups(int64_t groups, int64_t blocks_per_group, int64_t block_size, double watermark_fraction,
                   int64_t tokens_per_group)
    : tokens_per_group_(groups > 1 ? tokens_per_group : 0),
      blocks_per_kvp_group_(groups > 1 ? tokens_per_group / block_size : 0),
      pending_work_(static_cast<size_t>(std::max<int64_t>(groups, 1)), 0.0) {
  EXP_CHECK(groups >= 1, "a KV cache needs at least one group, got {}", groups);
  EXP_CHECK(groups == 1 || (tokens_per_group > 0 && tokens_per_group % block_size == 0),
            "tokens per KV-parallel group ({}) must be a positive multiple of the block size ({})", tokens_per_group,
            block_size);
  for (int64_t g = 0; g < groups; ++g) groups_.emplace_back(blocks_per_group, block_size, watermark_fraction);
}

int64_t KvGroups::groups_for(int64_t tokens) const {
  if (groups_.size() == 1) return 1;
  return std::max<int64_t>(1, (blocks_for(tokens) + blocks_per_kvp_group_ - 1) / blocks_per_kvp_group_);
}

std::vector<int32_t> KvGroups::placement(int64_t blocks) const {
  if (groups_.size() == 1) return groups_[0].can_allocate(blocks) ? std::vector<int32_t>{0} : std::vector<int32_t>{};
  const int64_t n = std::max<int64_t>(1, (blocks + blocks_per_kvp_group_ - 1) / blocks_per_kvp_group_);
  if (n > num_groups()) return {};
  const int64_t last_blocks = blocks - blocks_per_kvp_group_ * (n - 1);
  std::vector<int32_t> order(groups_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [this](int32_t a, int32_t b) {
    return pending_work_[static_cast<size_t>(a)] < pending_work_[static_cast<size_t>(b)];
  });
  // First fit: n − 1 groups with room for a full share, and one with room for the remainder.
  std::vector<int32_t> full;
  int32_t last = -1;
  for (int32_t g : order) {
    const BlockManager& m = groups_[static_cast<size_t>(g)];
    if (static_cast<int64_t>(full.size()) < n - 1 && m.can_allocate(blocks_per_kvp_group_)) full.push_back(g);
    else if (last < 0 && m.can_allocate(last_blocks)) last = g;
    if (static_cast<int64_t>(full.size()) == n - 1 && last >= 0) {
      full.push_back(last);
      return full;
    }
  }
  return {};
}

void KvGroups::allocate(uint64_t seq, int64_t blocks, int64_t prompt_tokens) {
  std::vector<int32_t> where = placement(blocks);
  EXP_CHECK(!where.empty(), "allocating {} KV blocks that no placement over {} group(s) holds", blocks, groups_.size());
  const double work = static_cast<double>(prompt_tokens) * static_cast<double>(prompt_tokens);
  for (size_t i = 0; i < where.size(); ++i) {
    const bool last = i + 1 == where.size();
    groups_[static_cast<size_t>(where[i])].allocate(seq, last ? blocks - blocks_per_kvp_group_ * static_cast<int64_t>(i) : blocks_per_kvp_group_);
    pending_work_[static_cast<size_t>(where[i])] += work;
  }
  seq_groups_[seq] = std::move(where);
  seq_work_[seq] = work;
}

namespace {
double squared(int64_t v) { return static_cast<double>(v) * static_cast<double>(v); }
}  // namespace

void KvGroups::drop_work(uint64_t seq, double done) {
  auto it = seq_work_.find(seq);
  if (it == seq_work_.end()) return;
  done = std::min(done, it->second);
  it->second -= done;
  for (int32_t g : groups(seq)) pending_work_[static_cast<size_t>(g)] -= done;
}

void KvGroups::on_prefill_progress(uint64_t seq, int64_t before, int64_t after) {
  drop_work(seq, squared(after) - squared(before));
}

bool KvGroups::can_append_slot(uint64_t seq) const {
  const auto& g = groups(seq);
  return groups_[g.empty() ? 0 : static_cast<size_t>(g.back())].can_append_slot();
}

bool KvGroups::has_room(uint64_t seq, int64_t seq_len) const {
  const auto& g = groups(seq);
  if (g.empty()) return false;
  const int64_t local = seq_len - tokens_per_group_ * static_cast<int64_t>(g.size() - 1);
  const BlockManager& m = groups_[static_cast<size_t>(g.back())];
  return m.blocks_for(local) <= static_cast<int64_t>(m.table(seq).size());
}

void KvGroups::append_slot(uint64_t seq, int64_t seq_len) {
  const auto& g = groups(seq);
  EXP_CHECK(!g.empty(), "append_slot for sequence {}, which holds no KV blocks", seq);
  groups_[static_cast<size_t>(g.back())].append_slot(seq, seq_len - tokens_per_group_ * static_cast<int64_t>(g.size() - 1));
}

void KvGroups::free(uint64_t seq) {
  auto it = seq_groups_.find(seq);
  if (it == seq_groups_.end()) return;
  drop_work(seq, seq_work_[seq]);
  seq_work_.erase(seq);
  for (int32_t g : it->second) groups_[static_cast<size_t>(g)].free(seq);
  seq_groups_.erase(it);
}

const std::vector<int32_t>& KvGroups::groups(uint64_t seq) const {
  static const std::vector<int32_t> kNone;
  auto it = seq_groups_.find(seq);
  return it == seq_groups_.end() ? kNone : it->second;
}

const std::vector<int32_t>& KvGroups::table(uint64_t seq) const {
  EXP_CHECK(groups_.size() == 1, "one block table per sequence exists only without KV parallelism");
  return groups_[0].table(seq);
}

int64_t KvGroups::num_free() const {
  int64_t n = 0;
  for (const auto& g : groups_) n += g.num_free();
  return n;
}

int64_t KvGroups::num_total() const {
  int64_t n = 0;
  for (const auto& g : groups_) n += g.num_total();
  return n;
}

int64_t KvGroups::watermark_blocks() const {
  int64_t n = 0;
  for (const auto& g : groups_) n += g.watermark_blocks();
  return n;
}

}  // namespace xp::serving
