#include "compression/quantizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "compression/kmeans.h"
#include "compression/log_histogram.h"
#include "compression/rank_select.h"

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

// Per-layer-type thresholds (Step B): protect at or above either score's k-th largest value
// (k = F_prot·n); prune at or below the chosen metric's k-th smallest (k = F_prun·n). Exact
// selection, so the counts match the fractions; streamed through RankSelect, so the scores are
// never materialized.
struct Thresholds {
  float protect_magnitude = INFINITY, protect_sensitivity = INFINITY, prune = -INFINITY;
};

// One quantized tensor's weights and gradient EMA (null: its sensitivity is its magnitude).
struct Scored {
  const float* w = nullptr;
  const float* ema = nullptr;
  size_t n = 0;
};

// Calls f(k, |w_k|, sensitivity_k) for every weight, the EMA test outside the loop.
template <class F>
void for_each_score(const Scored& s, F&& f) {
  if (s.ema) {
    for (size_t k = 0; k < s.n; ++k) f(k, std::fabs(s.w[k]), std::fabs(s.ema[k] * s.w[k]));
  } else {
    for (size_t k = 0; k < s.n; ++k) f(k, std::fabs(s.w[k]), std::fabs(s.w[k]));
  }
}

struct TypeScores {
  std::vector<size_t> tensors;  // indices into the state dict
  RankSelect magnitude, sensitivity;
};

Thresholds thresholds_of(const std::vector<Scored>& scored, TypeScores& ts, bool have_ema, const QuantConfig& c) {
  uint64_t n = 0;
  for (size_t i : ts.tensors) {
    n += scored[i].n;
    for_each_score(scored[i], [&](size_t, float magnitude, float sensitivity) {
      ts.magnitude.count(magnitude);
      if (have_ema) ts.sensitivity.count(sensitivity);
    });
  }
  const auto k_protect = static_cast<uint64_t>(std::llround(c.protect_fraction * static_cast<double>(n)));
  const auto k_prune = static_cast<uint64_t>(std::llround(c.prune_fraction * static_cast<double>(n)));
  // Without gradients sensitivity is magnitude: one selection serves both.
  const bool prune_by_magnitude = c.prune_metric == PruneMetric::kMagnitude || !have_ema;
  std::vector<uint64_t> mag_ranks, sens_ranks;
  if (k_protect > 0) mag_ranks.push_back(n - k_protect + 1);
  if (k_protect > 0 && have_ema) sens_ranks.push_back(n - k_protect + 1);
  if (k_prune > 0) (prune_by_magnitude ? mag_ranks : sens_ranks).push_back(k_prune);
  ts.magnitude.want(mag_ranks);
  if (have_ema) ts.sensitivity.want(sens_ranks);
  for (size_t i : ts.tensors) {
    for_each_score(scored[i], [&](size_t, float magnitude, float sensitivity) {
      ts.magnitude.collect(magnitude);
      if (have_ema) ts.sensitivity.collect(sensitivity);
    });
  }
  Thresholds th;
  if (k_protect > 0) {
    th.protect_magnitude = ts.magnitude.value(0);
    th.protect_sensitivity = have_ema ? ts.sensitivity.value(0) : th.protect_magnitude;
  }
  if (k_prune > 0)
    th.prune = prune_by_magnitude ? ts.magnitude.value(mag_ranks.size() - 1) : ts.sensitivity.value(sens_ranks.size() - 1);
  return th;
}

// Symbols while the levels are not known yet.
constexpr uint16_t kPruned = 0, kQuantized = 1, kProtected = 0xffff;

// Step B for one tensor: each weight's role into `symbols`, the protected values (bf16, in
// order) into q, and the quantized weights into the histogram.
void assign_roles(const Scored& s, const Thresholds& th, PruneMetric metric, uint16_t* symbols, QuantizedTensor& q,
                  LogHistogram& values) {
  // Bitwise, not short-circuit, logic and local thresholds: the loop vectorizes.
  const bool by_magnitude = metric == PruneMetric::kMagnitude;
  const float protect_magnitude = th.protect_magnitude, protect_sensitivity = th.protect_sensitivity, prune = th.prune;
  for_each_score(s, [&](size_t k, float magnitude, float sensitivity) {
    const bool protect = (magnitude >= protect_magnitude) | (sensitivity >= protect_sensitivity);
    const bool pruned = (by_magnitude & (magnitude <= prune)) | (!by_magnitude & (sensitivity <= prune));
    // kQuantized (1) or kPruned (0), all ones (kProtected) when protected.
    symbols[k] = static_cast<uint16_t>((1u - static_cast<unsigned>(pruned)) | (0u - static_cast<unsigned>(protect)));
  });
  static_assert(kQuantized == 1 && kPruned == 0 && kProtected == 0xffff);
  // The quantized weights reach the histogram a block at a time, compacted without branches.
  constexpr size_t kBlock = 4096;
  std::array<float, kBlock> block;
  size_t held = 0;
  for (size_t k = 0; k < s.n; ++k) {
    block[held] = s.w[k];
    held += symbols[k] == kQuantized ? 1 : 0;
    if (symbols[k] == kProtected) [[unlikely]]
      q.protected_bf16.push_back(to_bf16(s.w[k]));
    if (held == kBlock) [[unlikely]] {
      values.add(block);
      held = 0;
    }
  }
  values.add(std::span<const float>(block.data(), held));
}

}  // namespace

