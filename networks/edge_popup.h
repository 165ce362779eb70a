// Edge-popup (Ramanujan et al., CVPR'20; docs/binarized_topology.md), the comparison row: fixed random
// signed-constant weights ±σ (σ = gain/sqrt(fan_in)) that are never trained, and a real score
// per weight. The forward pass keeps the top `keep` fraction of |score| in the layer ("fraction
// kept", stated explicitly because hidden-networks uses prune_rate inconsistently); backward
// sends dL/dw_effective · w · sign(score) straight through the top-k to every score.
#pragma once
#include "core/nn/module.h"
#include "core/runtime/rng.h"

namespace xp::networks {

class EdgePopupLinear final : public nn::Module {
 public:
  EdgePopupLinear(int64_t in, int64_t out, double keep);
  // Weights ±gain/sqrt(in) from `weights`; scores ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming uniform
  // as in hidden-networks) from `scores`.
  void reset(runtime::RngStream& weights, runtime::RngStream& scores, double gain);
  double keep() const { return keep_; }
  // The weights in use, [out, in]: w where the score is in the top-k, else 0.
  nn::Tensor effective_weights() const;

  std::string describe() const override;
  nn::Tensor forward(const nn::Tensor& x, nn::Mode mode) override;
  nn::Tensor backward(const nn::Tensor& grad_y) override;

 private:
  int64_t in_, out_;
  double keep_;
  nn::Parameter* scores_;
  nn::Tensor* weight_;  // a buffer: saved and restored, never trained
  nn::Tensor x_, effective_;
};

}  // namespace xp::networks
