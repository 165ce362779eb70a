// Fully connected layer y = x·Wᵀ + b, W of shape [out, in] (PyTorch's layout, so state dicts
// match). The free functions are the layer's math on raw matrices; the binarized and edge-popup
// layers of networks/ reuse them with their own effective weights.
#pragma once
#include "core/nn/module.h"
#include "core/runtime/rng.h"

namespace xp::nn {

// y[n,out] = x[n,in]·w[out,in]ᵀ (+ b[out] when b is defined).
Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b);
// Returns dL/dx = gy·w (on the CPU an undefined tensor when !input_grad); adds gyᵀ·x into grad_w
// and column sums of gy into grad_b (each only when defined). x is the forward input.
Tensor linear_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& grad_w,
                       const Tensor& grad_b, bool input_grad = true);

class Linear final : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true);
  // PyTorch's default: W and b ~ U(-1/sqrt(in), 1/sqrt(in)).
  void reset(runtime::RngStream& rng);
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  std::string describe() const override;
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  int64_t in_, out_;
  Parameter* weight_;
  Parameter* bias_ = nullptr;
  Tensor x_;  // the forward input as [batch, in]
  Shape x_shape_;
};

}  // namespace xp::nn
