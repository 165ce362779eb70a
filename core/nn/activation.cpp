#include "core/nn/activation.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "core/nn/cuda/layers.h"
#include "core/nn/eigen_view.h"

namespace xp::nn {

using detail::empty_like;

namespace {
// out[i] = f(a[i]) over two same-sized contiguous tensors.
template <class F>
Tensor map(const Tensor& a, F f) {
  Tensor out = empty_like(a);
  const float* pa = a.data<float>();
  float* po = out.data<float>();
  const int64_t n = a.numel();
  for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i]);
  return out;
}
// out[i] = f(a[i], b[i]).
template <class F>
Tensor zip(const Tensor& a, const Tensor& b, F f) {
  Tensor out = empty_like(a);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* po = out.data<float>();
  const int64_t n = a.numel();
  for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
  return out;
}
}  // namespace

namespace {
// The cuDNN activation of a CUDA tensor (forward), or of its gradient (backward from y).
Tensor cuda_forward(cuda::Activation a, const Tensor& x) {
  Tensor y = detail::empty_on_device_like(x);
  cuda::activation_forward(a, detail::device_floats(x), detail::device_floats(y), x.numel());
  return y;
}
Tensor cuda_backward(cuda::Activation a, const Tensor& y, const Tensor& gy) {
  Tensor gx = detail::empty_on_device_like(y);
  cuda::activation_backward(a, detail::device_floats(y), detail::device_floats(gy), detail::device_floats(gx), y.numel());
  return gx;
}
bool on_cuda(const Tensor& t) { return t.device() == tensor::Device::kCUDA; }
}  // namespace

Tensor ReLU::forward(const Tensor& x, Mode mode) {
  Tensor y = on_cuda(x) ? cuda_forward(cuda::Activation::kReLU, x) : map(x, [](float v) { return v > 0.0f ? v : 0.0f; });
  if (mode == Mode::kTrain) y_ = y;
  return y;
}
Tensor ReLU::backward(const Tensor& grad_y) {
  expect_same_shape(*this, grad_y, y_.shape());
  if (on_cuda(grad_y)) return cuda_backward(cuda::Activation::kReLU, y_, grad_y);
  return zip(grad_y, y_, [](float g, float y) { return y > 0.0f ? g : 0.0f; });
}

Tensor Tanh::forward(const Tensor& x, Mode mode) {
  // Eigen's vectorised tanh: the sparse topology evaluation (networks/) uses the same one.
  Tensor y;
  if (on_cuda(x)) {
    y = cuda_forward(cuda::Activation::kTanh, x);
  } else {
    y = empty_like(x);
    detail::as_vector(y) = detail::as_vector(x).array().tanh().matrix();
  }
  if (mode == Mode::kTrain) y_ = y;
  return y;
}
Tensor Tanh::backward(const Tensor& grad_y) {
  expect_same_shape(*this, grad_y, y_.shape());
  if (on_cuda(grad_y)) return cuda_backward(cuda::Activation::kTanh, y_, grad_y);
  return zip(grad_y, y_, [](float g, float y) { return g * (1.0f - y * y); });
}

Tensor Step::forward(const Tensor& x, Mode mode) {
  if (mode == Mode::kTrain) x_ = x;
  if (on_cuda(x)) {
    Tensor y = detail::empty_on_device_like(x);
    cuda::pointwise_forward(cuda::Pointwise::kStep, detail::device_floats(x), detail::device_floats(y), x.numel());
    return y;
  }
  return map(x, [](float v) { return v >= 0.0f ? 1.0f : 0.0f; });
}
Tensor Step::backward(const Tensor& grad_y) {
  expect_same_shape(*this, grad_y, x_.shape());
  if (on_cuda(grad_y)) {
    Tensor gx = detail::empty_on_device_like(grad_y);
    cuda::pointwise_backward(cuda::Pointwise::kStep, detail::device_floats(x_), detail::device_floats(grad_y),
                             detail::device_floats(gx), grad_y.numel());
    return gx;
  }
  return zip(grad_y, x_, [](float g, float x) { return std::fabs(x) <= 1.0f ? g : 0.0f; });
}

