// Internal to core/nn: contiguous f32 tensors seen as row-major Eigen matrices (no copy), so the
// layers write their math as Eigen expressions and Eigen's GEMM (OpenMP-parallel) does the work.
#pragma once
#include <Eigen/Core>

#include "core/tensor/tensor.h"

namespace xp::nn::detail {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMatrix>;
using VectorMap = Eigen::Map<Eigen::VectorXf>;

// `t` (contiguous f32) viewed as [rows, numel/rows].
inline MatrixMap as_matrix(const tensor::Tensor& t, int64_t rows) {
  return MatrixMap(t.data<float>(), rows, rows ? t.numel() / rows : 0);
}
inline VectorMap as_vector(const tensor::Tensor& t) { return VectorMap(t.data<float>(), t.numel()); }

inline tensor::Tensor empty_like(const tensor::Tensor& t) {
  return tensor::Tensor::empty(t.shape(), tensor::DType::kF32);
}
// The same on t's device (CUDA layers).
inline tensor::Tensor empty_on_device_like(const tensor::Tensor& t) {
  return tensor::Tensor::empty(t.shape(), tensor::DType::kF32, t.device());
}

// An f32 tensor's first element wherever it lives (device memory for CUDA tensors, which
// data<float>() refuses), for the CUDA layers' pointer API; null for an undefined tensor.
inline float* device_floats(const tensor::Tensor& t) { return t.defined() ? static_cast<float*>(t.raw_data()) : nullptr; }

}  // namespace xp::nn::detail
