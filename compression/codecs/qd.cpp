// QD-Compressor-style quantized deltas, the `qd` baseline.
#include "compression/codec.h"

#include <optional>

#include "compression/codecs/search_grid.h"

namespace xp::compression {
namespace {

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

}  // namespace

std::unique_ptr<CheckpointCodec> make_qd_codec(const CompressorOptions& o, CheckpointCodec::Quality q) {
  return std::make_unique<QdCodec>(std::move(q), 1.0 - o.epsilon);
}

}  // namespace xp::compression
