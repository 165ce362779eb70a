#include "compression/log_histogram.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace xp::compression {

namespace {
constexpr double kZero = 1e-12;  // |x| below this is counted as exactly zero
}

LogHistogram::LogHistogram(double alpha) : alpha_(alpha) {
  if (!(alpha > 0.0 && alpha < 1.0)) throw std::invalid_argument(fmt::format("LogHistogram: α must be in (0, 1), got {}", alpha));
  gamma_ = (1.0 + alpha) / (1.0 - alpha);
  inv_log2_gamma_ = 1.0 / std::log2(gamma_);
}

namespace {

// log2 of a positive normal float, to within float rounding, without branches or calls so
// a block of keys vectorizes (glibc's log2f does not): the exponent from the bits, then log2 of
// the mantissa m in [√½, √2) by the atanh series in t = (m−1)/(m+1), |t| ≤ 0.172, to t^9 (the
// next term is below 1e-9).
[[gnu::always_inline]] inline float log2_positive(float a) {
  const uint32_t bits = std::bit_cast<uint32_t>(a);
  // Mantissas above √2 (bits 0x3504f3) are halved by lowering their exponent field: integer
  // selects if-convert where GCC turns a float select into a branch.
  const uint32_t mantissa = bits & 0x7fffffu;
  const uint32_t high = mantissa > 0x3504f3u ? 1u : 0u;
  const float m = std::bit_cast<float>((mantissa | 0x3f800000u) - (high << 23));  // [√½, √2)
  const int exponent = static_cast<int>(bits >> 23) - 127 + static_cast<int>(high);
  const float t = (m - 1.0f) / (m + 1.0f), t2 = t * t;
  const float series =
      t * (2.88539008f + t2 * (0.961796694f + t2 * (0.577078016f + t2 * (0.412198583f + t2 * 0.320598898f))));
  return static_cast<float>(exponent) + series;
}

// ⌈x⌉ for |x| < 2^31 by truncation and a compare (GCC does not vectorize ceilf under the default
// -ftrapping-math).
[[gnu::always_inline]] inline int32_t ceil_to_int(float x) {
  const auto truncated = static_cast<int32_t>(x);
  return truncated + (static_cast<float>(truncated) < x ? 1 : 0);
}

// ⌈log_γ |v|⌉ given 1/log2 γ. Any float's bits give a finite result (within ±130·inv); zeros,
// infinities and NaN are the callers' to set apart. A value within float rounding of a bucket
// boundary may land in the neighbouring bucket, which moves its representative by one bucket
// width at most.
[[gnu::always_inline]] inline int32_t log_key(float v, float inv_log2_gamma) {
  return ceil_to_int(log2_positive(std::fabs(v)) * inv_log2_gamma);
}

}  // namespace

int64_t LogHistogram::key_of(float v) const { return log_key(v, static_cast<float>(inv_log2_gamma_)); }

void LogHistogram::Keys::add(int64_t key, uint64_t n) {
  if (counts.empty()) offset = key;
  if (key < offset) {
    counts.insert(counts.begin(), static_cast<size_t>(offset - key), 0);
    offset = key;
  }
  if (key - offset >= static_cast<int64_t>(counts.size())) counts.resize(static_cast<size_t>(key - offset + 1), 0);
  counts[static_cast<size_t>(key - offset)] += n;
}

double LogHistogram::centre_of(int64_t key) const {
  return 2.0 * std::pow(gamma_, static_cast<double>(key)) / (gamma_ + 1.0);
}

void LogHistogram::add(float value) {
  ++count_;
  if (!(std::fabs(value) >= kZero)) {
    if (std::isnan(value)) throw std::invalid_argument("LogHistogram: NaN value");
    ++zeros_;
    return;
  }
  if (std::isinf(value)) throw std::invalid_argument("LogHistogram: infinite value");
  (value > 0 ? positive_ : negative_).add(key_of(value), 1);
}

void LogHistogram::add(std::span<const float> values) {
  // Keys a block at a time (that loop vectorizes), then count them: the dense vectors make the
  // common path a bounds check and an increment; zeros, infinities, NaN and keys outside the
  // current range take the general path.
  constexpr size_t kBlock = 256;
  int32_t keys[kBlock];
  const auto inv_log2_gamma = static_cast<float>(inv_log2_gamma_);
  for (size_t b = 0; b < values.size(); b += kBlock) {
    const size_t m = std::min(kBlock, values.size() - b);
    const float* v = values.data() + b;
    for (size_t j = 0; j < m; ++j) keys[j] = log_key(v[j], inv_log2_gamma);
    for (size_t j = 0; j < m; ++j) {
      const float a = std::fabs(v[j]);
      Keys& k = v[j] > 0 ? positive_ : negative_;
      if (a >= kZero && a <= 3.4e38f && !k.counts.empty()) {
        const int64_t key = keys[j] - k.offset;
        if (key >= 0 && key < static_cast<int64_t>(k.counts.size())) {
          ++k.counts[static_cast<size_t>(key)];
          ++count_;
          continue;
        }
      }
      add(v[j]);
    }
  }
}

void LogHistogram::merge(const LogHistogram& other) {
  if (other.alpha_ != alpha_)
    throw std::invalid_argument(fmt::format("LogHistogram: cannot merge α = {} into α = {}", other.alpha_, alpha_));
  for (size_t i = 0; i < other.positive_.counts.size(); ++i)
    if (other.positive_.counts[i]) positive_.add(other.positive_.offset + static_cast<int64_t>(i), other.positive_.counts[i]);
  for (size_t i = 0; i < other.negative_.counts.size(); ++i)
    if (other.negative_.counts[i]) negative_.add(other.negative_.offset + static_cast<int64_t>(i), other.negative_.counts[i]);
  zeros_ += other.zeros_;
  count_ += other.count_;
}

std::vector<LogHistogram::Bucket> LogHistogram::buckets() const {
  std::vector<Bucket> out;
  for (size_t i = negative_.counts.size(); i-- > 0;)
    if (negative_.counts[i]) out.push_back({-centre_of(negative_.offset + static_cast<int64_t>(i)), negative_.counts[i]});
  if (zeros_) out.push_back({0.0, zeros_});
  for (size_t i = 0; i < positive_.counts.size(); ++i)
    if (positive_.counts[i]) out.push_back({centre_of(positive_.offset + static_cast<int64_t>(i)), positive_.counts[i]});
  return out;
}

double LogHistogram::quantile(double q) const {
  if (count_ == 0) return 0.0;
  const auto rank = static_cast<uint64_t>(std::max(1.0, std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (const Bucket& b : buckets()) {
    seen += b.count;
    if (seen >= rank) return b.centre;
  }
  return buckets().back().centre;
}

}  // namespace xp::compression
