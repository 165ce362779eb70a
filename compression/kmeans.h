// Non-uniform quantization levels by approximate k-means on a log-bucket histogram (DynaQuant,
// docs/dynaquant.md). Buckets are weighted W = σ·C/ΣC + (1−σ)·|X|/Σ|X| — the magnitude
// term keeps the levels from crowding near zero — seeded by weighted k-means++ (next centre drawn
// ∝ W·D^power; the paper's D is the default, power 2 is classic k-means++), then weighted Lloyd
// iterations until assignments stop changing (at most max_iterations), from `restarts` seedings,
// keeping the one whose levels quantize the values (count-weighted) with the least squared
// error. Centres come back sorted ascending; the result is a pure function of (histogram,
// options, seed).
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "compression/log_histogram.h"

namespace xp::compression {

struct KMeansOptions {
  int bins = 8;               // K
  double sigma = 0.2;         // weight of the bucket counts against the bucket magnitudes
  double distance_power = 1;  // k-means++ seeding ∝ W·D^power (paper: 1)
  int max_iterations = 100;
  int restarts = 4;           // seedings tried; the one quantizing the values best wins
  uint64_t seed = 0;
};

// K sorted centres (fewer when the histogram has fewer than K distinct buckets).
std::vector<float> kmeans_levels(const LogHistogram& histogram, const KMeansOptions& options);

// Index of the nearest of the sorted `centres` (cut points at the midpoints; a value on a
// midpoint goes to the lower level): the number of midpoints below the value, counted without
// branches — a binary search's mispredicted branches cost more than the K − 1 comparisons.
class LevelIndex {
 public:
  explicit LevelIndex(std::span<const float> centres) {
    for (size_t i = 0; i + 1 < centres.size(); ++i) mid_.push_back(0.5f * (centres[i] + centres[i + 1]));
  }
  int operator()(float value) const {
    int index = 0;
    for (float m : mid_) index += value > m;
    return index;
  }
  // The same for many values (out.size() == values.size()); midpoint-major with 32-bit counts
  // (the width of a float compare) so it vectorizes.
  void operator()(std::span<const float> values, std::span<uint32_t> out) const {
    std::fill(out.begin(), out.end(), 0u);
    for (float m : mid_)
      for (size_t j = 0; j < values.size(); ++j) out[j] += values[j] > m ? 1u : 0u;
  }

 private:
  std::vector<float> mid_;
};

inline int nearest_level(std::span<const float> centres, float value) { return LevelIndex(centres)(value); }

}  // namespace xp::compression
