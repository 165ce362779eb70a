// DynaQuant itself as a codec: the compressor of compressor.h, its delta chain and restore.
#include "compression/codec.h"


namespace xp::compression {
namespace {

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

}  // namespace

std::unique_ptr<CheckpointCodec> make_dynaquant_codec(const CompressorOptions& o, CheckpointCodec::Quality q) {
  return std::make_unique<DynaQuantCodec>(o, std::move(q));
}

}  // namespace xp::compression
