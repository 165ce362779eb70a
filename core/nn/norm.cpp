#include "core/nn/norm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/nn/cuda/layers.h"
#include "core/nn/eigen_view.h"

namespace xp::nn {

namespace {
// Batch-norm layout: [batch, channels, spatial] with spatial = 1 for 2-D input.
struct Layout {
  int64_t batch, channels, spatial;
  int64_t at(int64_t n, int64_t c) const { return (n * channels + c) * spatial; }
};
}  // namespace

BatchNorm::BatchNorm(int64_t channels, BatchNormOptions options) : channels_(channels), opt_(options) {
  if (opt_.affine) {
    weight_ = &add_parameter("weight", {channels});
    std::fill_n(weight_->value.data<float>(), channels, 1.0f);
    bias_ = &add_parameter("bias", {channels});
  }
  running_mean_ = &add_buffer("running_mean", Tensor::zeros({channels}, tensor::DType::kF32));
  running_var_ = &add_buffer("running_var", Tensor::full({channels}, 1.0, tensor::DType::kF32));
}

std::string BatchNorm::describe() const { return fmt::format("BatchNorm({})", channels_); }

Tensor BatchNorm::forward(const Tensor& x, Mode mode) {
  if ((x.dim() != 2 && x.dim() != 4) || x.size(1) != channels_)
    throw std::invalid_argument(fmt::format("{}: expects [batch, {}] or [batch, {}, h, w], got {}", describe(),
                                            channels_, channels_, tensor::shape_str(x.shape())));
  expect_device(*this, x, *running_mean_);
  const Layout L{x.size(0), channels_, x.dim() == 4 ? x.size(2) * x.size(3) : 1};
  const bool train = mode == Mode::kTrain;
  if (x.device() == tensor::Device::kCUDA) {
    using detail::device_floats;
    Tensor y = detail::empty_on_device_like(x);
    if (train) {
      xhat_ = detail::empty_on_device_like(x);
      inv_std_ = Tensor::empty({channels_}, tensor::DType::kF32, x.device());
    }
    cuda::batch_norm_forward({L.batch, L.channels, L.spatial}, device_floats(x), weight_ ? device_floats(weight_->value) : nullptr,
                             bias_ ? device_floats(bias_->value) : nullptr, device_floats(*running_mean_),
                             device_floats(*running_var_), train, opt_.momentum, opt_.eps, device_floats(y),
                             train ? device_floats(xhat_) : nullptr, train ? device_floats(inv_std_) : nullptr);
    return y;
  }
  const float* px = x.data<float>();
  Tensor y = detail::empty_like(x);
  float* py = y.data<float>();
  float* rm = running_mean_->data<float>();
  float* rv = running_var_->data<float>();
  if (train) {
    xhat_ = detail::empty_like(x);
    inv_std_ = Tensor::zeros({channels_}, tensor::DType::kF32);
  }
  const double count = static_cast<double>(L.batch * L.spatial);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < channels_; ++c) {
    double mean, var;
    if (train) {
      double s = 0.0, s2 = 0.0;
      for (int64_t n = 0; n < L.batch; ++n)
        for (int64_t i = 0; i < L.spatial; ++i) s += px[L.at(n, c) + i];
      mean = s / count;
      for (int64_t n = 0; n < L.batch; ++n)
        for (int64_t i = 0; i < L.spatial; ++i) {
          double d = px[L.at(n, c) + i] - mean;
          s2 += d * d;
        }
      var = s2 / count;
      const double m = opt_.momentum;
      rm[c] = static_cast<float>((1.0 - m) * rm[c] + m * mean);
      rv[c] = static_cast<float>((1.0 - m) * rv[c] + m * (count > 1 ? s2 / (count - 1) : var));
    } else {
      mean = rm[c];
      var = rv[c];
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(var + opt_.eps));
    const float g = weight_ ? weight_->value.data<float>()[c] : 1.0f;
    const float b = bias_ ? bias_->value.data<float>()[c] : 0.0f;
    const float fm = static_cast<float>(mean);
    for (int64_t n = 0; n < L.batch; ++n)
      for (int64_t i = 0; i < L.spatial; ++i) {
        const int64_t k = L.at(n, c) + i;
        const float xh = (px[k] - fm) * inv;
        if (train) xhat_.data<float>()[k] = xh;
        py[k] = g * xh + b;
      }
    if (train) inv_std_.data<float>()[c] = inv;
  }
  return y;
}

