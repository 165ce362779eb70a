// The log-bucket sketch of DynaQuant (docs/dynaquant.md, a simplified DDSketch) for signed
// values: value x > 0 goes to key ceil(log_γ x), x < 0 to −ceil(log_γ |x|), with
// γ = (1+α)/(1−α), and |x| < 1e-12 to a zero bucket. Quantiles are within relative error α;
// two histograms with the same α merge by adding counts; buckets() is the weighted histogram the
// k-means of Step D clusters. No bucket collapsing: the key count stays in the low thousands even
// for large models. Not thread-safe; merge per-thread histograms instead.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace xp::compression {

class LogHistogram {
 public:
  explicit LogHistogram(double alpha = 0.01);
  void add(float value);
  void add(std::span<const float> values);
  void merge(const LogHistogram& other);  // same α required (std::invalid_argument otherwise)

  uint64_t count() const { return count_; }
  double alpha() const { return alpha_; }
  // The value at rank ⌈q·n⌉ (q in [0, 1]) as its bucket representative 2γ^k/(γ+1) (signed).
  double quantile(double q) const;

  struct Bucket {
    double centre;   // representative value, signed; 0 for the zero bucket
    uint64_t count;
  };
  // Ascending by centre.
  std::vector<Bucket> buckets() const;

 private:
  // Counts by key, dense from `offset` (keys span a few thousand at most).
  struct Keys {
    std::vector<uint64_t> counts;
    int64_t offset = 0;
    void add(int64_t key, uint64_t n);
  };
  int64_t key_of(float v) const;
  double centre_of(int64_t key) const;
  double alpha_, gamma_, inv_log2_gamma_;
  Keys positive_, negative_;  // keys of |x|
  uint64_t zeros_ = 0, count_ = 0;
};

}  // namespace xp::compression
