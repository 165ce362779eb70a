// DynaQuant's per-checkpoint quantization (docs/dynaquant.md): the gradient EMA that
// scores sensitivity, the partition of every weight into prune / protect / quantize with
// thresholds per layer type, and non-uniform k-means levels per tensor. A quantized tensor is
// its symbols {0 = pruned, 1..K = level, K+1 = protected} plus the levels and the protected
// values (bf16, in tensor order); 1-D and tiny tensors are kept raw (fp32). A weight both prunable
// and protected is protected. Pure functions of their inputs and the config's seed.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/nn/state_dict.h"

namespace xp::compression {

enum class PruneMetric : uint8_t { kMagnitude = 0, kSensitivity = 1 };

struct QuantConfig {
  int bins = 8;                 // K for every non-embedding tensor
  int embedding_bins = 16;      // K for embeddings (more sensitive)
  double prune_fraction = 0.0;  // share of each layer type's weights (lowest score) stored as 0
  PruneMetric prune_metric = PruneMetric::kMagnitude;
  double protect_fraction = 0.005;  // top share by |w| or by sensitivity, stored in bf16
  double sigma = 0.2;               // k-means bucket weight: counts vs magnitudes
  double alpha = 0.01;              // log-bucket relative error
  uint64_t seed = 0;
};

// Tensors with fewer elements, or fewer than 2 dimensions, are stored raw.
inline constexpr int64_t kMinQuantizedElements = 256;

struct QuantizedTensor {
  std::string name;
  tensor::Shape shape;
  std::string layer_type;         // "linear" | "conv" | "embedding" | "raw"
  std::vector<float> raw;         // raw tensors only
  std::vector<float> levels;      // ascending
  std::vector<uint16_t> symbols;  // quantized tensors only
  std::vector<uint16_t> protected_bf16;
  bool is_raw() const { return layer_type == "raw"; }
  int alphabet() const { return static_cast<int>(levels.size()) + 2; }
};

// "embedding" when the name says so, "conv" for 4-D weights, "linear" for other ≥ 2-D weights,
// "raw" for biases, norm scales and tiny tensors.
std::string layer_type_of(const std::string& name, const tensor::Tensor& t);

// The EMA of gradients over the last `window` steps before a checkpoint (Step A):
// EMA = β·g + (1−β)·EMA, β = 0.9 by default (the weight sits on the new gradient).
class GradientEma {
 public:
  explicit GradientEma(double beta = 0.9) : beta_(beta) {}
  void update(const std::string& name, const tensor::Tensor& grad);
  void reset() { ema_.clear(); }
  void restore(std::map<std::string, std::vector<float>> values) { ema_ = std::move(values); }
  const std::map<std::string, std::vector<float>>& values() const { return ema_; }

 private:
  double beta_;
  std::map<std::string, std::vector<float>> ema_;
};

// Quantizes named f32 tensors. `ema` (name → gradient EMA, same size) gives the sensitivity
// |EMA·w|; a tensor without one scores sensitivity by magnitude.
std::vector<QuantizedTensor> quantize(const nn::StateDict& tensors, const std::map<std::string, std::vector<float>>& ema,
                                      const QuantConfig& config);
nn::StateDict dequantize(const std::vector<QuantizedTensor>& tensors);
// The same into existing f32 tensors of the same names and shapes (a model's own weights on a
// restore): no allocation, so no page faults for fresh memory.
void dequantize_into(const std::vector<QuantizedTensor>& tensors, nn::StateDict& out);
// The uniform alternative: `bins` evenly spaced levels over each tensor's [min, max], nothing
// pruned or protected (QD-Compressor's quantizer; the one-shot bins comparison).
std::vector<QuantizedTensor> quantize_uniform(const nn::StateDict& tensors, int bins);

uint16_t to_bf16(float v);  // round to nearest even
float from_bf16(uint16_t v);

}  // namespace xp::compression