Tensor BatchNorm::backward(const Tensor& grad_y) {
  expect_same_shape(*this, grad_y, xhat_.shape());
  const Layout L{grad_y.size(0), channels_, grad_y.dim() == 4 ? grad_y.size(2) * grad_y.size(3) : 1};
  if (grad_y.device() == tensor::Device::kCUDA) {
    using detail::device_floats;
    Tensor gx = detail::empty_on_device_like(grad_y);
    cuda::batch_norm_backward({L.batch, L.channels, L.spatial}, device_floats(grad_y), device_floats(xhat_),
                              device_floats(inv_std_), weight_ ? device_floats(weight_->value) : nullptr,
                              device_floats(gx), weight_ ? device_floats(weight_->grad) : nullptr,
                              bias_ ? device_floats(bias_->grad) : nullptr);
    return gx;
  }
  const float* gy = grad_y.data<float>();
  const float* xh = xhat_.data<float>();
  Tensor gx = detail::empty_like(grad_y);
  float* pgx = gx.data<float>();
  const double count = static_cast<double>(L.batch * L.spatial);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < channels_; ++c) {
    double sum_g = 0.0, sum_gx = 0.0;
    for (int64_t n = 0; n < L.batch; ++n)
      for (int64_t i = 0; i < L.spatial; ++i) {
        const int64_t k = L.at(n, c) + i;
        sum_g += gy[k];
        sum_gx += static_cast<double>(gy[k]) * xh[k];
      }
    if (weight_) weight_->grad.data<float>()[c] += static_cast<float>(sum_gx);
    if (bias_) bias_->grad.data<float>()[c] += static_cast<float>(sum_g);
    const double g = weight_ ? weight_->value.data<float>()[c] : 1.0;
    const double scale = g * inv_std_.data<float>()[c] / count;
    for (int64_t n = 0; n < L.batch; ++n)
      for (int64_t i = 0; i < L.spatial; ++i) {
        const int64_t k = L.at(n, c) + i;
        pgx[k] = static_cast<float>(scale * (count * gy[k] - sum_g - xh[k] * sum_gx));
      }
  }
  return gx;
}

Tensor HardInvert::forward(const Tensor& x, Mode /*mode*/) {
  if (x.device() == tensor::Device::kCUDA) {
    Tensor y = detail::empty_on_device_like(x);
    cuda::pointwise_forward(cuda::Pointwise::kHardInvert, detail::device_floats(x), detail::device_floats(y), x.numel());
    return y;
  }
  Tensor y = detail::empty_like(x);
  detail::as_vector(y) = (1.0f - detail::as_vector(x).array()).matrix();
  return y;
}
Tensor HardInvert::backward(const Tensor& grad_y) {
  if (grad_y.device() == tensor::Device::kCUDA) {
    Tensor gx = detail::empty_on_device_like(grad_y);
    cuda::pointwise_backward(cuda::Pointwise::kHardInvert, nullptr, detail::device_floats(grad_y),
                             detail::device_floats(gx), grad_y.numel());
    return gx;
  }
  Tensor gx = detail::empty_like(grad_y);
  detail::as_vector(gx) = -detail::as_vector(grad_y);
  return gx;
}

SoftInvert::SoftInvert(double initial) {
  a_ = &add_parameter("a", {1});
  a_->value.data<float>()[0] = static_cast<float>(initial);
}
double SoftInvert::effective_a() const {
  return std::clamp(static_cast<double>(a_->value.to(tensor::Device::kCPU).data<float>()[0]), 0.0, 1.0);
}

Tensor SoftInvert::forward(const Tensor& x, Mode mode) {
  expect_device(*this, x, a_->value);
  if (mode == Mode::kTrain) x_ = x;
  if (x.device() == tensor::Device::kCUDA) {  // a stays on the device: no copy per call
    Tensor y = detail::empty_on_device_like(x);
    cuda::soft_invert_forward(detail::device_floats(x), detail::device_floats(a_->value), detail::device_floats(y),
                              x.numel());
    return y;
  }
  const float a = static_cast<float>(effective_a());
  Tensor y = detail::empty_like(x);
  detail::as_vector(y) = (detail::as_vector(x).array() * (1.0f - a) + (1.0f - detail::as_vector(x).array()) * a).matrix();
  return y;
}
Tensor SoftInvert::backward(const Tensor& grad_y) {
  expect_same_shape(*this, grad_y, x_.shape());
  if (grad_y.device() == tensor::Device::kCUDA) {
    Tensor gx = detail::empty_on_device_like(grad_y);
    cuda::soft_invert_backward(detail::device_floats(x_), detail::device_floats(grad_y), detail::device_floats(a_->value),
                               detail::device_floats(gx), detail::device_floats(a_->grad), grad_y.numel());
    return gx;
  }
  const float a = static_cast<float>(effective_a());
  auto g = detail::as_vector(grad_y).array();
  // dy/da = 1 − 2x; dy/dx = 1 − 2a
  a_->grad.data<float>()[0] += (g * (1.0f - 2.0f * detail::as_vector(x_).array())).sum();
  Tensor gx = detail::empty_like(grad_y);
  detail::as_vector(gx) = (g * (1.0f - 2.0f * a)).matrix();
  return gx;
}

}  // namespace xp::nn
