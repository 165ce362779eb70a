// CUDA backend of core/tensor: elementwise kernels, casts, reductions and cuBLAS GEMMs with
// f32 accumulation. Every entry point synchronises before returning (see backend.h).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/tensor/cuda/backend.h"
#include "core/tensor/cuda/status.h"

namespace xp::tensor::cuda {

cublasHandle_t default_cublas() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h;
    check(cublasCreate(&h), "create handle");
    return h;
  }();
  return handle;
}

namespace {

// Element conversions through f32 (f16/bf16) or f64 (integers), rounding to nearest even.
template <class T> __device__ __forceinline__ float to_f(T v) { return static_cast<float>(v); }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T from_f(float v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <class T> __device__ __forceinline__ double to_d(T v) { return static_cast<double>(to_f<T>(v)); }
template <> __device__ __forceinline__ double to_d<int32_t>(int32_t v) { return v; }
template <> __device__ __forceinline__ double to_d<int64_t>(int64_t v) { return static_cast<double>(v); }
template <> __device__ __forceinline__ double to_d<uint8_t>(uint8_t v) { return v; }
template <class T> __device__ __forceinline__ T from_d(double v) { return from_f<T>(static_cast<float>(v)); }
template <> __device__ __forceinline__ int32_t from_d<int32_t>(double v) { return static_cast<int32_t>(v); }
template <> __device__ __forceinline__ int64_t from_d<int64_t>(double v) { return static_cast<int64_t>(v); }
template <> __device__ __forceinline__ uint8_t from_d<uint8_t>(double v) { return static_cast<uint8_t>(v); }

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

template <class F>
decltype(auto) dispatch(DType t, F&& f) {
  switch (t) {
    case DType::kF32: return f(float{});
    case DType::kF16: return f(__half{});
    case DType::kBF16: return f(__nv_bfloat16{});
    case DType::kI32: return f(int32_t{});
    case DType::kI64: return f(int64_t{});
    case DType::kU8: return f(uint8_t{});
  }
  throw std::logic_error("unknown dtype");
}

template <class F>
decltype(auto) dispatch_float(DType t, F&& f) {
  switch (t) {
    case DType::kF32: return f(float{});
    case DType::kF16: return f(__half{});
    case DType::kBF16: return f(__nv_bfloat16{});
    default: throw std::invalid_argument("CUDA op needs a floating-point tensor");
  }
}

template <class T>
__global__ void fill_kernel(T* out, int64_t n, double v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_d<T>(v);
}

template <class From, class To>
__global__ void cast_kernel(const From* in, To* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_d<To>(to_d<From>(in[i]));
}

template <class T>
__global__ void binary_kernel(Binary op, const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float x = to_f(a[i]), y = to_f(b[i]);
    float r = op == Binary::kAdd ? x + y : op == Binary::kSub ? x - y : x * y;
    out[i] = from_f<T>(r);
  }
}

template <class T>
__global__ void scale_kernel(const T* a, T* out, int64_t n, float s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f<T>(__fmul_rn(to_f(a[i]), s));
}

template <class T>
__global__ void relu_kernel(const T* a, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float x = to_f(a[i]);
    out[i] = from_f<T>(x > 0.0f ? x : 0.0f);
  }
}

// One block, fixed thread count and a fixed tree: the same input always sums in the same order.
template <class T>
__global__ void sum_kernel(const T* a, int64_t n, float* out) {
  __shared__ float partial[1024];
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += to_f(a[i]);
  partial[threadIdx.x] = s;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = partial[0];
}

template <class T>
__global__ void sum_rows_kernel(const T* a, int64_t rows, int64_t cols, T* out) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int64_t r = 0; r < rows; ++r) s += to_f(a[r * cols + c]);
    out[c] = from_f<T>(s);
  }
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kF16: return CUDA_R_16F;
    case DType::kBF16: return CUDA_R_16BF;
    default: throw std::invalid_argument("matmul needs f32, f16 or bf16");
  }
}

void sync(const char* what) {
  check(cudaGetLastError(), what);
  check(cudaDeviceSynchronize(), what);
}

}  // namespace

bool available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return false;
  }
  return n > 0;
}

void* alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  return p;
}

void release(void* p) { cudaFree(p); }

void copy_to_device(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copy to device");
}
void copy_to_host(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copy to host");
}
void copy_on_device(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "copy on device");
}

void fill(void* dst, DType t, int64_t n, double value) {
  dispatch(t, [&](auto z) {
    using T = decltype(z);
    fill_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<T*>(dst), n, value);
  });
  sync("fill");
}

void cast(const void* src, DType from, void* dst, DType to, int64_t n) {
  dispatch(from, [&](auto zf) {
    using From = decltype(zf);
    dispatch(to, [&](auto zt) {
      using To = decltype(zt);
      cast_kernel<From, To><<<blocks_for(n), kThreads>>>(static_cast<const From*>(src), static_cast<To*>(dst), n);
    });
  });
  sync("cast");
}

void binary(Binary op, const void* a, const void* b, void* out, DType t, int64_t n) {
  dispatch_float(t, [&](auto z) {
    using T = decltype(z);
    binary_kernel<T><<<blocks_for(n), kThreads>>>(op, static_cast<const T*>(a), static_cast<const T*>(b),
                                                  static_cast<T*>(out), n);
  });
  sync("binary op");
}

void scale(const void* a, void* out, DType t, int64_t n, float s) {
  dispatch_float(t, [&](auto z) {
    using T = decltype(z);
    scale_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<const T*>(a), static_cast<T*>(out), n, s);
  });
  sync("scale");
}

void relu(const void* a, void* out, DType t, int64_t n) {
  dispatch_float(t, [&](auto z) {
    using T = decltype(z);
    relu_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<const T*>(a), static_cast<T*>(out), n);
  });
  sync("relu");
}

void matmul(const void* a, bool trans_a, const void* b, bool trans_b, void* c, DType t, int64_t m, int64_t n,
            int64_t k) {
  // Row-major C = A B is column-major C^T = B^T A^T: pass B first, swap m and n.
  float alpha = 1.0f, beta = 0.0f;
  cudaDataType_t ct = cuda_type(t);
  check(cublasGemmEx(default_cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                     static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b, ct,
                     static_cast<int>(trans_b ? k : n), a, ct, static_cast<int>(trans_a ? m : k), &beta, c, ct,
                     static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "GemmEx");
  sync("matmul");
}

void sum(const void* a, DType t, int64_t n, float* out) {
  dispatch_float(t, [&](auto z) {
    using T = decltype(z);
    sum_kernel<T><<<1, 1024>>>(static_cast<const T*>(a), n, out);
  });
  sync("sum");
}

void sum_rows(const void* a, DType t, int64_t rows, int64_t cols, void* out) {
  dispatch_float(t, [&](auto z) {
    using T = decltype(z);
    sum_rows_kernel<T><<<blocks_for(cols), kThreads>>>(static_cast<const T*>(a), rows, cols, static_cast<T*>(out));
  });
  sync("sum_rows");
}

}  // namespace xp::tensor::cuda
