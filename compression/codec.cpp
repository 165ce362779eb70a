#include "compression/codec.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "compression/baselines.h"
#include "compression/entropy.h"

namespace xp::compression {

namespace {

// The first grid value (ascending = rising quality) whose encoding is feasible, assuming
// feasibility is monotone along the grid; the last value when none is.
template <class Feasible>
int smallest_feasible(const std::vector<int>& grid, Feasible feasible) {
  size_t lo = 0, hi = grid.size() - 1;
  if (!feasible(grid[hi])) return grid[hi];
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (feasible(grid[mid])) hi = mid;
    else lo = mid + 1;
  }
  return grid[lo];
}

nn::StateDict read_plain(const std::vector<std::byte>& bytes) {
  jobs::ByteReader in(bytes);
  try {
    return nn::read_state_dict(in);
  } catch (const jobs::CheckpointError& e) {
    throw ContainerError(std::string("checkpoint: ") + e.what());
  }
}

class NoneCodec final : public CheckpointCodec {
 public:
  EncodedCheckpoint encode(uint64_t, const nn::StateDict& w, const std::map<std::string, std::vector<float>>&) override {
    jobs::ByteWriter out;
    nn::write_state_dict(out, w);
    return {out.take(), true, {}};
  }
  nn::StateDict decode(const std::vector<std::vector<std::byte>>& chain) override { return read_plain(chain.back()); }
};

class ZstdCodec final : public CheckpointCodec {
 public:
  explicit ZstdCodec(bool uniform8) : uniform8_(uniform8) {}
  EncodedCheckpoint encode(uint64_t, const nn::StateDict& w, const std::map<std::string, std::vector<float>>&) override {
    return {uniform8_ ? encode_uniform8_zstd(w) : encode_zstd(w), true, {}, uniform8_ ? 256 : -1};
  }
  nn::StateDict decode(const std::vector<std::vector<std::byte>>& chain) override {
    return uniform8_ ? decode_uniform8_zstd(chain.back()) : decode_zstd(chain.back());
  }

 private:
  bool uniform8_;
};

class DynaQuantCodec final : public CheckpointCodec {
 public:
  DynaQuantCodec(const CompressorOptions& o, Quality q) : compressor_(o, std::move(q)) {}
  EncodedCheckpoint encode(uint64_t step, const nn::StateDict& w, const std::map<std::string, std::vector<float>>& ema) override {
    CompressedCheckpoint c = compressor_.compress(step, w, ema);
    return {c.bytes, c.base, c, c.config.bins};
  }
  nn::StateDict decode(const std::vector<std::vector<std::byte>>& chain) override { return dequantize(decode_chain(chain)); }
  nn::StateDict restore(const std::vector<std::vector<std::byte>>& chain, uint64_t step) override {
    auto q = decode_chain(chain);
    nn::StateDict w = dequantize(q);
    compressor_.reset_parent(std::move(q), step);
    return w;
  }
  void save_state(jobs::ByteWriter& out) const override { compressor_.save_state(out); }
  void load_state(jobs::ByteReader& in) override { compressor_.load_state(in); }

 private:
  DynaQuantCompressor compressor_;
};

// The level counts the quantizing baselines search, fewest first: DynaQuant's own bin range
// (search.h: 4 to 32) and below it, then up to 8 bits, so a baseline can match or beat it.
const std::vector<int> kBaselineLevels = {2, 4, 6, 8, 12, 16, 32, 64, 128, 256};

// Check-N-Run's adaptive uniform quantizer: per row, `bins` uniform levels over [lo, hi] clipped
// by the ratio (of 0, 0.1, …, 0.5 of the range, split evenly between the ends) with the least
// squared error; codes stored at ceil(log2 bins) bits. Tensors below 2-D stay fp32.
class CnrCodec final : public CheckpointCodec {
 public:
  CnrCodec(Quality q, double floor_fraction) : quality_(std::move(q)), keep_(floor_fraction) {}
  EncodedCheckpoint encode(uint64_t, const nn::StateDict& w, const std::map<std::string, std::vector<float>>&) override {
    const double floor = quality_(w) * keep_;
    const int bins = smallest_feasible(kBaselineLevels, [&](int b) { return quality_(decode_one(encode_with(w, b))) >= floor; });
    return {encode_with(w, bins), true, {}, bins};
  }
  nn::StateDict decode(const std::vector<std::vector<std::byte>>& chain) override { return decode_one(chain.back()); }

