#include "compression/rank_select.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace xp::compression {

void RankSelect::want(std::vector<uint64_t> ranks) {
  size_ = 0;
  for (uint64_t c : counts_) size_ += c;
  slot_of_.assign(kBuckets, -1);
  candidates_.clear();
  wanted_.clear();
  for (uint64_t rank : ranks) {
    if (rank < 1 || rank > size_) throw std::out_of_range(fmt::format("RankSelect: rank {} of {} values", rank, size_));
    uint64_t below = 0;
    uint32_t b = 0;
    while (below + counts_[b] < rank) below += counts_[b++];
    if (slot_of_[b] < 0) {
      slot_of_[b] = static_cast<int32_t>(candidates_.size());
      candidates_.emplace_back().reserve(counts_[b]);
    }
    wanted_.push_back({slot_of_[b], rank - below - 1});
  }
}

float RankSelect::value(size_t i) {
  const Wanted& w = wanted_.at(i);
  auto& c = candidates_[static_cast<size_t>(w.slot)];
  if (w.rank_in_bucket >= c.size())
    throw std::logic_error("RankSelect: fewer values collected than counted (collect every value once)");
  std::nth_element(c.begin(), c.begin() + static_cast<long>(w.rank_in_bucket), c.end());
  return c[w.rank_in_bucket];
}

}  // namespace xp::compression
