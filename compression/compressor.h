// DynaQuantCompressor: the whole in-training compressor (docs/dynaquant.md). At each checkpoint it
// picks a QuantConfig with the search (guided at the first checkpoint and after a base, the
// neighbourhood search otherwise) so the dequantized model's quality stays within a relative drop
// ε of the live model's, quantizes with it, and encodes a container: a base every full_every_n
// checkpoints (and the first), otherwise a delta against the previous checkpoint's symbols.
// restore() rebuilds weights from a chain of containers, base first. Not thread-safe.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "compression/container.h"
#include "compression/search.h"

namespace xp::compression {

struct CompressorOptions {
  double epsilon = 0.05;   // largest relative quality drop allowed per checkpoint
  bool search = true;      // false: always use `base` as it is
  QuantConfig base;        // the fixed config, or the search's σ, α, seed and embedding bins
  ConfigCube cube;
  int radius = 1;          // neighbourhood search radius
  int full_every_n = 0;    // every n-th checkpoint is a base (0: only the first)
  DeltaLayout layout = DeltaLayout::kRearranged;
  int search_threads = 1;  // quality evaluations at once (the Quality callback must then be thread-safe)
};

struct CompressedCheckpoint {
  std::vector<std::byte> bytes;
  QuantConfig config;
  bool base = false;
  bool exhaustive = false;    // the guided exhaustive search ran (not the neighbourhood one)
  int evaluations = 0;        // quality evaluations by the search
  double quality_live = 0.0;
  double quality_restored = 0.0;
  size_t raw_bytes = 0;       // the weights as fp32
};

class DynaQuantCompressor {
 public:
  // Quality of a set of weights on the fixed evaluation batches; higher is better (accuracy).
  // Called from several threads at once when options.search_threads > 1.
  using Quality = std::function<double(const nn::StateDict& weights)>;
  DynaQuantCompressor(CompressorOptions options, Quality quality);

  CompressedCheckpoint compress(uint64_t step, const nn::StateDict& weights,
                                const std::map<std::string, std::vector<float>>& gradient_ema);
  // After a restore the live model equals the restored one: the next delta is against it.
  void reset_parent(std::vector<QuantizedTensor> parent, uint64_t parent_step);
  // The search position and checkpoint count, for a run resumed after preemption (its parent
  // comes back through reset_parent from the chain on disk).
  void save_state(jobs::ByteWriter& out) const;
  void load_state(jobs::ByteReader& in);

 private:
  double estimated_ratio(const std::vector<QuantizedTensor>& q, size_t raw_bytes) const;
  CompressorOptions opt_;
  Quality quality_;
  std::optional<std::vector<QuantizedTensor>> parent_;
  uint64_t parent_step_ = 0;
  std::optional<CubePoint> previous_;
  int count_ = 0;
};

// Weights from a chain of containers, base first (each a delta against the one before).
// Throws ContainerError when a link is corrupt, missing or from another model.
std::vector<QuantizedTensor> decode_chain(const std::vector<std::vector<std::byte>>& chain);

size_t fp32_bytes(const nn::StateDict& weights);

}  // namespace xp::compression
