#include "core/nn/conv.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/nn/cuda/layers.h"
#include "core/nn/eigen_view.h"
#include "core/nn/init.h"

namespace xp::nn {

using detail::device_floats;

namespace {

struct Geometry {
  int64_t n, c, h, w, k, stride, pad, oh, ow;
  int64_t rows() const { return c * k * k; }
  int64_t cols() const { return n * oh * ow; }
};

Geometry geometry(const Module& layer, const Shape& x, int64_t channels, int64_t k, int64_t stride, int64_t pad) {
  if (x.size() != 4 || x[1] != channels)
    throw std::invalid_argument(fmt::format("{}: expects [batch, {}, h, w], got {}", layer.describe(), channels,
                                            tensor::shape_str(x)));
  Geometry g{x[0], channels, x[2], x[3], k, stride, pad, 0, 0};
  g.oh = (g.h + 2 * pad - k) / stride + 1;
  g.ow = (g.w + 2 * pad - k) / stride + 1;
  if (g.oh <= 0 || g.ow <= 0)
    throw std::invalid_argument(fmt::format("{}: a {}x{} input is smaller than the {}x{} kernel", layer.describe(),
                                            g.h, g.w, k, k));
  return g;
}

// Row r = (c, ki, kj), column = (n, oy, ox): the input pixel that kernel tap sees (0 in the
// padding). col2im is its adjoint: it adds each column entry back onto its pixel.
void im2col(const Geometry& g, const float* image, float* cols) {
  const int64_t ncols = g.cols();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < g.rows(); ++r) {
    const int64_t c = r / (g.k * g.k), ki = (r / g.k) % g.k, kj = r % g.k;
    float* row = cols + r * ncols;
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const int64_t iy = oy * g.stride - g.pad + ki;
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const int64_t ix = ox * g.stride - g.pad + kj;
          const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
          row[(n * g.oh + oy) * g.ow + ox] = inside ? image[((n * g.c + c) * g.h + iy) * g.w + ix] : 0.0f;
        }
      }
  }
}

void col2im(const Geometry& g, const float* cols, float* image) {
  // Parallel over channels: every row of channel c writes only channel c's pixels.
  const int64_t ncols = g.cols();
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t kk = 0; kk < g.k * g.k; ++kk) {
      const int64_t ki = kk / g.k, kj = kk % g.k;
      const float* row = cols + (c * g.k * g.k + kk) * ncols;
      for (int64_t n = 0; n < g.n; ++n)
        for (int64_t oy = 0; oy < g.oh; ++oy) {
          const int64_t iy = oy * g.stride - g.pad + ki;
          if (iy < 0 || iy >= g.h) continue;
          for (int64_t ox = 0; ox < g.ow; ++ox) {
            const int64_t ix = ox * g.stride - g.pad + kj;
            if (ix < 0 || ix >= g.w) continue;
            image[((n * g.c + c) * g.h + iy) * g.w + ix] += row[(n * g.oh + oy) * g.ow + ox];
          }
        }
    }
}

cuda::ConvGeometry conv_geometry(const Geometry& g, int64_t out) {
  return {g.n, g.c, g.h, g.w, out, g.k, g.stride, g.pad, g.oh, g.ow};
}

cuda::PoolGeometry pool_geometry(const Geometry& g, PoolKind kind) {
  return {kind == PoolKind::kMax, g.n, g.c, g.h, g.w, g.k, g.stride, g.oh, g.ow};
}

}  // namespace

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, Conv2dOptions options)
    : in_(in_channels), out_(out_channels), opt_(options) {
  if (opt_.kernel <= 0 || opt_.stride <= 0 || opt_.padding < 0)
    throw std::invalid_argument(fmt::format("Conv2d: kernel {} and stride {} must be positive, padding {} not negative",
                                            opt_.kernel, opt_.stride, opt_.padding));
  weight_ = &add_parameter("weight", {out_, in_, opt_.kernel, opt_.kernel});
  if (opt_.bias) bias_ = &add_parameter("bias", {out_});
}

