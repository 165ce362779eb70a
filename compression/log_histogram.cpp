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
  log_gamma_ = std::log(gamma_);
}

int64_t LogHistogram::key_of(float v) const {
  return static_cast<int64_t>(std::ceil(std::log(std::fabs(static_cast<double>(v))) / log_gamma_));
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
  (value > 0 ? positive_ : negative_)[key_of(value)]++;
}

void LogHistogram::add(std::span<const float> values) {
  for (float v : values) add(v);
}

void LogHistogram::merge(const LogHistogram& other) {
  if (other.alpha_ != alpha_)
    throw std::invalid_argument(fmt::format("LogHistogram: cannot merge α = {} into α = {}", other.alpha_, alpha_));
  for (auto [k, c] : other.positive_) positive_[k] += c;
  for (auto [k, c] : other.negative_) negative_[k] += c;
  zeros_ += other.zeros_;
  count_ += other.count_;
}

std::vector<LogHistogram::Bucket> LogHistogram::buckets() const {
  std::vector<Bucket> out;
  out.reserve(positive_.size() + negative_.size() + 1);
  for (auto it = negative_.rbegin(); it != negative_.rend(); ++it) out.push_back({-centre_of(it->first), it->second});
  if (zeros_) out.push_back({0.0, zeros_});
  for (auto [k, c] : positive_) out.push_back({centre_of(k), c});
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