  static std::vector<std::byte> encode_with(const nn::StateDict& w, int bins) {
    jobs::ByteWriter out;
    out.put<int32_t>(bins);
    out.put<uint64_t>(w.size());
    const int bits = static_cast<int>(std::ceil(std::log2(bins)));
    for (const auto& [name, t] : w) {
      out.put_string(name);
      out.put_vector(t.shape());
      const float* p = t.data<float>();
      if (t.dim() < 2) {
        out.put_vector(std::vector<float>(p, p + t.numel()));
        continue;
      }
      const int64_t rows = t.size(0), cols = t.numel() / rows;
      std::vector<float> lo(static_cast<size_t>(rows)), scale(static_cast<size_t>(rows));
      std::vector<uint8_t> packed;
      uint64_t acc = 0;
      int pending = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = p + r * cols;
        const float mn = *std::min_element(row, row + cols), mx = *std::max_element(row, row + cols);
        double best = INFINITY;
        for (double clip : {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}) {
          const float a = mn + static_cast<float>(clip / 2) * (mx - mn), b = mx - static_cast<float>(clip / 2) * (mx - mn);
          const float s = b > a ? (b - a) / static_cast<float>(bins - 1) : 1.0f;
          double err = 0.0;
          for (int64_t c = 0; c < cols; ++c) {
            const float q = a + s * std::clamp(std::round((row[c] - a) / s), 0.0f, static_cast<float>(bins - 1));
            err += static_cast<double>(row[c] - q) * (row[c] - q);
          }
          if (err < best) best = err, lo[static_cast<size_t>(r)] = a, scale[static_cast<size_t>(r)] = s;
        }
        for (int64_t c = 0; c < cols; ++c) {
          const auto code = static_cast<uint32_t>(std::clamp(std::round((row[c] - lo[static_cast<size_t>(r)]) / scale[static_cast<size_t>(r)]), 0.0f,
                                                             static_cast<float>(bins - 1)));
          acc = (acc << bits) | code;
          pending += bits;
          while (pending >= 8) {
            pending -= 8;
            packed.push_back(static_cast<uint8_t>(acc >> pending));
          }
        }
      }
      if (pending) packed.push_back(static_cast<uint8_t>(acc << (8 - pending)));
      out.put_vector(lo);
      out.put_vector(scale);
      out.put_vector(packed);
    }
    return out.take();
  }

  static nn::StateDict decode_one(const std::vector<std::byte>& bytes) {
    jobs::ByteReader in(bytes);
    try {
      const int bins = in.get<int32_t>();
      if (bins < 2 || bins > 65536) throw ContainerError("cnr checkpoint: bad bin count (corrupt)");
      const int bits = static_cast<int>(std::ceil(std::log2(bins)));
      nn::StateDict out;
      const auto n = in.get<uint64_t>();
      for (uint64_t k = 0; k < n; ++k) {
        std::string name = in.get_string();
        nn::Tensor t = nn::Tensor::empty(in.get_vector<int64_t>(), tensor::DType::kF32);
        float* p = t.data<float>();
        if (t.dim() < 2) {
          auto v = in.get_vector<float>();
          if (static_cast<int64_t>(v.size()) != t.numel()) throw ContainerError("cnr checkpoint: size mismatch (corrupt)");
          std::copy(v.begin(), v.end(), p);
        } else {
          auto lo = in.get_vector<float>(), scale = in.get_vector<float>();
          auto packed = in.get_vector<uint8_t>();
          const int64_t rows = t.size(0), cols = t.numel() / rows;
          if (static_cast<int64_t>(lo.size()) != rows || scale.size() != lo.size() ||
              packed.size() * 8 < static_cast<size_t>(t.numel()) * static_cast<size_t>(bits))
            throw ContainerError("cnr checkpoint: size mismatch (corrupt)");
          uint64_t bit = 0;
          for (int64_t i = 0; i < t.numel(); ++i) {
            uint32_t code = 0;
            for (int b = 0; b < bits; ++b, ++bit) code = (code << 1) | ((packed[bit / 8] >> (7 - bit % 8)) & 1u);
            const auto r = static_cast<size_t>(i / cols);
            p[i] = lo[r] + scale[r] * static_cast<float>(code);
          }
        }
        out.emplace_back(std::move(name), t);
      }
      return out;
    } catch (const jobs::CheckpointError& e) {
      throw ContainerError(std::string("cnr checkpoint: ") + e.what());
    }
  }

 private:
  Quality quality_;
  double keep_;
};

