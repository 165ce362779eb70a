#include "compression/quantizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "compression/kmeans.h"
#include "compression/log_histogram.h"

namespace xp::compression {

uint16_t to_bf16(float v) {
  uint32_t bits = std::bit_cast<uint32_t>(v);
  if (std::isnan(v)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

float from_bf16(uint16_t v) { return std::bit_cast<float>(static_cast<uint32_t>(v) << 16); }

std::string layer_type_of(const std::string& name, const tensor::Tensor& t) {
  if (t.dim() < 2 || t.numel() < kMinQuantizedElements) return "raw";
  if (name.find("embed") != std::string::npos) return "embedding";
  return t.dim() == 4 ? "conv" : "linear";
}

void GradientEma::update(const std::string& name, const tensor::Tensor& grad) {
  const float* g = grad.data<float>();
  auto [it, fresh] = ema_.try_emplace(name, std::vector<float>(static_cast<size_t>(grad.numel()), 0.0f));
  auto& e = it->second;
  if (e.size() != static_cast<size_t>(grad.numel()))
    throw std::invalid_argument(fmt::format("GradientEma: '{}' changed size", name));
  const auto b = static_cast<float>(beta_);
  for (size_t i = 0; i < e.size(); ++i) e[i] = fresh ? g[i] : b * g[i] + (1.0f - b) * e[i];
}

namespace {

struct Scores {
  std::vector<float> magnitude, sensitivity;
};

// Per-layer-type thresholds (Step B): protect at or above either score's k-th largest value
// (k = F_prot·n); prune at or below the chosen metric's k-th smallest (k = F_prun·n). Exact
// selection (nth_element, linear time) rather than the sketch, so the counts match the fractions.
struct Thresholds {
  float protect_magnitude = INFINITY, protect_sensitivity = INFINITY, prune = -INFINITY;
};

// The k-th smallest (k ≥ 1) of v; reorders v.
float kth_smallest(std::vector<float>& v, size_t k) {
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k - 1), v.end());
  return v[k - 1];
}

}  // namespace

std::vector<QuantizedTensor> quantize(const nn::StateDict& tensors, const std::map<std::string, std::vector<float>>& ema,
                                      const QuantConfig& c) {
  if (c.bins < 1 || c.embedding_bins < 1 || c.prune_fraction < 0 || c.prune_fraction >= 1 || c.protect_fraction < 0 ||
      c.protect_fraction > 1)
    throw std::invalid_argument("quantize: bins ≥ 1, prune_fraction in [0, 1), protect_fraction in [0, 1] required");
  std::vector<Scores> scores(tensors.size());
  std::map<std::string, std::pair<std::vector<float>, std::vector<float>>> per_type;  // |w|, sensitivity
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    if (t.dtype() != tensor::DType::kF32) throw std::invalid_argument(fmt::format("quantize: '{}' is not f32", name));
    const std::string type = layer_type_of(name, t);
    if (type == "raw") continue;
    const float* w = t.data<float>();
    const auto n = static_cast<size_t>(t.numel());
    auto it = ema.find(name);
    if (it != ema.end() && it->second.size() != n)
      throw std::invalid_argument(fmt::format("quantize: gradient EMA of '{}' has {} values, the tensor {}", name,
                                              it->second.size(), n));
    Scores& s = scores[i];
    s.magnitude.resize(n);
    s.sensitivity.resize(n);
    for (size_t k = 0; k < n; ++k) {
      s.magnitude[k] = std::fabs(w[k]);
      s.sensitivity[k] = it != ema.end() ? std::fabs(it->second[k] * w[k]) : s.magnitude[k];
    }
    auto& [mag, sens] = per_type[type];
    mag.insert(mag.end(), s.magnitude.begin(), s.magnitude.end());
    if (!ema.empty()) sens.insert(sens.end(), s.sensitivity.begin(), s.sensitivity.end());
  }
  std::map<std::string, Thresholds> thresholds;
  for (auto& [type, v] : per_type) {
    Thresholds& th = thresholds[type];
    auto& [mag, sens] = v;
    const size_t n = mag.size();
    const auto k_protect = static_cast<size_t>(std::llround(c.protect_fraction * static_cast<double>(n)));
    const auto k_prune = static_cast<size_t>(std::llround(c.prune_fraction * static_cast<double>(n)));
    if (k_prune > 0)
      th.prune = kth_smallest(c.prune_metric == PruneMetric::kMagnitude || sens.empty() ? mag : sens, k_prune);
    if (k_protect > 0) {
      th.protect_magnitude = kth_smallest(mag, n - k_protect + 1);
      // Without gradients sensitivity is magnitude: one selection serves both.
      th.protect_sensitivity = sens.empty() ? th.protect_magnitude : kth_smallest(sens, n - k_protect + 1);
    }
  }

