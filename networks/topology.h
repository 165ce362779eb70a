// A trained binarized network read as a topology (docs/binarized_topology.md): per layer, each unit's list
// of active inputs, and the unit's evaluation-time norm folded into y = α·tanh(on·s) + β, where
// s is the sum of its active inputs (hard_invert: α = −1, β = 1; soft_invert: α = 1 − 2a, β = a;
// batch_norm: α = γ/√(var + ε), β = b − α·mean).
//
// The topology keeps the net's constant weight `on` (network.on, 1 unless trained otherwise):
// the NOR measurement and the circuit's output scores use it.
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

// Per-unit NOR agreement of one layer (docs/binarized_topology.md): does each unit's output > 0.5 equal NOR
// of its active inputs binarized at 0.5? Counted so it cannot be inflated: only over units whose
// output varies over the samples (a constant unit agrees or disagrees trivially) and that lie on
// a path of active connections to an output, pooled over (unit, sample) pairs.
struct NorLayerReport {
  int64_t units = 0;             // units with at least one active input
  int64_t counted = 0;           // of those, varying and on a path to an output
  double agreement = 0;          // pooled over the counted units' samples (NaN when none is counted)
  double share_at_99 = 0;        // share of counted units agreeing on ≥ 99% of samples
  int64_t nor_but_low = 0;       // disagreements (unit × sample) where NOR = 1 and the output ≤ 0.5
  int64_t not_nor_but_high = 0;  // where NOR = 0 and the output > 0.5
  double mean_over_all = 0;      // the inflatable reading: mean over every unit with an input
  int64_t inverting = 0;         // units whose folded norm has α < 0
};

// The criterion: in every hidden layer past the first (the first is NOR by construction on binary
// input), pooled agreement ≥ 99% and ≥ 90% of the counted units at ≥ 99%. `layers` is how many
// layers it looked at; a net with one hidden layer, or a layer with no counted unit, fails.
struct NorCriterion {
  bool met = false;
  int64_t layers = 0;
  double min_agreement = 0;    // lowest pooled agreement over those layers
  double min_share_at_99 = 0;  // lowest share of units at ≥ 99%
};
NorCriterion nor_criterion(const std::vector<NorLayerReport>& reports);

class Topology {
 public:
  // Needs a binarized network; reads its current latent weights and norm parameters.
  explicit Topology(Network& net);
  const std::vector<TopologyLayer>& layers() const { return layers_; }
  int64_t active() const;
  float on() const { return on_; }

  // Class scores [samples, classes] with every active weight equal to `on`.
  std::vector<float> scores(const data::Dataset& d, float on) const;
  std::vector<int32_t> predict(const data::Dataset& d, float on) const;
  // The Boolean circuit's decision per sample (inputs binarized at 0.5): the class with the best
  // integer-popcount score, ties going to the lowest index, and the set of classes tied for best
  // (bit c set = class c). An output unit scores α·tanh(on·popcount) + β evaluated in double as
  // (α + β) − α·(1 − tanh), the residue taken as 2/(e^(2·on·popcount) + 1), so distinct counts
  // never round to the same score (tanhf is 1.0 from 10 on). A circuit of integers ties often;
  // the float net resolves those ties with the small analog residues the circuit drops.
  struct CircuitPredictions {
    std::vector<int32_t> predicted;
    std::vector<uint64_t> tied;
  };
  CircuitPredictions predict_circuit(const data::Dataset& d) const;
  // NOR agreement per layer at the net's `on` (§3.3, measurement 2).
  std::vector<NorLayerReport> nor_agreement(const data::Dataset& d) const;

 private:
  // Runs `d` through the layers in chunks; calls visit(layer, input, output, chunk) with
  // feature-major [features, chunk] activations, from several threads at once when `parallel`.
  template <class Visit>
  void propagate(const data::Dataset& d, float on, bool parallel, Visit visit) const;
  // on_path[l][j]: unit j of layer l has an active input and reaches an output through active
  // connections.
  std::vector<std::vector<bool>> units_on_path_to_output() const;
  std::vector<TopologyLayer> layers_;
  float on_ = 1.0f;
};

double accuracy(const std::vector<int32_t>& predictions, const data::Dataset& d);
double agreement(const std::vector<int32_t>& a, const std::vector<int32_t>& b);
// The circuit's accuracy under a class-symmetric tie rule: the expected accuracy when ties are
// broken uniformly at random (a sample whose label is one of k tied classes counts 1/k).
double circuit_accuracy_random_ties(const Topology::CircuitPredictions& circuit, const data::Dataset& d);
// The ceiling: share of samples whose label is among the tied best classes (ties all won).
double circuit_accuracy_ceiling(const Topology::CircuitPredictions& circuit, const data::Dataset& d);

// Weight invariance: the contiguous band of swept constants around `centre` whose accuracy is at
// most `tolerance` below the accuracy at `centre` (a constant that does better stays in the band).
// `sweep` holds (on, accuracy) in increasing `on` with spacing `step`.
struct WeightBand {
  double lo = 0, hi = 0;
};
WeightBand flat_band(const std::vector<std::pair<double, double>>& sweep, double centre, double accuracy_at_centre,
                     double tolerance, double step);
// Share of samples whose `predictions` class is among the circuit's tied best classes.
double agreement_up_to_ties(const Topology::CircuitPredictions& circuit, const std::vector<int32_t>& predictions);
// Share of samples on which the circuit's best score is tied between two or more classes.
double tie_share(const Topology::CircuitPredictions& circuit);
// Agreement on the samples where the circuit is decisive (one best class): whether the float
// net follows the circuit wherever the circuit decides, apart from how ties are broken.
double agreement_where_decisive(const Topology::CircuitPredictions& circuit, const std::vector<int32_t>& predictions);

}  // namespace xp::networks
