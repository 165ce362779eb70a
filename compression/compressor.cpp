#include "compression/compressor.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <mutex>

namespace xp::compression {

size_t fp32_bytes(const nn::StateDict& weights) {
  size_t n = 0;
  for (const auto& [name, t] : weights) n += static_cast<size_t>(t.numel()) * sizeof(float);
  return n;
}

DynaQuantCompressor::DynaQuantCompressor(CompressorOptions options, Quality quality)
    : opt_(std::move(options)), quality_(std::move(quality)) {
  if (!(opt_.epsilon >= 0.0)) throw std::invalid_argument(fmt::format("epsilon must be ≥ 0, got {}", opt_.epsilon));
}

namespace {
// −Σ c·log2(c/n) over one group's counts.
double entropy_bits(const std::vector<uint64_t>& counts) {
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  double bits = 0.0;
  for (uint64_t c : counts)
    if (c) bits -= static_cast<double>(c) * std::log2(static_cast<double>(c) / static_cast<double>(n));
  return bits;
}
}  // namespace

// Symbol entropy (of the deltas against the parent when there is one), grouped by the parent's
// symbol as the rearranged layout codes them, plus the levels, protected values and raw tensors.
double DynaQuantCompressor::estimated_ratio(const std::vector<QuantizedTensor>& q, size_t raw_bytes) const {
  double bits = 0.0;
  for (size_t i = 0; i < q.size(); ++i) {
    const QuantizedTensor& t = q[i];
    if (t.is_raw()) {
      bits += 32.0 * static_cast<double>(t.raw.size());
      continue;
    }
    bits += 32.0 * static_cast<double>(t.levels.size()) + 16.0 * static_cast<double>(t.protected_bf16.size());
    const QuantizedTensor* p = parent_ ? &(*parent_)[i] : nullptr;
    const int groups = p ? p->alphabet() : 1;
    const int b_star = p ? std::max(p->alphabet(), t.alphabet()) : t.alphabet();
    std::vector<std::vector<uint64_t>> counts(static_cast<size_t>(groups), std::vector<uint64_t>(static_cast<size_t>(b_star), 0));
    if (p) {
      for (size_t k = 0; k < t.symbols.size(); ++k)
        ++counts[p->symbols[k]][static_cast<size_t>((t.symbols[k] - p->symbols[k] + b_star) % b_star)];
    } else {
      for (uint16_t sym : t.symbols) ++counts[0][sym];
    }
    for (const auto& g : counts) bits += entropy_bits(g);
  }
  return static_cast<double>(raw_bytes) * 8.0 / std::max(bits, 1.0);
}

void DynaQuantCompressor::reset_parent(std::vector<QuantizedTensor> parent, uint64_t parent_step) {
  parent_ = std::move(parent);
  parent_step_ = parent_step;
}

void DynaQuantCompressor::save_state(jobs::ByteWriter& out) const {
  out.put<int32_t>(count_);
  out.put<uint8_t>(previous_.has_value());
  if (previous_) {
    for (int i : previous_->index) out.put<int32_t>(i);
    out.put<uint8_t>(static_cast<uint8_t>(previous_->metric));
  }
}

void DynaQuantCompressor::load_state(jobs::ByteReader& in) {
  count_ = in.get<int32_t>();
  previous_.reset();
  if (in.get<uint8_t>()) {
    CubePoint p;
    for (int& i : p.index) i = in.get<int32_t>();
    p.metric = static_cast<PruneMetric>(in.get<uint8_t>());
    for (size_t a = 0; a < 3; ++a)
      if (p.index[a] < 0 || p.index[a] >= opt_.cube.size(static_cast<int>(a)) || p.metric > PruneMetric::kSensitivity)
        throw jobs::CheckpointError("DynaQuant compressor state: search point outside the cube (a different configuration?)");
    previous_ = p;
  }
}

CompressedCheckpoint DynaQuantCompressor::compress(uint64_t step, const nn::StateDict& weights,
                                                   const std::map<std::string, std::vector<float>>& gradient_ema) {
  CompressedCheckpoint out;
  out.raw_bytes = fp32_bytes(weights);
  out.base = !parent_ || (opt_.full_every_n > 0 && count_ % opt_.full_every_n == 0);
  if (out.base) parent_.reset();
  out.quality_live = quality_(weights);
  const double floor = out.quality_live * (1.0 - opt_.epsilon);

  QuantConfig chosen = opt_.base;
  std::optional<std::vector<QuantizedTensor>> q;        // the chosen point's, when the search made it
  std::optional<double> quality_restored;
  if (opt_.search) {
    // The oracle may run on several threads (search_threads): the caches are guarded, and the
    // work (quantization, evaluation) happens outside the lock. std::map nodes stay put on insert.
    std::mutex mutex;
    using Key = std::array<int, 4>;
    std::map<Key, std::vector<QuantizedTensor>> cache;
    auto quantized = [&](const CubePoint& p) -> const std::vector<QuantizedTensor>& {
      {
        std::lock_guard lock(mutex);
        if (auto it = cache.find(p.key()); it != cache.end()) return it->second;
      }
      auto made = quantize(weights, gradient_ema, opt_.cube.config_at(p, opt_.base));  // pure: a duplicate is harmless
      std::lock_guard lock(mutex);
      return cache.try_emplace(p.key(), std::move(made)).first->second;
    };
    std::map<Key, double> qualities;
    SearchOracle oracle{[&](const CubePoint& p) { return estimated_ratio(quantized(p), out.raw_bytes); },
                        [&](const CubePoint& p) {
                          const double quality = quality_(dequantize(quantized(p)));
                          std::lock_guard lock(mutex);
                          qualities[p.key()] = quality;
                          return quality >= floor;
                        },
                        opt_.search_threads};
    SearchResult r;
    if (previous_ && !out.base) {
      r = neighbourhood_search(opt_.cube, oracle, *previous_, opt_.radius);
    } else {
      r = guided_search(opt_.cube, oracle);
      out.exhaustive = true;
    }
    out.evaluations = r.evaluations;
    // Nothing feasible (ε too tight for the cube): the least aggressive point.
    CubePoint p = r.best.value_or(CubePoint{{opt_.cube.size(0) - 1, opt_.cube.size(1) - 1, opt_.cube.size(2) - 1},
                                            PruneMetric::kMagnitude});
    previous_ = p;
    chosen = opt_.cube.config_at(p, opt_.base);
    if (auto it = cache.find(p.key()); it != cache.end()) q = std::move(it->second);
    if (auto it = qualities.find(p.key()); it != qualities.end()) quality_restored = it->second;
  }
  if (!q) q = quantize(weights, gradient_ema, chosen);
  out.config = chosen;
  out.quality_restored = quality_restored ? *quality_restored : quality_(dequantize(*q));
  ContainerHeader h;
  h.step = step;
  h.parent_step = out.base ? -1 : static_cast<int64_t>(parent_step_);
  h.config = chosen;
  h.layout = opt_.layout;
  out.bytes = encode_container(h, *q, out.base ? nullptr : &*parent_);
  parent_ = std::move(*q);
  parent_step_ = step;
  ++count_;
  return out;
}

std::vector<QuantizedTensor> decode_chain(const std::vector<std::vector<std::byte>>& chain) {
  if (chain.empty()) throw ContainerError("an empty checkpoint chain");
  std::vector<QuantizedTensor> current;
  std::optional<uint64_t> previous_step;
  for (const auto& bytes : chain) {
    ContainerHeader h = read_container_header(bytes);
    if (h.parent_step >= 0 && (!previous_step || h.parent_step != static_cast<int64_t>(*previous_step)))
      throw ContainerError(fmt::format("checkpoint {} is a delta against step {}, which is missing from the chain",
                                       h.step, h.parent_step));
    current = decode_container(bytes, h.parent_step >= 0 ? &current : nullptr);
    previous_step = h.step;
  }
  return current;
}

}  // namespace xp::compression
