// LC-Checkpoint-style exponent buckets of the delta, the `lc` baseline.
#include "compression/codec.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <optional>

#include "compression/codecs/search_grid.h"
#include "compression/entropy.h"

namespace xp::compression {
namespace {

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

std::unique_ptr<CheckpointCodec> make_lc_codec(const CompressorOptions& o, CheckpointCodec::Quality q) {
  return std::make_unique<LcCodec>(std::move(q), 1.0 - o.epsilon);
}

}  // namespace xp::compression
