#include "compression/codec.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

namespace xp::compression {

// Each defined in its codec's file under codecs/.
std::unique_ptr<CheckpointCodec> make_dynaquant_codec(const CompressorOptions& o, CheckpointCodec::Quality q);
std::unique_ptr<CheckpointCodec> make_none_codec(const CompressorOptions& o, CheckpointCodec::Quality q);
std::unique_ptr<CheckpointCodec> make_zstd_codec(const CompressorOptions& o, CheckpointCodec::Quality q);
std::unique_ptr<CheckpointCodec> make_uniform8_zstd_codec(const CompressorOptions& o, CheckpointCodec::Quality q);
std::unique_ptr<CheckpointCodec> make_cnr_codec(const CompressorOptions& o, CheckpointCodec::Quality q);
std::unique_ptr<CheckpointCodec> make_qd_codec(const CompressorOptions& o, CheckpointCodec::Quality q);
std::unique_ptr<CheckpointCodec> make_lc_codec(const CompressorOptions& o, CheckpointCodec::Quality q);

namespace {

std::vector<CodecType>& registry() {
  static std::vector<CodecType> all = {
      {"dynaquant", "DynaQuant: pruned, protected, non-uniform levels searched per checkpoint, delta chain",
       make_dynaquant_codec},
      {"none", "the state dict as is (the uncompressed reference)", make_none_codec},
      {"zstd", "lossless zstd (level 3) of the fp32 bytes", make_zstd_codec},
      {"uniform8_zstd", "per-tensor uniform 8-bit codes, then zstd", make_uniform8_zstd_codec},
      {"cnr", "Check-N-Run-style per-row adaptive uniform levels over a clipped range; bins searched",
       make_cnr_codec},
      {"qd", "QD-Compressor-style uniform-level index deltas, Huffman; bins searched", make_qd_codec},
      {"lc", "LC-Checkpoint-style exponent buckets of the delta, Huffman; buckets searched", make_lc_codec},
  };
  return all;
}

}  // namespace

const std::vector<CodecType>& codec_types() { return registry(); }

void register_codec(CodecType type) {
  for (const auto& c : registry())
    if (c.name == type.name) throw std::invalid_argument(fmt::format("a codec named '{}' is registered already", type.name));
  registry().push_back(std::move(type));
}

std::vector<std::string> codec_names() {
  std::vector<std::string> out;
  for (const auto& c : codec_types()) out.push_back(c.name);
  return out;
}

std::unique_ptr<CheckpointCodec> make_codec(const std::string& method, const CompressorOptions& o,
                                            CheckpointCodec::Quality quality) {
  for (const auto& c : codec_types())
    if (c.name == method) return c.make(o, std::move(quality));
  throw std::invalid_argument(
      fmt::format("unknown compression method '{}' (registered: {})", method, fmt::join(codec_names(), ", ")));
}

}  // namespace xp::compression
