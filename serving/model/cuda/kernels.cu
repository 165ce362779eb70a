// Llama kernels for serving/model/llama_cuda.cpp: simple, exact-first implementations (one
// block per row for norms, one block per (row, head) for attention with an online softmax);
// speed comes later, correctness against the CPU reference first.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "serving/model/cuda/kernels.h"

namespace xp::serving::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}
void check_launch(const char* what) { check(cudaGetLastError(), what); }

cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t x;
    if (cublasCreate(&x) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cuBLAS: cannot create a handle");
    return x;
  }();
  return h;
}

__device__ __forceinline__ float bf(uint16_t v) { return __bfloat162float(*reinterpret_cast<const __nv_bfloat16*>(&v)); }
__device__ __forceinline__ uint16_t to_bf(float v) {
  __nv_bfloat16 b = __float2bfloat16_rn(v);
  return *reinterpret_cast<uint16_t*>(&b);
}

__device__ float block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  int warps = (blockDim.x + 31) / 32;
  v = threadIdx.x < warps ? shared[threadIdx.x] : 0.0f;
  if (warp == 0)
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  float out = shared[0];
  __syncthreads();
  return out;
}

__global__ void embed_kernel(const uint16_t* table, const int32_t* tokens, int64_t hidden, float* x) {
  int64_t row = blockIdx.x;
  const uint16_t* src = table + static_cast<int64_t>(tokens[row]) * hidden;
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) x[row * hidden + c] = bf(src[c]);
}

__global__ void rmsnorm_kernel(const float* x, const float* w, int64_t hidden, float eps, uint16_t* out) {
  __shared__ float shared[32];
  int64_t row = blockIdx.x;
  const float* r = x + row * hidden;
  float ss = 0;
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) ss += r[c] * r[c];
  float scale = rsqrtf(block_sum(ss, shared) / static_cast<float>(hidden) + eps);
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) out[row * hidden + c] = to_bf(w[c] * (r[c] * scale));
}

__global__ void rope_kernel(float* q, float* k, const int32_t* pos, int64_t hq, int64_t hkv, int64_t d, const float* inv_freq) {
  int64_t row = blockIdx.x, half = d / 2;
  for (int64_t idx = threadIdx.x; idx < (hq + hkv) * half; idx += blockDim.x) {
    int64_t h = idx / half, i = idx % half;
    float angle = static_cast<float>(pos[row]) * inv_freq[i];
    float c = cosf(angle), s = sinf(angle);
    float* base = h < hq ? q + row * hq * d + h * d : k + row * hkv * d + (h - hq) * d;
    float a = base[i], b = base[i + half];
    base[i] = a * c - b * s;
    base[i + half] = b * c + a * s;
  }
}

__global__ void kv_write_kernel(const float* k, const float* v, const int32_t* slots, int64_t width, float* kc, float* vc) {
  int64_t row = blockIdx.x, slot = slots[row];
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
    kc[slot * width + c] = k[row * width + c];
    vc[slot * width + c] = v[row * width + c];
  }
}

// One block per (row, head); threads stride over the head dimension.
__global__ void attention_kernel(const float* q, const float* kc, const float* vc, float* out, const int32_t* pos,
                                 const int32_t* table_offset, const int32_t* tables, int64_t hq, int64_t hkv, int64_t d,
                                 int64_t bs) {
  __shared__ float shared[32];
  int64_t row = blockIdx.x, h = blockIdx.y, g = h / (hq / hkv);
  const float* qr = q + row * hq * d + h * d;
  const int32_t* table = tables + table_offset[row];
  const float scale = rsqrtf(static_cast<float>(d));
  const int64_t width = hkv * d;
  // Each thread owns at most 4 dimensions (d <= 4·blockDim).
  float acc[4] = {0, 0, 0, 0}, qv[4] = {0, 0, 0, 0};
  for (int j = 0; j < 4; ++j) {
    int64_t c = threadIdx.x + j * blockDim.x;
    if (c < d) qv[j] = qr[c];
  }
  float m = -INFINITY, l = 0;
  for (int64_t key = 0; key <= pos[row]; ++key) {
    int64_t slot = static_cast<int64_t>(table[key / bs]) * bs + key % bs;
    const float* kr = kc + slot * width + g * d;
    float partial = 0;
    for (int j = 0; j < 4; ++j) {
      int64_t c = threadIdx.x + j * blockDim.x;
      if (c < d) partial += qv[j] * kr[c];
    }
    float s = block_sum(partial, shared) * scale;
    float m_new = fmaxf(m, s), corr = expf(m - m_new), p = expf(s - m_new);
    l = l * corr + p;
    const float* vr = vc + slot * width + g * d;
    for (int j = 0; j < 4; ++j) {
      int64_t c = threadIdx.x + j * blockDim.x;
      if (c < d) acc[j] = acc[j] * corr + p * vr[c];
    }
    m = m_new;
  }
  for (int j = 0; j < 4; ++j) {
    int64_t c = threadIdx.x + j * blockDim.x;
    if (c < d) out[row * hq * d + h * d + c] = acc[j] / l;
  }
}

