// Normalisations: BatchNorm over [batch, features] (1d) or [batch, channels, h, w] (2d), and the
// two inverting "norms" of the binarized-topology method (docs/binarized_topology.md): hard_invert
// y = 1 − x, and soft_invert y = x·(1−a) + (1−x)·a with one learnable scalar a.
#pragma once
#include "core/nn/module.h"

namespace xp::nn {

struct BatchNormOptions {
  double eps = 1e-5;       // added to the variance
  double momentum = 0.1;   // running = (1 − momentum)·running + momentum·batch (PyTorch's convention)
  bool affine = true;      // learnable scale (weight) and shift (bias); edge-popup uses false
};

class BatchNorm final : public Module {
 public:
  BatchNorm(int64_t channels, BatchNormOptions options = {});
  Parameter* weight() { return weight_; }  // γ; null when not affine
  Parameter* bias() { return bias_; }
  const BatchNormOptions& options() const { return opt_; }
  const Tensor& running_mean() const { return *running_mean_; }
  const Tensor& running_var() const { return *running_var_; }
  std::string describe() const override;
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  int64_t channels_;
  BatchNormOptions opt_;
  Parameter* weight_ = nullptr;
  Parameter* bias_ = nullptr;
  Tensor* running_mean_;
  Tensor* running_var_;
  Tensor xhat_;     // normalised input of the last training forward
  Tensor inv_std_;  // per channel, same forward (on the input's device)
};

class HardInvert final : public Module {
 public:
  std::string describe() const override { return "HardInvert"; }
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;
};

// `a` is clamped to [0, 1] where it is used; its gradient passes the clamp straight through, so
// an `a` pushed past a bound can come back. Not 0.5 by default: there dy/dx = 0 and no gradient
// reaches the layers below.
class SoftInvert final : public Module {
 public:
  explicit SoftInvert(double initial = 0.75);
  Parameter& a() { return *a_; }
  double effective_a() const;  // clamp(a, 0, 1)
  std::string describe() const override { return "SoftInvert"; }
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  Parameter* a_;
  Tensor x_;
};

}  // namespace xp::nn
