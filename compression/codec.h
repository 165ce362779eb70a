// One interface for every way the dynaquant experiment stores a checkpoint — DynaQuant and the
// baselines of docs/dynaquant.md — so they run through the same training loop, failures and
// measurements. Each codec with a knob picks it like DynaQuant does: the most compressive
// setting whose decompressed weights keep quality ≥ (1 − ε) × the uncompressed quality.
// One registry entry each (codec.cpp), each codec in a file of its own under codecs/:
//   none           the state dict as is
//   zstd           lossless zstd (level 3)
//   uniform8_zstd  per-tensor uniform 8-bit, then zstd
//   cnr            Check-N-Run-style adaptive uniform: per-row uniform levels over a clipped range
//                  (greedy clipping search per row), fixed-width codes; bins searched
//   qd             QD-Compressor-style: per-tensor uniform levels, index deltas mod the bin count
//                  against the previous checkpoint, Huffman; bins searched
//   lc             LC-Checkpoint-style: the delta from the reconstructed previous checkpoint,
//                  bucketed by sign and binary exponent, the 2^b − 1 largest-exponent buckets
//                  kept (bucket means), Huffman; b searched
//   dynaquant      DynaQuantCompressor
// decode() takes the chain of encodings since the last self-contained one. Not thread-safe.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compression/compressor.h"

namespace xp::compression {

struct EncodedCheckpoint {
  std::vector<std::byte> bytes;
  bool self_contained = true;  // false: decoding needs the earlier encodings of the chain
  CompressedCheckpoint details;  // DynaQuant's search details (zero for the baselines)
  int levels = -1;               // quantization levels chosen (DynaQuant's K, a baseline's); -1: none
};

class CheckpointCodec {
 public:
  using Quality = DynaQuantCompressor::Quality;
  virtual ~CheckpointCodec() = default;
  virtual EncodedCheckpoint encode(uint64_t step, const nn::StateDict& weights,
                                   const std::map<std::string, std::vector<float>>& gradient_ema) = 0;
  virtual nn::StateDict decode(const std::vector<std::vector<std::byte>>& chain) = 0;
  // A restore: the weights of `chain`, from which later deltas continue (decoded once).
  virtual nn::StateDict restore(const std::vector<std::vector<std::byte>>& chain, uint64_t /*step*/) {
    return decode(chain);
  }
  // What a preempted run must carry beyond the chain (restore() rebuilds the parent from it):
  // DynaQuant's last search point and checkpoint count; nothing for the baselines.
  virtual void save_state(jobs::ByteWriter& /*out*/) const {}
  virtual void load_state(jobs::ByteReader& /*in*/) {}
};

struct CodecType {
  std::string name;         // compression.method
  std::string description;  // one line
  // quality and options.epsilon drive the searches.
  std::unique_ptr<CheckpointCodec> (*make)(const CompressorOptions& options, CheckpointCodec::Quality quality);
};

const std::vector<CodecType>& codec_types();
// Adds a codec from code outside this tree (a plugin, a test) before any run starts (not
// thread-safe); throws std::invalid_argument when its name is taken.
void register_codec(CodecType type);
std::vector<std::string> codec_names();  // in registry order
// Throws std::invalid_argument for a method not registered.
std::unique_ptr<CheckpointCodec> make_codec(const std::string& method, const CompressorOptions& options,
                                            CheckpointCodec::Quality quality);

// Check-N-Run-style adaptive uniform quantization (the cnr codec) at `bins` levels, dequantized:
// the comparison column of the one-shot bins table.
nn::StateDict cnr_quantized(const nn::StateDict& weights, int bins);

}  // namespace xp::compression