void Conv2d::reset(runtime::RngStream& rng) {
  double bound = 1.0 / std::sqrt(static_cast<double>(in_ * opt_.kernel * opt_.kernel));
  init::uniform(weight_->value, rng, -bound, bound);
  if (bias_) init::uniform(bias_->value, rng, -bound, bound);
}

std::string Conv2d::describe() const {
  return fmt::format("Conv2d({}->{}, k={}, s={}, p={})", in_, out_, opt_.kernel, opt_.stride, opt_.padding);
}

Tensor Conv2d::forward(const Tensor& x, Mode mode) {
  const Geometry g = geometry(*this, x.shape(), in_, opt_.kernel, opt_.stride, opt_.padding);
  expect_device(*this, x, weight_->value);
  if (x.device() == tensor::Device::kCUDA) {
    Tensor y = Tensor::empty({g.n, out_, g.oh, g.ow}, tensor::DType::kF32, x.device());
    cuda::conv2d_forward(conv_geometry(g, out_), device_floats(x), device_floats(weight_->value),
                         bias_ ? device_floats(bias_->value) : nullptr, device_floats(y));
    if (mode == Mode::kTrain) {
      x_ = x;
      x_shape_ = x.shape();
    }
    return y;
  }
  Tensor cols = Tensor::empty({g.rows(), g.cols()}, tensor::DType::kF32);
  im2col(g, x.data<float>(), cols.data<float>());
  detail::RowMatrix out = detail::as_matrix(weight_->value, out_) * detail::as_matrix(cols, g.rows());  // [O, N·P]
  const int64_t plane = g.oh * g.ow;
  Tensor y = Tensor::empty({g.n, out_, g.oh, g.ow}, tensor::DType::kF32);
  float* py = y.data<float>();
  const float* pb = bias_ ? bias_->value.data<float>() : nullptr;
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t o = 0; o < out_; ++o) {
      const float b = pb ? pb[o] : 0.0f;
      const float* src = out.data() + o * g.cols() + n * plane;
      float* dst = py + (n * out_ + o) * plane;
      for (int64_t p = 0; p < plane; ++p) dst[p] = src[p] + b;
    }
  if (mode == Mode::kTrain) {
    cols_ = cols;
    x_shape_ = x.shape();
  }
  return y;
}

Tensor Conv2d::backward(const Tensor& grad_y) {
  const Geometry g = geometry(*this, x_shape_, in_, opt_.kernel, opt_.stride, opt_.padding);
  expect_same_shape(*this, grad_y, {g.n, out_, g.oh, g.ow});
  if (grad_y.device() == tensor::Device::kCUDA) {
    Tensor gx = Tensor::empty(x_shape_, tensor::DType::kF32, grad_y.device());
    cuda::conv2d_backward(conv_geometry(g, out_), device_floats(x_), device_floats(weight_->value), device_floats(grad_y),
                          device_floats(gx), device_floats(weight_->grad), bias_ ? device_floats(bias_->grad) : nullptr);
    return gx;
  }
  const int64_t plane = g.oh * g.ow;
  detail::RowMatrix gy(out_, g.cols());  // grad_y as [O, N·P]
  const float* pg = grad_y.data<float>();
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t o = 0; o < out_; ++o) std::copy_n(pg + (n * out_ + o) * plane, plane, gy.data() + o * g.cols() + n * plane);
  const int64_t ckk = g.rows();
  detail::as_matrix(weight_->grad, out_).noalias() += gy * detail::as_matrix(cols_, ckk).transpose();
  if (bias_) detail::as_vector(bias_->grad) += gy.rowwise().sum();
  if (!input_grad()) return {};
  detail::RowMatrix gcols = detail::as_matrix(weight_->value, out_).transpose() * gy;  // [CKK, N·P]
  Tensor gx = Tensor::zeros(x_shape_, tensor::DType::kF32);
  col2im(g, gcols.data(), gx.data<float>());
  return gx;
}

