// Error checks and the shared cuBLAS handle of core's CUDA code (core/tensor's backend and
// core/nn's layers, both on the default stream). Included by .cu files only.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace xp::tensor::cuda {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}
inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS ") + what + ": status " + std::to_string(static_cast<int>(s)));
}

// One handle on the default stream, made on first use.
cublasHandle_t default_cublas();

}  // namespace xp::tensor::cuda
