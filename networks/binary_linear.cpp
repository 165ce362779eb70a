#include "networks/binary_linear.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/nn/cuda/layers.h"
#include "core/nn/init.h"
#include "core/nn/linear.h"

namespace xp::networks {

BinaryLinear::BinaryLinear(int64_t in, int64_t out) : in_(in), out_(out) {
  weight_ = &add_parameter("weight", {out, in});
}

void BinaryLinear::reset(runtime::RngStream& rng, double p) { nn::init::bernoulli(weight_->value, rng, p); }

void BinaryLinear::clip() {
  if (weight_->value.device() == tensor::Device::kCUDA) {
    nn::cuda::clamp(static_cast<float*>(weight_->value.raw_data()), 0.0f, 1.0f, weight_->value.numel());
    return;
  }
  float* w = weight_->value.data<float>();
  const int64_t n = weight_->value.numel();
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) w[i] = std::clamp(w[i], 0.0f, 1.0f);
}

nn::Tensor BinaryLinear::binary_weights() const {
  nn::Tensor b = nn::Tensor::empty(weight_->value.shape(), tensor::DType::kF32, weight_->value.device());
  if (b.device() == tensor::Device::kCUDA) {  // is_active's threshold
    nn::cuda::threshold(static_cast<const float*>(weight_->value.raw_data()), 0.5f, on_, static_cast<float*>(b.raw_data()),
                        b.numel());
    return b;
  }
  const float* __restrict w = weight_->value.data<float>();
  float* __restrict out = b.data<float>();
  const int64_t n = b.numel();
  const float on = on_;  // a local: the loop vectorizes (a store through `out` could not change it)
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = is_active(w[i]) ? on : 0.0f;
  return b;
}

std::string BinaryLinear::describe() const { return fmt::format("BinaryLinear({}->{})", in_, out_); }

nn::Tensor BinaryLinear::forward(const nn::Tensor& x, nn::Mode mode) {
  nn::expect_features(*this, x, in_);
  nn::Tensor x2 = x.reshape({x.size(0), in_});
  nn::Tensor binary = binary_weights();
  if (mode == nn::Mode::kTrain) {
    x_ = x2;
    binary_ = binary;
  }
  return nn::linear_forward(x2, binary, nn::Tensor());
}

nn::Tensor BinaryLinear::backward(const nn::Tensor& grad_y) {
  nn::expect_same_shape(*this, grad_y, {x_.size(0), out_});
  // Straight through: dL/dw_latent := dL/dw_binary.
  return nn::linear_backward(x_, binary_, grad_y, weight_->grad, nn::Tensor(), input_grad());
}

}  // namespace xp::networks
