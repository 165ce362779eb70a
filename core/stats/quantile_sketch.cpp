#include "core/stats/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace xp::stats {

namespace {
// Values below this are counted as zero (a 1 ns TBT and a 0 TBT are the same to a person).
constexpr double kMinPositive = 1e-12;
}  // namespace

QuantileSketch::QuantileSketch(double relative_accuracy) : alpha_(relative_accuracy) {
  if (!(alpha_ > 0 && alpha_ < 1)) throw std::invalid_argument("relative accuracy must be in (0, 1)");
  gamma_ = (1 + alpha_) / (1 - alpha_);
  log_gamma_ = std::log(gamma_);
}

int QuantileSketch::bucket_of(double v) const { return static_cast<int>(std::ceil(std::log(v) / log_gamma_)); }

// The bucket (γ^(i-1), γ^i] is represented by 2γ^i/(γ+1): within α of every value in it.
double QuantileSketch::value_of(int bucket) const { return 2.0 * std::pow(gamma_, bucket) / (gamma_ + 1.0); }

uint64_t& QuantileSketch::bucket(int b) {
  if (buckets_.empty()) {
    offset_ = b;
    buckets_.assign(1, 0);
  } else if (b < offset_) {
    buckets_.insert(buckets_.begin(), static_cast<size_t>(offset_ - b), 0);
    offset_ = b;
  } else if (b >= offset_ + static_cast<int>(buckets_.size())) {
    buckets_.resize(static_cast<size_t>(b - offset_ + 1), 0);
  }
  return buckets_[static_cast<size_t>(b - offset_)];
}

void QuantileSketch::add(double v, uint64_t n) {
  if (!(v >= 0) || std::isinf(v)) throw std::invalid_argument("QuantileSketch takes finite values >= 0");
  if (n == 0) return;
  min_ = count_ ? std::min(min_, v) : v;
  max_ = count_ ? std::max(max_, v) : v;
  count_ += n;
  sum_ += v * static_cast<double>(n);
  if (v < kMinPositive) zeros_ += n;
  else bucket(bucket_of(v)) += n;
}

void QuantileSketch::merge(const QuantileSketch& o) {
  if (o.alpha_ != alpha_) throw std::invalid_argument("cannot merge sketches with different relative accuracy");
  if (o.count_ == 0) return;
  for (size_t i = 0; i < o.buckets_.size(); ++i)
    if (o.buckets_[i]) bucket(o.offset_ + static_cast<int>(i)) += o.buckets_[i];
  min_ = count_ ? std::min(min_, o.min_) : o.min_;
  max_ = count_ ? std::max(max_, o.max_) : o.max_;
  zeros_ += o.zeros_;
  count_ += o.count_;
  sum_ += o.sum_;
}

double QuantileSketch::quantile(double q) const {
  if (count_ == 0) return 0.0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<uint64_t>(q * static_cast<double>(count_ - 1));
  if (rank < zeros_) return 0.0;
  uint64_t seen = zeros_;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen > rank) return std::clamp(value_of(offset_ + static_cast<int>(i)), min_, max_);
  }
  return max_;
}

}  // namespace xp::stats
