#include "compression/log_histogram.h"

#include <fmt/format.h>

#include <algorithm>
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

// log2f is several times faster than a double log and exact enough: a value within float
// rounding of a bucket boundary may land in the neighbouring bucket, which moves its
// representative by one bucket width at most.
int64_t LogHistogram::key_of(float v) const {
  return static_cast<int64_t>(std::ceil(static_cast<double>(std::log2(std::fabs(v))) * inv_log2_gamma_));
}

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
  // Cache the last key's slot: neighbouring weights rarely share a bucket, but the dense
  // vectors make the common path a bounds check and an increment.
  for (float v : values) {
    const float a = std::fabs(v);
    Keys& k = v > 0 ? positive_ : negative_;
    if (a >= kZero && a <= 3.4e38f && !k.counts.empty()) {
      const int64_t key = key_of(v) - k.offset;
      if (key >= 0 && key < static_cast<int64_t>(k.counts.size())) {
        ++k.counts[static_cast<size_t>(key)];
        ++count_;
        continue;
      }
    }
    add(v);
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