  std::vector<QuantizedTensor> out;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    QuantizedTensor q;
    q.name = name;
    q.shape = t.shape();
    q.layer_type = layer_type_of(name, t);
    const float* w = t.data<float>();
    const auto n = static_cast<size_t>(t.numel());
    if (q.is_raw()) {
      q.raw.assign(w, w + n);
      out.push_back(std::move(q));
      continue;
    }
    const Thresholds& th = thresholds[q.layer_type];
    const Scores& s = scores[i];
    // 0 = pruned, 1 = quantize (level assigned below), 2 = protected.
    std::vector<uint8_t> role(n, 1);
    LogHistogram values(c.alpha);
    for (size_t k = 0; k < n; ++k) {
      const float score = c.prune_metric == PruneMetric::kMagnitude ? s.magnitude[k] : s.sensitivity[k];
      if (s.magnitude[k] >= th.protect_magnitude || s.sensitivity[k] >= th.protect_sensitivity) role[k] = 2;
      else if (score <= th.prune) role[k] = 0;
      else values.add(w[k]);
    }
    const int bins = q.layer_type == "embedding" ? c.embedding_bins : c.bins;
    q.levels = kmeans_levels(values, {.bins = bins, .sigma = c.sigma, .seed = c.seed});
    if (q.levels.empty()) q.levels.push_back(0.0f);  // everything pruned or protected
    const auto protected_symbol = static_cast<uint16_t>(q.levels.size() + 1);
    const LevelIndex level(q.levels);
    q.symbols.resize(n);
    for (size_t k = 0; k < n; ++k) {
      if (role[k] == 0) q.symbols[k] = 0;
      else if (role[k] == 2) {
        q.symbols[k] = protected_symbol;
        q.protected_bf16.push_back(to_bf16(w[k]));
      } else {
        q.symbols[k] = static_cast<uint16_t>(level(w[k]) + 1);
      }
    }
    out.push_back(std::move(q));
  }
  return out;
}

nn::StateDict dequantize(const std::vector<QuantizedTensor>& tensors) {
  nn::StateDict out;
  for (const QuantizedTensor& q : tensors) {
    tensor::Tensor t = tensor::Tensor::empty(q.shape, tensor::DType::kF32);
    float* w = t.data<float>();
    const auto n = static_cast<size_t>(t.numel());
    if (q.is_raw()) {
      std::memcpy(w, q.raw.data(), n * sizeof(float));
    } else {
      size_t next_protected = 0;
      const auto protected_symbol = static_cast<uint16_t>(q.levels.size() + 1);
      for (size_t k = 0; k < n; ++k) {
        const uint16_t s = q.symbols[k];
        if (s == 0) w[k] = 0.0f;
        else if (s == protected_symbol) w[k] = from_bf16(q.protected_bf16.at(next_protected++));
        else w[k] = q.levels.at(s - 1u);
      }
    }
    out.emplace_back(q.name, t);
  }
  return out;
}

std::vector<QuantizedTensor> quantize_uniform(const nn::StateDict& w, int bins) {
  std::vector<QuantizedTensor> out;
  for (const auto& [name, t] : w) {
    QuantizedTensor q;
    q.name = name;
    q.shape = t.shape();
    q.layer_type = layer_type_of(name, t);
    const float* p = t.data<float>();
    const auto n = static_cast<size_t>(t.numel());
    if (q.is_raw()) {
      q.raw.assign(p, p + n);
    } else {
      const float mn = *std::min_element(p, p + n), mx = *std::max_element(p, p + n);
      const float s = mx > mn ? (mx - mn) / static_cast<float>(bins - 1) : 1.0f;
      for (int b = 0; b < bins; ++b) q.levels.push_back(mn + s * static_cast<float>(b));
      q.symbols.resize(n);
      for (size_t k = 0; k < n; ++k)
        q.symbols[k] = static_cast<uint16_t>(1 + std::clamp(std::lround((p[k] - mn) / s), 0L, static_cast<long>(bins - 1)));
    }
    out.push_back(std::move(q));
  }
  return out;
}


}  // namespace xp::compression
