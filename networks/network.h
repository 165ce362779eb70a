// The networks the topology experiments train (docs/binarized_topology.md): one fully
// connected shape, three methods —
//   binarized   [BinaryLinear → tanh → norm] per layer, norm = hard_invert | soft_invert |
//               batch_norm | neg_batch_norm, then log-softmax; latent weights ~ Bernoulli(init_p),
//               clipped to [0,1]; active connections weigh `on`
//   float_mlp   [Linear → ReLU] with biases, the last Linear giving logits: the dense baseline
//   edge_popup  [EdgePopupLinear → non-affine BatchNorm → ReLU], signed-constant weights, top-k
//   lenet       LeNet-5 for 28×28 images (DynaQuant's small CNN; only layers' ends are used)
// Every method ends in log-probabilities, so training is forward, nll_loss, backward.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/nn/module.h"
#include "core/nn/norm.h"
#include "networks/binary_linear.h"

namespace xp::networks {

struct NetworkSpec {
  std::vector<int64_t> layers{784, 1024, 1024, 10};  // input, hidden..., classes
  std::string method = "binarized";                 // binarized | float_mlp | edge_popup | lenet
  std::string norm = "hard_invert";                 // binarized: hard_invert | soft_invert | batch_norm |
                                                    // neg_batch_norm (γ starts at −1, kept ≤ 0: every unit inverts)
  double on = 1.0;                                  // binarized: the constant weight of an active connection
  double init_p = 0.001;                            // binarized: P(latent weight starts at 1)
  double soft_invert_init = 0.75;                   // binarized: initial a of soft_invert (see the yaml)
  double bn_eps = 1e-4;                             // batch_norm (the notebook's values)
  double bn_momentum = 0.15;
  double keep = 0.5;                                // edge_popup: fraction of weights kept per layer
};

// Throws std::invalid_argument naming the bad field.
void validate(const NetworkSpec& spec);

class Network {
 public:
  // Initial weights from (seed, stream ids 100+): a pure function of the run's seed.
  Network(NetworkSpec spec, uint64_t seed);
  const NetworkSpec& spec() const { return spec_; }
  nn::Sequential& module() { return *module_; }
  // Where its parameters are (the Trainer moves them for train.device = cuda).
  tensor::Device device();

  // Called after every optimizer step: clips the latent weights of a binarized net (and keeps a
  // neg_batch_norm's γ ≤ 0).
  void after_step();
  // The constant weight of the binarized layers (the weight-invariance sweep; spec().on trains).
  void set_on(float on);
  float on() const { return binary_.empty() ? 1.0f : binary_.front()->on(); }

  // The binarized net's layers and the norm that follows each (empty for the other methods).
  const std::vector<BinaryLinear*>& binary_layers() const { return binary_; }
  const std::vector<nn::Module*>& norms() const { return norms_; }

  struct LayerWeights {
    std::string name;
    int64_t active = 0;  // binarized: |w| ≥ 0.5; edge_popup: kept; float: non-zero
    int64_t total = 0;
  };
  std::vector<LayerWeights> weight_activity();

 private:
  NetworkSpec spec_;
  std::unique_ptr<nn::Sequential> module_;
  std::vector<BinaryLinear*> binary_;
  std::vector<nn::Module*> norms_;
  std::vector<nn::BatchNorm*> non_positive_scale_;  // neg_batch_norm: γ clamped to ≤ 0 after each step
  std::vector<nn::Module*> weighted_;  // the layer holding each weight matrix
};

// The model's parameters and buffers (no optimizer state), written atomically: what a finished
// run leaves for re-analysis (`network.init_from`). load_model throws std::runtime_error naming
// the file when it is missing, malformed or belongs to another network shape.
void save_model(Network& net, const std::filesystem::path& path);
void load_model(Network& net, const std::filesystem::path& path);

}  // namespace xp::networks