// QD-Compressor: per-tensor uniform levels (quantize_uniform, before differencing), index
// deltas mod the bin count against the previous checkpoint, Huffman only; in DynaQuant's
// container, with no pruned or protected symbols.
class QdCodec final : public CheckpointCodec {
 public:
  QdCodec(Quality q, double floor_fraction) : quality_(std::move(q)), keep_(floor_fraction) {}
  EncodedCheckpoint encode(uint64_t step, const nn::StateDict& w, const std::map<std::string, std::vector<float>>&) override {
    const double floor = quality_(w) * keep_;
    const int bins = smallest_feasible(kBaselineLevels, [&](int b) { return quality_(dequantize(quantize_uniform(w, b))) >= floor; });
    auto q = quantize_uniform(w, bins);
    ContainerHeader h;
    h.step = step;
    h.parent_step = parent_ ? static_cast<int64_t>(parent_step_) : -1;
    h.config.bins = bins;
    h.config.protect_fraction = 0.0;
    h.layout = DeltaLayout::kHuffmanOnly;
    EncodedCheckpoint e{encode_container(h, q, parent_ ? &*parent_ : nullptr), !parent_, {}, bins};
    parent_ = std::move(q);
    parent_step_ = step;
    return e;
  }
  nn::StateDict decode(const std::vector<std::vector<std::byte>>& chain) override { return dequantize(decode_chain(chain)); }
  nn::StateDict restore(const std::vector<std::vector<std::byte>>& chain, uint64_t step) override {
    parent_ = decode_chain(chain);
    parent_step_ = step;
    return dequantize(*parent_);
  }

 private:
  Quality quality_;
  double keep_;
  std::optional<std::vector<QuantizedTensor>> parent_;
  uint64_t parent_step_ = 0;
};

// LC-Checkpoint: the delta between the weights and the reconstruction of the previous checkpoint,
// bucketed by (sign, binary exponent); the 2^b − 1 buckets with the largest exponents are kept,
// each as its mean, everything else becomes 0; Huffman over bucket indices.
class LcCodec final : public CheckpointCodec {
 public:
  LcCodec(Quality q, double floor_fraction) : quality_(std::move(q)), keep_(floor_fraction) {}
  EncodedCheckpoint encode(uint64_t, const nn::StateDict& w, const std::map<std::string, std::vector<float>>&) override {
    const double floor = quality_(w) * keep_;
    const int b = smallest_feasible({2, 3, 4, 5, 6, 7, 8}, [&](int bits) {
      return quality_(apply(reference(w), encode_with(w, bits))) >= floor;
    });
    auto bytes = encode_with(w, b);
    const bool first = !previous_;
    previous_ = apply(reference(w), bytes);
    return {bytes, first, {}, (1 << b) - 1};  // 2^b − 1 buckets (and zero)
  }
  nn::StateDict decode(const std::vector<std::vector<std::byte>>& chain) override {
    std::optional<nn::StateDict> current;
    for (const auto& bytes : chain) current = apply(current ? *current : zeros_like(read_names(bytes)), bytes);
    return *current;
  }
  nn::StateDict restore(const std::vector<std::vector<std::byte>>& chain, uint64_t) override {
    previous_ = decode(chain);
    return *previous_;
  }

 private:
  static nn::StateDict zeros_like(const nn::StateDict& w) {
    nn::StateDict z;
    for (const auto& [name, t] : w) z.emplace_back(name, nn::Tensor::zeros(t.shape(), tensor::DType::kF32));
    return z;
  }
  nn::StateDict reference(const nn::StateDict& w) const { return previous_ ? *previous_ : zeros_like(w); }

