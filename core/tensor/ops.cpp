#include "core/tensor/ops.h"

#include <Eigen/Dense>

#include "core/runtime/check.h"
#include "core/tensor/cpu_kernels.h"
#include "core/tensor/cuda/backend.h"

namespace xp::tensor {
namespace {

template <class T>
using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  EXP_CHECK(a.shape() == b.shape(), "{}: shapes differ: {} vs {}", op, shape_str(a.shape()), shape_str(b.shape()));
  EXP_CHECK(a.dtype() == b.dtype(), "{}: dtypes differ: {} vs {}", op, dtype_name(a.dtype()), dtype_name(b.dtype()));
  EXP_CHECK(a.device() == b.device(), "{}: devices differ", op);
}

// Float elementwise in f32 (the CUDA kernels compute in f32 too, then round once).
template <class F>
Tensor elementwise_cpu(const Tensor& a, const Tensor* b, F f) {
  Tensor ac = a.contiguous();
  Tensor bc = b ? b->contiguous() : Tensor();
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  detail::dispatch_float(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* pa = static_cast<const T*>(ac.raw_data());
    const T* pb = b ? static_cast<const T*>(bc.raw_data()) : nullptr;
    T* po = static_cast<T*>(out.raw_data());
    for (int64_t i = 0; i < a.numel(); ++i)
      po[i] = T(f(static_cast<float>(pa[i]), pb ? static_cast<float>(pb[i]) : 0.0f));
  });
  return out;
}

Tensor binary(const Tensor& a, const Tensor& b, cuda::Binary op, const char* name) {
  check_same(a, b, name);
  if (a.device() == Device::kCUDA) {
    Tensor ac = a.contiguous(), bc = b.contiguous();
    Tensor out = Tensor::empty(a.shape(), a.dtype(), Device::kCUDA);
    cuda::binary(op, ac.raw_data(), bc.raw_data(), out.raw_data(), a.dtype(), a.numel());
    return out;
  }
  switch (op) {
    case cuda::Binary::kAdd: return elementwise_cpu(a, &b, [](float x, float y) { return x + y; });
    case cuda::Binary::kSub: return elementwise_cpu(a, &b, [](float x, float y) { return x - y; });
    case cuda::Binary::kMul: return elementwise_cpu(a, &b, [](float x, float y) { return x * y; });
  }
  return {};
}

// A [r,c] matrix view as f32 (converted when the tensor is f16/bf16).
MatF as_f32_matrix(const Tensor& t) {
  Tensor f = t.to(DType::kF32).contiguous();
  return Eigen::Map<const MatF>(static_cast<const float*>(f.raw_data()), f.size(0), f.size(1));
}

// True when `t` is the transpose of a contiguous matrix (as t.transpose(0, 1) makes).
bool is_transposed_contiguous(const Tensor& t) {
  return t.dim() == 2 && t.strides()[0] == 1 && t.strides()[1] == t.size(0);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, cuda::Binary::kAdd, "add"); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, cuda::Binary::kSub, "sub"); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, cuda::Binary::kMul, "mul"); }

Tensor scale(const Tensor& a, double s) {
  if (a.device() == Device::kCUDA) {
    Tensor ac = a.contiguous();
    Tensor out = Tensor::empty(a.shape(), a.dtype(), Device::kCUDA);
    cuda::scale(ac.raw_data(), out.raw_data(), a.dtype(), a.numel(), static_cast<float>(s));
    return out;
  }
  float fs = static_cast<float>(s);
  return elementwise_cpu(a, nullptr, [fs](float x, float) { return x * fs; });
}

Tensor relu(const Tensor& a) {
  if (a.device() == Device::kCUDA) {
    Tensor ac = a.contiguous();
    Tensor out = Tensor::empty(a.shape(), a.dtype(), Device::kCUDA);
    cuda::relu(ac.raw_data(), out.raw_data(), a.dtype(), a.numel());
    return out;
  }
  return elementwise_cpu(a, nullptr, [](float x, float) { return x > 0.0f ? x : 0.0f; });
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  EXP_CHECK(a.dim() == 2 && b.dim() == 2, "matmul needs 2-D tensors, got {} and {}", shape_str(a.shape()),
            shape_str(b.shape()));
  EXP_CHECK(a.size(1) == b.size(0), "matmul: inner dimensions differ: {} x {}", shape_str(a.shape()),
            shape_str(b.shape()));
  EXP_CHECK(a.dtype() == b.dtype() && a.device() == b.device(), "matmul: inputs differ in dtype or device");
  detail::dispatch_float(a.dtype(), [](auto) { return 0; });
  int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  if (a.device() == Device::kCUDA) {
    // Transposed views go to cuBLAS as transpose flags instead of being copied.
    bool ta = is_transposed_contiguous(a) && !a.is_contiguous();
    bool tb = is_transposed_contiguous(b) && !b.is_contiguous();
    Tensor ac = ta ? a : a.contiguous(), bc = tb ? b : b.contiguous();
    Tensor out = Tensor::empty({m, n}, a.dtype(), Device::kCUDA);
    cuda::matmul(ac.raw_data(), ta, bc.raw_data(), tb, out.raw_data(), a.dtype(), m, n, k);
    return out;
  }
  MatF c = as_f32_matrix(a) * as_f32_matrix(b);
  Tensor out = Tensor::empty({m, n}, DType::kF32);
  Eigen::Map<MatF>(static_cast<float*>(out.raw_data()), m, n) = c;
  return out.to(a.dtype());
}

Tensor sum(const Tensor& a) {
  detail::dispatch_float(a.dtype(), [](auto) { return 0; });
  if (a.device() == Device::kCUDA) {
    Tensor ac = a.contiguous();
    Tensor out = Tensor::empty({1}, DType::kF32, Device::kCUDA);
    cuda::sum(ac.raw_data(), a.dtype(), a.numel(), static_cast<float*>(out.raw_data()));
    return out;
  }
  Tensor f = a.to(DType::kF32).contiguous();
  // Pairwise (Eigen's tree) summation keeps the error O(log n), close to the GPU's tree reduction.
  float s = ConstVec<float>(static_cast<const float*>(f.raw_data()), f.numel()).sum();
  return Tensor::from_values({s}, {1}, DType::kF32);
}

Tensor sum_rows(const Tensor& a) {
  EXP_CHECK(a.dim() == 2, "sum_rows needs a 2-D tensor, got {}", shape_str(a.shape()));
  if (a.device() == Device::kCUDA) {
    Tensor ac = a.contiguous();
    Tensor out = Tensor::empty({a.size(1)}, a.dtype(), Device::kCUDA);
    cuda::sum_rows(ac.raw_data(), a.dtype(), a.size(0), a.size(1), out.raw_data());
    return out;
  }
  MatF m = as_f32_matrix(a);
  Eigen::RowVectorXf s = m.colwise().sum();
  Tensor out = Tensor::empty({a.size(1)}, DType::kF32);
  Eigen::Map<Eigen::RowVectorXf>(static_cast<float*>(out.raw_data()), a.size(1)) = s;
  return out.to(a.dtype());
}

void fill_normal(Tensor& t, runtime::RngStream& rng, double mean, double std) {
  EXP_CHECK(t.device() == Device::kCPU && t.is_contiguous(), "fill_normal needs a contiguous CPU tensor");
  detail::dispatch_float(t.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* p = static_cast<T*>(t.raw_data());
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = detail::from_double<T>(mean + std * rng.normal());
  });
}

}  // namespace xp::tensor