Pool2d::Pool2d(PoolKind kind, int64_t kernel, int64_t stride)
    : kind_(kind), kernel_(kernel), stride_(stride ? stride : kernel) {
  if (kernel_ <= 0 || stride_ <= 0) throw std::invalid_argument("Pool2d: kernel and stride must be positive");
}

std::string Pool2d::describe() const {
  return fmt::format("{}Pool2d(k={}, s={})", kind_ == PoolKind::kMax ? "Max" : "Avg", kernel_, stride_);
}

Tensor Pool2d::forward(const Tensor& x, Mode mode) {
  if (x.dim() != 4)
    throw std::invalid_argument(fmt::format("{}: expects [batch, channels, h, w], got {}", describe(),
                                            tensor::shape_str(x.shape())));
  const Geometry g = geometry(*this, x.shape(), x.size(1), kernel_, stride_, 0);
  if (x.device() == tensor::Device::kCUDA) {
    Tensor y = Tensor::empty({g.n, g.c, g.oh, g.ow}, tensor::DType::kF32, x.device());
    cuda::pool2d_forward(pool_geometry(g, kind_), device_floats(x), device_floats(y));
    if (mode == Mode::kTrain) {
      x_ = x;
      y_ = y;
      x_shape_ = x.shape();
      y_shape_ = y.shape();
    }
    return y;
  }
  Tensor y = Tensor::empty({g.n, g.c, g.oh, g.ow}, tensor::DType::kF32);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  std::vector<int64_t> argmax(kind_ == PoolKind::kMax ? static_cast<size_t>(y.numel()) : 0);
  const float inv_area = 1.0f / static_cast<float>(kernel_ * kernel_);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.n * g.c; ++nc)
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        float best = -std::numeric_limits<float>::infinity(), sum = 0.0f;
        int64_t best_at = 0;
        for (int64_t ki = 0; ki < kernel_; ++ki)
          for (int64_t kj = 0; kj < kernel_; ++kj) {
            const int64_t at = (nc * g.h + oy * stride_ + ki) * g.w + ox * stride_ + kj;
            sum += px[at];
            if (px[at] > best) best = px[at], best_at = at;
          }
        const int64_t out = (nc * g.oh + oy) * g.ow + ox;
        if (kind_ == PoolKind::kMax) {
          py[out] = best;
          argmax[static_cast<size_t>(out)] = best_at;
        } else {
          py[out] = sum * inv_area;
        }
      }
  if (mode == Mode::kTrain) {
    x_shape_ = x.shape();
    y_shape_ = y.shape();
    argmax_ = std::move(argmax);
  }
  return y;
}

Tensor Pool2d::backward(const Tensor& grad_y) {
  expect_same_shape(*this, grad_y, y_shape_);
  if (grad_y.device() == tensor::Device::kCUDA) {
    Tensor gx = Tensor::empty(x_shape_, tensor::DType::kF32, grad_y.device());
    cuda::pool2d_backward(pool_geometry(geometry(*this, x_shape_, x_shape_[1], kernel_, stride_, 0), kind_),
                          device_floats(x_), device_floats(y_), device_floats(grad_y), device_floats(gx));
    return gx;
  }
  Tensor gx = Tensor::zeros(x_shape_, tensor::DType::kF32);
  const float* pg = grad_y.data<float>();
  float* px = gx.data<float>();
  if (kind_ == PoolKind::kMax) {
    for (int64_t i = 0; i < grad_y.numel(); ++i) px[argmax_[static_cast<size_t>(i)]] += pg[i];
    return gx;
  }
  const int64_t h = x_shape_[2], w = x_shape_[3], oh = y_shape_[2], ow = y_shape_[3];
  const float inv_area = 1.0f / static_cast<float>(kernel_ * kernel_);
  for (int64_t nc = 0; nc < y_shape_[0] * y_shape_[1]; ++nc)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t ki = 0; ki < kernel_; ++ki)
          for (int64_t kj = 0; kj < kernel_; ++kj)
            px[(nc * h + oy * stride_ + ki) * w + ox * stride_ + kj] += pg[(nc * oh + oy) * ow + ox] * inv_area;
  return gx;
}

}  // namespace xp::nn