std::vector<QuantizedTensor> quantize(const nn::StateDict& tensors, const std::map<std::string, std::vector<float>>& ema,
                                      const QuantConfig& c) {
  if (c.bins < 1 || c.embedding_bins < 1 || c.prune_fraction < 0 || c.prune_fraction >= 1 || c.protect_fraction < 0 ||
      c.protect_fraction > 1)
    throw std::invalid_argument("quantize: bins ≥ 1, prune_fraction in [0, 1), protect_fraction in [0, 1] required");
  std::vector<Scored> scored(tensors.size());
  std::map<std::string, TypeScores> types;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    if (t.dtype() != tensor::DType::kF32) throw std::invalid_argument(fmt::format("quantize: '{}' is not f32", name));
    const std::string type = layer_type_of(name, t);
    if (type == "raw") continue;
    auto it = ema.find(name);
    if (it != ema.end() && it->second.size() != static_cast<size_t>(t.numel()))
      throw std::invalid_argument(fmt::format("quantize: gradient EMA of '{}' has {} values, the tensor {}", name,
                                              it->second.size(), t.numel()));
    scored[i] = {t.data<float>(), it != ema.end() ? it->second.data() : nullptr, static_cast<size_t>(t.numel())};
    types[type].tensors.push_back(i);
  }
  std::map<std::string, Thresholds> thresholds;
  for (auto& [type, ts] : types) thresholds[type] = thresholds_of(scored, ts, !ema.empty(), c);

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
    q.symbols.resize(n);
    uint16_t* sym = q.symbols.data();
    LogHistogram values(c.alpha);
    assign_roles(scored[i], thresholds.at(q.layer_type), c.prune_metric, sym, q, values);
    const int bins = q.layer_type == "embedding" ? c.embedding_bins : c.bins;
    q.levels = kmeans_levels(values, {.bins = bins, .sigma = c.sigma, .seed = c.seed});
    if (q.levels.empty()) q.levels.push_back(0.0f);  // everything pruned or protected
    // Levels in blocks (LevelIndex's span form vectorizes), the roles mapped without branches.
    const auto protected_symbol = static_cast<uint16_t>(q.levels.size() + 1);
    const LevelIndex level(q.levels);
    constexpr size_t kBlock = 1024;
    uint32_t index[kBlock];
    for (size_t b = 0; b < n; b += kBlock) {
      const size_t m = std::min(kBlock, n - b);
      level(std::span<const float>(w + b, m), std::span<uint32_t>(index, m));
      for (size_t j = 0; j < m; ++j) {
        const uint16_t role = sym[b + j];
        sym[b + j] = role == kQuantized    ? static_cast<uint16_t>(index[j] + 1)
                     : role == kProtected ? protected_symbol
                                          : kPruned;
      }
    }
    out.push_back(std::move(q));
  }
  return out;
}

namespace {

void dequantize_tensor(const QuantizedTensor& q, float* w, size_t n) {
  if (q.is_raw()) {
    if (q.raw.size() != n) throw std::invalid_argument(fmt::format("dequantize: '{}' has {} values for {}", q.name, q.raw.size(), n));
    std::memcpy(w, q.raw.data(), n * sizeof(float));
    return;
  }
  if (q.symbols.size() != n)
    throw std::invalid_argument(fmt::format("dequantize: '{}' has {} symbols for {} weights", q.name, q.symbols.size(), n));
  // One table lookup per weight; the protected symbol's slot is patched from the bf16 list.
  const auto protected_symbol = static_cast<uint16_t>(q.levels.size() + 1);
  std::vector<float> value_of(static_cast<size_t>(q.alphabet()), 0.0f);
  std::copy(q.levels.begin(), q.levels.end(), value_of.begin() + 1);
  const uint16_t* sym = q.symbols.data();
  size_t next_protected = 0;
  for (size_t k = 0; k < n; ++k) {
    w[k] = value_of[std::min<uint16_t>(sym[k], protected_symbol)];
    if (sym[k] == protected_symbol) [[unlikely]]
      w[k] = from_bf16(q.protected_bf16.at(next_protected++));
  }
}

}  // namespace

nn::StateDict dequantize(const std::vector<QuantizedTensor>& tensors) {
  nn::StateDict out;
  for (const QuantizedTensor& q : tensors) {
    tensor::Tensor t = tensor::Tensor::empty(q.shape, tensor::DType::kF32);
    dequantize_tensor(q, t.data<float>(), static_cast<size_t>(t.numel()));
    out.emplace_back(q.name, t);
  }
  return out;
}

void dequantize_into(const std::vector<QuantizedTensor>& tensors, nn::StateDict& out) {
  if (out.size() != tensors.size())
    throw std::invalid_argument(fmt::format("dequantize_into: {} tensors into {}", tensors.size(), out.size()));
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto& [name, t] = out[i];
    if (name != tensors[i].name || t.shape() != tensors[i].shape || t.dtype() != tensor::DType::kF32)
      throw std::invalid_argument(fmt::format("dequantize_into: '{}' {} does not fit '{}' {}", tensors[i].name,
                                              tensor::shape_str(tensors[i].shape), name, tensor::shape_str(t.shape())));
    dequantize_tensor(tensors[i], t.data<float>(), static_cast<size_t>(t.numel()));
  }
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