Tensor Flatten::forward(const Tensor& x, Mode mode) {
  if (mode == Mode::kTrain) shape_ = x.shape();
  return x.reshape({x.size(0), -1});
}
Tensor Flatten::backward(const Tensor& grad_y) { return grad_y.reshape(shape_); }

Dropout::Dropout(double p, runtime::RngStream rng) : p_(p), rng_(rng) {
  if (!(p >= 0.0 && p < 1.0)) throw std::invalid_argument(fmt::format("Dropout: p must be in [0, 1), got {}", p));
  position_ = &add_buffer("rng_position", Tensor::zeros({1}, tensor::DType::kI64));
}
std::string Dropout::describe() const { return fmt::format("Dropout(p={})", p_); }

Tensor Dropout::forward(const Tensor& x, Mode mode) {
  if (mode == Mode::kEval) return x;  // reads nothing, writes nothing (Module's eval-mode rule)
  if (p_ == 0.0) {
    mask_ = Tensor();
    return x;
  }
  // The mask is drawn on the host from the counter-based stream (the same mask on either device);
  // the stream position is a buffer, so it lives wherever the module does.
  Tensor position = position_->to(tensor::Device::kCPU);
  rng_.seek(static_cast<uint64_t>(position.data<int64_t>()[0]));
  mask_ = empty_like(x);
  float* m = mask_.data<float>();
  const float keep_scale = static_cast<float>(1.0 / (1.0 - p_));
  for (int64_t i = 0; i < x.numel(); ++i) m[i] = rng_.uniform() < p_ ? 0.0f : keep_scale;
  position.data<int64_t>()[0] = static_cast<int64_t>(rng_.position());
  *position_ = position.to(position_->device());
  return times_mask(x);
}
Tensor Dropout::backward(const Tensor& grad_y) {
  if (!mask_.defined()) return grad_y;
  expect_same_shape(*this, grad_y, mask_.shape());
  return times_mask(grad_y);
}
Tensor Dropout::times_mask(const Tensor& t) {
  if (!on_cuda(t)) return zip(t, mask_, [](float v, float k) { return v * k; });
  if (!on_cuda(mask_)) mask_ = mask_.to(tensor::Device::kCUDA);
  Tensor out = detail::empty_on_device_like(t);
  cuda::multiply(detail::device_floats(t), detail::device_floats(mask_), detail::device_floats(out), t.numel());
  return out;
}

Tensor LogSoftmax::forward(const Tensor& x, Mode mode) {
  if (x.dim() != 2) throw std::invalid_argument("LogSoftmax: expects [batch, classes], got " + tensor::shape_str(x.shape()));
  const int64_t n = x.size(0);
  if (on_cuda(x)) {
    Tensor y = detail::empty_on_device_like(x);
    cuda::log_softmax_forward(detail::device_floats(x), detail::device_floats(y), n, x.size(1));
    if (mode == Mode::kTrain) y_ = y;
    return y;
  }
  Tensor y = empty_like(x);
  auto xm = detail::as_matrix(x, n);
  auto ym = detail::as_matrix(y, n);
  for (int64_t r = 0; r < n; ++r) {
    float mx = xm.row(r).maxCoeff();
    float lse = mx + std::log((xm.row(r).array() - mx).exp().sum());
    ym.row(r).array() = xm.row(r).array() - lse;
  }
  if (mode == Mode::kTrain) y_ = y;
  return y;
}
Tensor LogSoftmax::backward(const Tensor& grad_y) {
  expect_same_shape(*this, grad_y, y_.shape());
  const int64_t n = y_.size(0);
  if (on_cuda(grad_y)) {
    Tensor gx = detail::empty_on_device_like(grad_y);
    cuda::log_softmax_backward(detail::device_floats(y_), detail::device_floats(grad_y), detail::device_floats(gx), n,
                               y_.size(1));
    return gx;
  }
  Tensor gx = empty_like(y_);
  auto g = detail::as_matrix(grad_y, n);
  auto y = detail::as_matrix(y_, n);
  auto out = detail::as_matrix(gx, n);
  // d/dx_j of sum_i g_i (x_i - lse) = g_j - softmax_j · sum_i g_i
  for (int64_t r = 0; r < n; ++r) out.row(r) = g.row(r) - y.row(r).array().exp().matrix() * g.row(r).sum();
  return gx;
}

}  // namespace xp::nn
