#include "core/nn/linear.h"

#include <fmt/format.h>

#include <cmath>

#include "core/nn/cuda/layers.h"
#include "core/nn/eigen_view.h"
#include "core/nn/init.h"

namespace xp::nn {

using detail::as_matrix;
using detail::device_floats;

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t n = x.size(0), out = w.size(0);
  if (x.device() == tensor::Device::kCUDA) {
    Tensor y = Tensor::empty({n, out}, tensor::DType::kF32, x.device());
    cuda::linear_forward(device_floats(x), device_floats(w), device_floats(b), device_floats(y), n, w.size(1), out);
    return y;
  }
  Tensor y = Tensor::empty({n, out}, tensor::DType::kF32);
  auto ym = as_matrix(y, n);
  ym.noalias() = as_matrix(x, n) * as_matrix(w, out).transpose();
  if (b.defined()) ym.rowwise() += detail::as_vector(b).transpose();
  return y;
}

Tensor linear_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& grad_w,
                       const Tensor& grad_b, bool input_grad) {
  const int64_t n = x.size(0), out = w.size(0);
  if (x.device() == tensor::Device::kCUDA) {
    Tensor gx = Tensor::empty(x.shape(), tensor::DType::kF32, x.device());
    cuda::linear_backward(device_floats(x), device_floats(w), device_floats(gy), device_floats(gx), device_floats(grad_w),
                          device_floats(grad_b), n, w.size(1), out);
    return gx;
  }
  auto gym = as_matrix(gy, n);
  if (grad_w.defined()) as_matrix(grad_w, out).noalias() += gym.transpose() * as_matrix(x, n);
  if (grad_b.defined()) detail::as_vector(grad_b) += gym.colwise().sum().transpose();
  if (!input_grad) return {};
  Tensor gx = Tensor::empty(x.shape(), tensor::DType::kF32);
  as_matrix(gx, n).noalias() = gym * as_matrix(w, out);
  return gx;
}

Linear::Linear(int64_t in, int64_t out, bool bias) : in_(in), out_(out) {
  weight_ = &add_parameter("weight", {out, in});
  if (bias) bias_ = &add_parameter("bias", {out});
}

void Linear::reset(runtime::RngStream& rng) {
  double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  init::uniform(weight_->value, rng, -bound, bound);
  if (bias_) init::uniform(bias_->value, rng, -bound, bound);
}

std::string Linear::describe() const { return fmt::format("Linear({}->{})", in_, out_); }

Tensor Linear::forward(const Tensor& x, Mode mode) {
  expect_features(*this, x, in_);
  expect_device(*this, x, weight_->value);
  Tensor x2 = x.reshape({x.size(0), in_});
  if (mode == Mode::kTrain) {
    x_ = x2;
    x_shape_ = x.shape();
  }
  return linear_forward(x2, weight_->value, bias_ ? bias_->value : Tensor());
}

Tensor Linear::backward(const Tensor& grad_y) {
  expect_same_shape(*this, grad_y, {x_.size(0), out_});
  Tensor gx = linear_backward(x_, weight_->value, grad_y, weight_->grad, bias_ ? bias_->grad : Tensor(), input_grad());
  return gx.defined() ? gx.reshape(x_shape_) : gx;
}

}  // namespace xp::nn
