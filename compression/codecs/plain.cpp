// The codecs without a search: the state dict as is, zstd of it, and zstd of 8-bit codes.
#include "compression/codec.h"

#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "compression/container.h"

namespace xp::compression {
namespace {

std::vector<std::byte> zstd_compress(const std::vector<std::byte>& raw, int level) {
  std::vector<std::byte> out(ZSTD_compressBound(raw.size()) + 8);
  const uint64_t n = raw.size();
  std::memcpy(out.data(), &n, 8);
  const size_t z = ZSTD_compress(out.data() + 8, out.size() - 8, raw.data(), raw.size(), level);
  if (ZSTD_isError(z)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(z));
  out.resize(z + 8);
  return out;
}

std::vector<std::byte> zstd_decompress(const std::vector<std::byte>& bytes) {
  if (bytes.size() < 8) throw ContainerError("zstd checkpoint truncated");
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  if (n > (uint64_t{1} << 40)) throw ContainerError("zstd checkpoint: implausible size (corrupt)");
  std::vector<std::byte> raw(n);
  const size_t got = ZSTD_decompress(raw.data(), raw.size(), bytes.data() + 8, bytes.size() - 8);
  if (ZSTD_isError(got) || got != n) throw ContainerError("zstd checkpoint is corrupt");
  return raw;
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

// zstd of the fp32 bytes (lossless), or of per-tensor uniform 8-bit codes over [min, max].
class ZstdCodec final : public CheckpointCodec {
 public:
  explicit ZstdCodec(bool uniform8) : uniform8_(uniform8) {}
  EncodedCheckpoint encode(uint64_t, const nn::StateDict& w, const std::map<std::string, std::vector<float>>&) override {
    return {uniform8_ ? encode_uniform8(w) : encode_plain(w), true, {}, uniform8_ ? 256 : -1};
  }
  nn::StateDict decode(const std::vector<std::vector<std::byte>>& chain) override {
    return uniform8_ ? decode_uniform8(chain.back()) : decode_plain(chain.back());
  }

 private:
  static constexpr int kLevel = 3;
  static std::vector<std::byte> encode_plain(const nn::StateDict& weights) {
    jobs::ByteWriter w;
    nn::write_state_dict(w, weights);
    return zstd_compress(w.bytes(), kLevel);
  }

  static nn::StateDict decode_plain(const std::vector<std::byte>& bytes) {
    auto raw = zstd_decompress(bytes);
    jobs::ByteReader r(raw);
    try {
      return nn::read_state_dict(r);
    } catch (const jobs::CheckpointError& e) {
      throw ContainerError(std::string("zstd checkpoint: ") + e.what());
    }
  }

  static std::vector<std::byte> encode_uniform8(const nn::StateDict& weights) {
    jobs::ByteWriter w;
    w.put<uint64_t>(weights.size());
    for (const auto& [name, t] : weights) {
      const float* p = t.data<float>();
      const auto n = static_cast<size_t>(t.numel());
      w.put_string(name);
      w.put_vector(t.shape());
      const float lo = n ? *std::min_element(p, p + n) : 0.0f, hi = n ? *std::max_element(p, p + n) : 0.0f;
      const float scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
      w.put<float>(lo);
      w.put<float>(scale);
      std::vector<uint8_t> q(n);
      for (size_t i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(std::clamp(std::lround((p[i] - lo) / scale), 0L, 255L));
      w.put_vector(q);
    }
    return zstd_compress(w.bytes(), kLevel);
  }

  static nn::StateDict decode_uniform8(const std::vector<std::byte>& bytes) {
    auto raw = zstd_decompress(bytes);
    jobs::ByteReader r(raw);
    try {
      nn::StateDict out;
      const auto count = r.get<uint64_t>();
      for (uint64_t k = 0; k < count; ++k) {
        std::string name = r.get_string();
        auto shape = r.get_vector<int64_t>();
        const auto lo = r.get<float>(), scale = r.get<float>();
        auto q = r.get_vector<uint8_t>();
        nn::Tensor t = nn::Tensor::empty(shape, tensor::DType::kF32);
        if (static_cast<int64_t>(q.size()) != t.numel()) throw ContainerError(fmt::format("uniform8 checkpoint: '{}' size mismatch", name));
        for (size_t i = 0; i < q.size(); ++i) t.data<float>()[i] = lo + scale * static_cast<float>(q[i]);
        out.emplace_back(std::move(name), t);
      }
      return out;
    } catch (const jobs::CheckpointError& e) {
      throw ContainerError(std::string("uniform8 checkpoint: ") + e.what());
    }
  }

  bool uniform8_;
};

}  // namespace

std::unique_ptr<CheckpointCodec> make_none_codec(const CompressorOptions&, CheckpointCodec::Quality) {
  return std::make_unique<NoneCodec>();
}
std::unique_ptr<CheckpointCodec> make_zstd_codec(const CompressorOptions&, CheckpointCodec::Quality) {
  return std::make_unique<ZstdCodec>(false);
}
std::unique_ptr<CheckpointCodec> make_uniform8_zstd_codec(const CompressorOptions&, CheckpointCodec::Quality) {
  return std::make_unique<ZstdCodec>(true);
}

}  // namespace xp::compression
