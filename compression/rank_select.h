// Exact order statistics of a large multiset of non-negative floats without copying it: the IEEE
// bits of a non-negative float order like the value, so their top 16 bits are a 65,536-bucket
// histogram; the bucket holding each wanted rank is found from the counts, and a second pass keeps
// only those buckets' values to select among. Two streaming passes and memory for the histogram
// plus the few values that share the wanted buckets, where std::nth_element needs a copy of
// everything (DynaQuant's per-layer-type thresholds run over every weight of a model).
//   RankSelect s;  for (v : values) s.count(v);
//   s.want({k1, k2});  for (v : values) s.collect(v);
//   s.value(0) is the k1-th smallest (1-based), s.value(1) the k2-th.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace xp::compression {

class RankSelect {
 public:
  RankSelect() : counts_(kBuckets, 0) {}
  void count(float v) { ++counts_[bucket(v)]; }
  uint64_t size() const { return size_; }
  // 1-based ranks in [1, size()], after every value was counted.
  void want(std::vector<uint64_t> ranks);
  void collect(float v) {
    const int32_t slot = slot_of_[bucket(v)];
    if (slot >= 0) candidates_[static_cast<size_t>(slot)].push_back(v);
  }
  float value(size_t i);  // the i-th wanted rank's value, after every value was collected

 private:
  static constexpr uint32_t kBuckets = 1u << 16;
  static uint32_t bucket(float v) { return std::bit_cast<uint32_t>(v) >> 16; }  // v ≥ +0 (NaN sorts last)
  std::vector<uint64_t> counts_;
  uint64_t size_ = 0;
  std::vector<int32_t> slot_of_;  // bucket → candidate list, −1 when no wanted rank falls in it
  std::vector<std::vector<float>> candidates_;
  struct Wanted {
    int32_t slot;
    uint64_t rank_in_bucket;  // 0-based
  };
  std::vector<Wanted> wanted_;
};

}  // namespace xp::compression
