// The {0,1}-weight layer of the binarized topology search (docs/binarized_topology.md). It keeps real
// latent weights w ∈ [0, 1]; the forward pass uses the binary weights (on if |w| ≥ 0.5, else
// off) and backward() hands the gradient at those binary weights to the latent weights
// unchanged (the straight-through estimator). clip() keeps the latent weights in [0, 1] after
// each optimizer step. No bias, as in the notebook: a unit's pre-activation is `on` times the
// number of its connected inputs that are on.
#pragma once
#include "core/nn/module.h"
#include "core/runtime/rng.h"

namespace xp::networks {

class BinaryLinear final : public nn::Module {
 public:
  BinaryLinear(int64_t in, int64_t out);
  // Latent weights ~ Bernoulli(p): the net starts almost empty and grows connections.
  void reset(runtime::RngStream& rng, double p);
  void clip();
  // The shared constant of the weight-invariance sweep (default 1).
  void set_on(float on) { on_ = on; }
  float on() const { return on_; }

  nn::Parameter& latent() { return *weight_; }
  const nn::Parameter& latent() const { return *weight_; }
  // The binary weights the forward pass uses, [out, in], entries in {0, on}.
  nn::Tensor binary_weights() const;
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  std::string describe() const override;
  nn::Tensor forward(const nn::Tensor& x, nn::Mode mode) override;
  nn::Tensor backward(const nn::Tensor& grad_y) override;

 private:
  int64_t in_, out_;
  float on_ = 1.0f;
  nn::Parameter* weight_;
  nn::Tensor x_, binary_;
};

// A latent weight counts as an active connection when |w| ≥ 0.5 (§3.6).
inline bool is_active(float latent) { return latent >= 0.5f || latent <= -0.5f; }

}  // namespace xp::networks
