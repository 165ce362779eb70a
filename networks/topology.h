// A trained binarized network read as a topology (training.md §3.3): per layer, each unit's list
// of active inputs, and the unit's evaluation-time norm folded into y = α·tanh(on·s) + β, where
// s is the sum of its active inputs (hard_invert: α = −1, β = 1; soft_invert: α = 1 − 2a, β = a;
// batch_norm: α = γ/√(var + ε), β = b − α·mean).
//
// From it: sparse constant-weight evaluation (cost ∝ active connections, which makes the
// `on` sweep cheap), the NOR-agreement measurements, and the exact Boolean circuit in which
// every hidden unit is NOR (α < 0) or OR (α > 0) of its active inputs and the output layer scores
// integer popcounts. Immutable once built; evaluation is thread-safe.
#pragma once
#include <cstdint>
#include <vector>

#include "core/data/dataset.h"
#include "networks/network.h"

namespace xp::networks {

struct TopologyLayer {
  int64_t in = 0, out = 0;
  std::vector<int64_t> start;   // unit j's active inputs are inputs[start[j] .. start[j+1])
  std::vector<int32_t> inputs;
  std::vector<float> alpha, beta;
  int64_t active() const { return static_cast<int64_t>(inputs.size()); }
};

struct NorLayerReport {
  int64_t units = 0;          // units with at least one active input
  double mean_agreement = 0;  // mean over those units of P(NOR(binarized inputs) == (output > 0.5))
  double share_at_99 = 0;     // share of those units agreeing on ≥ 99% of samples
  int64_t inverting = 0;      // units whose folded norm has α < 0
};

class Topology {
 public:
  // Needs a binarized network; reads its current latent weights and norm parameters.
  explicit Topology(Network& net);
  const std::vector<TopologyLayer>& layers() const { return layers_; }
  int64_t active() const;

  // Class scores [samples, classes] with every active weight equal to `on`.
  std::vector<float> scores(const data::Dataset& d, float on) const;
  std::vector<int32_t> predict(const data::Dataset& d, float on) const;
  // The Boolean circuit's decision per sample (inputs binarized at 0.5): the class with the best
  // integer-popcount score, ties going to the lowest index, and the set of classes tied for best
  // (bit c set = class c). A circuit of integers ties often; the float net resolves those ties
  // with the small analog residues (1 − tanh(count) > 0) the circuit drops.
  struct CircuitPredictions {
    std::vector<int32_t> predicted;
    std::vector<uint64_t> tied;
  };
  CircuitPredictions predict_circuit(const data::Dataset& d) const;
  // NOR agreement per layer at on = 1 (§3.3, measurement 2).
  std::vector<NorLayerReport> nor_agreement(const data::Dataset& d) const;

 private:
  // Runs `d` through the layers in chunks; calls visit(layer, input, output, chunk) with
  // feature-major [features, chunk] activations, from several threads at once when `parallel`.
  template <class Visit>
  void propagate(const data::Dataset& d, float on, bool parallel, Visit visit) const;
  std::vector<TopologyLayer> layers_;
};

double accuracy(const std::vector<int32_t>& predictions, const data::Dataset& d);
double agreement(const std::vector<int32_t>& a, const std::vector<int32_t>& b);
// Share of samples whose `predictions` class is among the circuit's tied best classes.
double agreement_up_to_ties(const Topology::CircuitPredictions& circuit, const std::vector<int32_t>& predictions);
// Share of samples on which the circuit's best score is tied between two or more classes.
double tie_share(const Topology::CircuitPredictions& circuit);
// Agreement on the samples where the circuit is decisive (one best class): whether the float
// net follows the circuit wherever the circuit decides, apart from how ties are broken.
double agreement_where_decisive(const Topology::CircuitPredictions& circuit, const std::vector<int32_t>& predictions);

}  // namespace xp::networks