__global__ void swiglu_kernel(const float* g, const float* u, int64_t n, uint16_t* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = to_bf(g[i] / (1.0f + expf(-g[i])) * u[i]);
}

__global__ void to_bf16_kernel(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) out[i] = to_bf(x[i]);
}

__global__ void gather_kernel(const float* x, const int32_t* rows, int64_t width, float* out) {
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) out[blockIdx.x * width + c] = x[rows[blockIdx.x] * width + c];
}

unsigned grid_for(int64_t n) {
  int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

}  // namespace

void* alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes > 0 ? bytes : 1), "cudaMalloc");
  return p;
}
void release(void* p) { cudaFree(p); }
void copy_to_device(void* dst, const void* src, size_t bytes) { check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copy to device"); }
void copy_to_host(void* dst, const void* src, size_t bytes) { check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copy to host"); }
void zero(void* p, size_t bytes) { check(cudaMemset(p, 0, bytes), "memset"); }

void embed(const uint16_t* table, const int32_t* tokens, int64_t rows, int64_t hidden, float* x) {
  embed_kernel<<<static_cast<unsigned>(rows), 256>>>(table, tokens, hidden, x);
  check_launch("embed");
}

void rmsnorm(const float* x, const float* w, int64_t rows, int64_t hidden, float eps, uint16_t* out) {
  rmsnorm_kernel<<<static_cast<unsigned>(rows), 256>>>(x, w, hidden, eps, out);
  check_launch("rmsnorm");
}

void gemm(const uint16_t* x, const uint16_t* w, float* out, int64_t t, int64_t n, int64_t k, bool accumulate) {
  // Row-major out[t, n] = x[t, k] · w[n, k]ᵀ is column-major outᵀ[n, t] = w · xᵀ with w transposed.
  float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  if (cublasGemmEx(handle(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(t), static_cast<int>(k), &alpha,
                   w, CUDA_R_16BF, static_cast<int>(k), x, CUDA_R_16BF, static_cast<int>(k), &beta, out, CUDA_R_32F,
                   static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error("cuBLAS GemmEx failed");
}

void rope(float* q, float* k, const int32_t* pos, int64_t rows, int64_t hq, int64_t hkv, int64_t d, const float* inv_freq) {
  rope_kernel<<<static_cast<unsigned>(rows), 256>>>(q, k, pos, hq, hkv, d, inv_freq);
  check_launch("rope");
}

void kv_write(const float* k, const float* v, const int32_t* slots, int64_t rows, int64_t width, float* kc, float* vc) {
  kv_write_kernel<<<static_cast<unsigned>(rows), 256>>>(k, v, slots, width, kc, vc);
  check_launch("kv_write");
}

void attention(const float* q, const float* kc, const float* vc, float* out, const int32_t* pos, const int32_t* table_offset,
               const int32_t* tables, int64_t rows, int64_t hq, int64_t hkv, int64_t d, int64_t bs) {
  if (d > 4 * 128) throw std::invalid_argument("attention kernel supports head_dim <= 512");
  dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(hq));
  attention_kernel<<<grid, 128>>>(q, kc, vc, out, pos, table_offset, tables, hq, hkv, d, bs);
  check_launch("attention");
}

void swiglu(const float* g, const float* u, int64_t n, uint16_t* out) {
  swiglu_kernel<<<grid_for(n), 256>>>(g, u, n, out);
  check_launch("swiglu");
}

void to_bf16(const float* x, int64_t n, uint16_t* out) {
  to_bf16_kernel<<<grid_for(n), 256>>>(x, n, out);
  check_launch("to_bf16");
}

void gather_rows(const float* x, const int32_t* rows, int64_t n, int64_t width, float* out) {
  gather_kernel<<<static_cast<unsigned>(n), 256>>>(x, rows, width, out);
  check_launch("gather_rows");
}

}  // namespace xp::serving::cuda
