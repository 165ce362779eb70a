// Check-N-Run-style adaptive uniform quantization, the `cnr` baseline.
#include "compression/codec.h"

#include <algorithm>
#include <cmath>

#include "compression/codecs/search_grid.h"

namespace xp::compression {
namespace {

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

}  // namespace

std::unique_ptr<CheckpointCodec> make_cnr_codec(const CompressorOptions& o, CheckpointCodec::Quality q) {
  return std::make_unique<CnrCodec>(std::move(q), 1.0 - o.epsilon);
}

nn::StateDict cnr_quantized(const nn::StateDict& weights, int bins) {
  return CnrCodec::decode_one(CnrCodec::encode_with(weights, bins));
}

}  // namespace xp::compression