  std::vector<std::byte> encode_with(const nn::StateDict& w, int bits) const {
    const nn::StateDict ref = reference(w);
    jobs::ByteWriter out;
    out.put<uint64_t>(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      const auto& [name, t] = w[i];
      const float* p = t.data<float>();
      const float* r = ref[i].second.data<float>();
      const auto n = static_cast<size_t>(t.numel());
      // Bucket key: exponent·2 + sign; keep the 2^b − 1 largest exponents.
      std::vector<int32_t> key(n);
      std::map<int32_t, std::pair<double, uint64_t>> buckets;  // key → (sum, count)
      for (size_t k = 0; k < n; ++k) {
        const float d = p[k] - r[k];
        if (d == 0.0f) {
          key[k] = INT32_MIN;
          continue;
        }
        int e = 0;
        std::frexp(d, &e);
        key[k] = e * 2 + (d < 0);
        auto& b = buckets[key[k]];
        b.first += d;
        ++b.second;
      }
      const size_t keep = (size_t{1} << bits) - 1;
      std::vector<int32_t> keys;
      for (auto& [k, v] : buckets) keys.push_back(k);
      std::sort(keys.begin(), keys.end(), std::greater<>());  // largest exponents first
      if (keys.size() > keep) keys.resize(keep);
      std::map<int32_t, int32_t> symbol;
      std::vector<float> reps;
      for (int32_t k : keys) {
        symbol[k] = static_cast<int32_t>(reps.size() + 1);
        reps.push_back(static_cast<float>(buckets[k].first / static_cast<double>(buckets[k].second)));
      }
      std::vector<int32_t> stream(n, 0);
      for (size_t k = 0; k < n; ++k)
        if (auto it = symbol.find(key[k]); key[k] != INT32_MIN && it != symbol.end()) stream[k] = it->second;
      out.put_string(name);
      out.put_vector(t.shape());
      out.put_vector(reps);
      huffman_encode(stream, out);
    }
    return out.take();
  }

  static nn::StateDict read_names(const std::vector<std::byte>& bytes) {
    nn::StateDict shapes;
    jobs::ByteReader in(bytes);
    const auto n = in.get<uint64_t>();
    for (uint64_t i = 0; i < n; ++i) {
      std::string name = in.get_string();
      nn::Tensor t = nn::Tensor::empty(in.get_vector<int64_t>(), tensor::DType::kF32);
      in.get_vector<float>();
      huffman_decode(in);
      shapes.emplace_back(std::move(name), t);
    }
    return shapes;
  }

  static nn::StateDict apply(const nn::StateDict& ref, const std::vector<std::byte>& bytes) {
    jobs::ByteReader in(bytes);
    try {
      const auto n = in.get<uint64_t>();
      if (n != ref.size()) throw ContainerError("lc checkpoint: tensor count differs from its parent (wrong parent?)");
      nn::StateDict out;
      for (uint64_t i = 0; i < n; ++i) {
        std::string name = in.get_string();
        auto shape = in.get_vector<int64_t>();
        auto reps = in.get_vector<float>();
        auto stream = huffman_decode(in);
        const nn::Tensor& r = ref[i].second;
        if (name != ref[i].first || shape != r.shape() || static_cast<int64_t>(stream.size()) != r.numel())
          throw ContainerError(fmt::format("lc checkpoint: tensor '{}' does not match its parent (wrong parent?)", name));
        nn::Tensor t = r.clone();
        for (size_t k = 0; k < stream.size(); ++k) {
          if (stream[k] < 0 || static_cast<size_t>(stream[k]) > reps.size()) throw ContainerError("lc checkpoint: bad symbol (corrupt)");
          if (stream[k]) t.data<float>()[k] += reps[static_cast<size_t>(stream[k]) - 1];
        }
        out.emplace_back(std::move(name), t);
      }
      return out;
    } catch (const jobs::CheckpointError& e) {
      throw ContainerError(std::string("lc checkpoint: ") + e.what());
    }
  }

  Quality quality_;
  double keep_;
  std::optional<nn::StateDict> previous_;
};

}  // namespace

const std::vector<std::string>& codec_names() {
  static const std::vector<std::string> names{"dynaquant", "none", "zstd", "uniform8_zstd", "cnr", "qd", "lc"};
  return names;
}

nn::StateDict cnr_quantized(const nn::StateDict& weights, int bins) {
  return CnrCodec::decode_one(CnrCodec::encode_with(weights, bins));
}

std::unique_ptr<CheckpointCodec> make_codec(const std::string& method, const CompressorOptions& o,
                                            CheckpointCodec::Quality quality) {
  const double keep = 1.0 - o.epsilon;
  if (method == "dynaquant") return std::make_unique<DynaQuantCodec>(o, std::move(quality));
  if (method == "none") return std::make_unique<NoneCodec>();
  if (method == "zstd") return std::make_unique<ZstdCodec>(false);
  if (method == "uniform8_zstd") return std::make_unique<ZstdCodec>(true);
  if (method == "cnr") return std::make_unique<CnrCodec>(std::move(quality), keep);
  if (method == "qd") return std::make_unique<QdCodec>(std::move(quality), keep);
  if (method == "lc") return std::make_unique<LcCodec>(std::move(quality), keep);
  throw std::invalid_argument(fmt::format("unknown compression method '{}'", method));
}

}  // namespace xp::compression
