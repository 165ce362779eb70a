// QuantileSketch: a DDSketch-style log-bucket sketch (Masson et al., VLDB'19) — quantiles with a
// relative-error guarantee α in memory that grows with the log of the value range, not with the
// number of values. Mergeable: two sketches with the same α combine exactly (per-rank sketches,
// per-replica metrics). Vidur and Metron report their CDFs from DDSketches (α = 0.001).
// Zeros (and values below 1e-12) are counted exactly in a bucket of their own; negative values
// are rejected. Not thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace xp::stats {

class QuantileSketch {
 public:
  explicit QuantileSketch(double relative_accuracy = 0.001);

  void add(double value, uint64_t count = 1);  // value >= 0; throws std::invalid_argument otherwise
  void merge(const QuantileSketch& other);     // same relative_accuracy required

  // q in [0, 1]; within relative_accuracy of the exact rank-⌊q(n-1)⌋ value (0 for an empty sketch).
  double quantile(double q) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }
  double min() const { return count_ ? min_ : 0.0; }
  double max() const { return count_ ? max_ : 0.0; }
  double relative_accuracy() const { return alpha_; }
  size_t num_buckets() const { return buckets_.size(); }

 private:
  int bucket_of(double v) const;
  uint64_t& bucket(int index);  // grows the dense range to hold `index`
  double value_of(int bucket) const;

  double alpha_, gamma_, log_gamma_;
  std::vector<uint64_t> buckets_;  // dense from index offset_
  int offset_ = 0;
  uint64_t zeros_ = 0, count_ = 0;
  double sum_ = 0, min_ = 0, max_ = 0;
};

}  // namespace xp::stats
