// cuBLAS, loaded on its first call. Linking libcublas makes the dynamic loader map it and
// cuBLASLt and run their initialisers when exp starts — 0.3 s and 200 MB for every run, a
// CPU-only `exp --help` included (measured 2026-12-05; the CUDA runtime and cuDNN cost under a
// millisecond each and stay linked). These definitions stand in for the five cuBLAS entry points
// exp calls: the first opens the library (dlopen) and each forwards to the real symbol, so the
// call sites are unchanged and a run that never touches a GPU never loads it
// (core/runtime/shared_library.h).
// Adding a cuBLAS call elsewhere: add its forwarder here (the link fails until one exists).
#include <cublas_v2.h>

#include <string>

#include "core/runtime/shared_library.h"

namespace {

// The real `name`, of the type of our forwarder `F`.
template <class F>
F real(const char* name) {
  static const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  return reinterpret_cast<F>(
      xp::runtime::library_symbol(xp::runtime::shared_library(soname, EXP_CUDA_LIBRARY_DIR), name, soname));
}

}  // namespace

extern "C" {

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
  static const auto f = real<decltype(&cublasCreate_v2)>("cublasCreate_v2");
  return f(handle);
}

cublasStatus_t CUBLASWINAPI cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
  static const auto f = real<decltype(&cublasSetWorkspace_v2)>("cublasSetWorkspace_v2");
  return f(handle, workspace, bytes);
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  static const auto f = real<decltype(&cublasSetStream_v2)>("cublasSetStream_v2");
  return f(handle, stream);
}

cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                           int n, int k, const float* alpha, const float* a, int lda, const float* b,
                                           int ldb, const float* beta, float* c, int ldc) {
  static const auto f = real<decltype(&cublasSgemm_v2)>("cublasSgemm_v2");
  return f(handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                         int n, int k, const void* alpha, const void* a, cudaDataType a_type, int lda,
                                         const void* b, cudaDataType b_type, int ldb, const void* beta, void* c,
                                         cudaDataType c_type, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  static const auto f = real<cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                                const void*, const void*, cudaDataType, int, const void*, cudaDataType,
                                                int, const void*, void*, cudaDataType, int, cublasComputeType_t,
                                                cublasGemmAlgo_t)>("cublasGemmEx");
  return f(handle, transa, transb, m, n, k, alpha, a, a_type, lda, b, b_type, ldb, beta, c, c_type, ldc, compute, algo);
}

}  // extern "C"
