// Llama kernels for serving/model/llama_cuda.cpp. Decode is memory-bound: the matrix-vector
// kernel streams each weight once with 16-byte loads, and decode attention splits long contexts
// across blocks. Prefill attention is flash attention on tensor cores (mma.sync bf16, f32
// accumulation, online softmax in registers). The CPU LlamaModel is the reference.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>

#include "serving/model/cuda/kernels.h"

namespace xp::serving::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}
void check_launch(const char* what) { check(cudaGetLastError(), what); }

// One non-blocking stream for all of the model's work, so that a decode step can be captured
// into a CUDA graph (the legacy default stream cannot be captured).
cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t x;
    check(cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking), "stream");
    return x;
  }();
  return s;
}

cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t x;
    if (cublasCreate(&x) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cuBLAS: cannot create a handle");
    // A workspace of our own, so cuBLAS allocates nothing while a graph is being captured.
    constexpr size_t kWorkspace = size_t{32} << 20;
    void* ws = nullptr;
    check(cudaMalloc(&ws, kWorkspace), "cuBLAS workspace");
    if (cublasSetStream(x, stream()) != CUBLAS_STATUS_SUCCESS || cublasSetWorkspace(x, ws, kWorkspace) != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error("cuBLAS: cannot set the stream and workspace");
    return x;
  }();
  return h;
}

__device__ __forceinline__ float bf(uint16_t v) { return __uint_as_float(static_cast<uint32_t>(v) << 16); }
__device__ __forceinline__ uint16_t to_bf(float v) {
  __nv_bfloat16 b = __float2bfloat16_rn(v);
  return *reinterpret_cast<uint16_t*>(&b);
}
// Two floats as a bf16 pair, `lo` in the low half (the lower column of an mma fragment).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
// The 8 bf16 of a 16-byte word as floats.
__device__ __forceinline__ void unpack8(uint4 v, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
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

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ size_t kv_slot(const int32_t* table, int key, int block_size) {
  return static_cast<size_t>(table[key / block_size]) * block_size + key % block_size;
}

__global__ void fill_uniform_kernel(uint16_t* p, int64_t n, float scale, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint64_t z = seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
    p[i] = to_bf((2.0f * u - 1.0f) * scale);
  }
}

__global__ void fill_f32_kernel(float* p, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) p[i] = value;
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
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) out[row * hidden + c] = to_bf((w ? w[c] : 1.0f) * (r[c] * scale));
}

__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// RoPE for one (first, second) pair of a head's dims, by the angle's cosine and sine; every
// RoPE path uses it (the compiler may still contract it into FMAs differently per call site,
// so the fused and unfused paths agree to rounding, as the tests' bounds allow).
__device__ __forceinline__ void rotate_by(float& a0, float& a1, float c, float s) {
  float r0 = a0 * c - a1 * s, r1 = a1 * c + a0 * s;
  a0 = r0;
  a1 = r1;
}
// ... at position p with frequency inv_freq.
__device__ __forceinline__ void rotate(float& a0, float& a1, float p, float inv_freq) {
  float angle = p * inv_freq;
  rotate_by(a0, a1, cosf(angle), sinf(angle));
}

// What a matrix-vector kernel does with each warp's two dot products per row of x.
enum class Epilogue {
  kStore,   // rows 2c, 2c+1 are output columns: store (or add, for a residual) as f32
  kSwiGLU,  // rows 2c, 2c+1 are column c's gate and up: store silu(gate)·up as bf16
  kRoPE,    // rows 2c, 2c+1 are a RoPE pair of the fused q/k/v matrix (see rope_kv_write):
            // rotate q in place in f32, write rotated k and v to their cache slots as bf16
};
struct RopeTarget {  // kRoPE only
  const int32_t *pos, *slots;
  const float* inv_freq;
  uint16_t *kc, *vc;
  int hq, hkv, d;
};

// A group of kSplit warps per two weight rows, all T rows of x at once, so each weight is read
// exactly once; each warp takes every kSplit-th stripe of 32 16-byte chunks of the rows, and every
// lane keeps 8 loads in flight. Splitting keeps enough loads in flight where a matrix has few,
// long rows (the down projection went 2.5 -> 3.6 TB/s on an H200). With kNorm, x is the f32
// residual stream and the kernel is the RMSNorm too: the warps sum x² alongside the products and
// scale both dot products by rsqrt(mean + eps), the norm's weight being folded into w's columns.
// That saves a launch and a round trip of the normed row. The epilogue fuses what follows.
constexpr int kGemvWarps = 8;
template <int T, Epilogue E, bool kNorm, int kSplit>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(const void* __restrict__ x, const uint16_t* __restrict__ w,
                                                                void* __restrict__ out, int n, int k, bool accumulate,
                                                                float eps, RopeTarget rope) {
  constexpr int kSums = kNorm ? 3 : 2;  // the two rows' dot products, and Σx²
  __shared__ float sums[kGemvWarps][kSums][T];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, part = warp % kSplit;
  const int group = blockIdx.x * (kGemvWarps / kSplit) + warp / kSplit;  // weight rows 2·group, 2·group + 1
  const bool active = 2 * group < n;  // n: rows of w
  const int chunks = k / 8;
  float acc[kSums][T];
#pragma unroll
  for (int q = 0; q < kSums; ++q)
#pragma unroll
    for (int t = 0; t < T; ++t) acc[q][t] = 0;
  if (active) {
    const uint4* wr = reinterpret_cast<const uint4*>(w + static_cast<size_t>(group) * 2 * k);
#pragma unroll 4
    for (int i = part * 32 + lane; i < chunks; i += 32 * kSplit) {
      float wf[2][8], xf[8];
#pragma unroll
      for (int r = 0; r < 2; ++r) unpack8(__ldg(wr + r * chunks + i), wf[r]);
#pragma unroll
      for (int t = 0; t < T; ++t) {
        if constexpr (kNorm) {
          const float4* xr = reinterpret_cast<const float4*>(static_cast<const float*>(x) + static_cast<size_t>(t) * k) + 2 * i;
          const float4 lo = __ldg(xr), hi = __ldg(xr + 1);
          const float v[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            xf[j] = v[j];
            acc[2][t] = fmaf(v[j], v[j], acc[2][t]);
          }
        } else {
          unpack8(__ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(x) + static_cast<size_t>(t) * k) + i), xf);
        }
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[r][t] = fmaf(wf[r][j], xf[j], acc[r][t]);
      }
    }
  }
  // The group's first warp adds the warps' sums in a fixed order, so results are deterministic.
#pragma unroll
  for (int q = 0; q < kSums; ++q)
#pragma unroll
    for (int t = 0; t < T; ++t) {
      const float v = warp_sum(acc[q][t]);
      if (lane == 0) sums[warp][q][t] = v;
    }
  __syncthreads();
  if (part != 0 || lane != 0 || !active) return;
#pragma unroll
  for (int t = 0; t < T; ++t) {
    float total[kSums] = {};
    for (int p = 0; p < kSplit; ++p)
#pragma unroll
      for (int q = 0; q < kSums; ++q) total[q] += sums[warp + p][q][t];
    float a0 = total[0], a1 = total[1];
    if constexpr (kNorm) {
      const float scale = rsqrtf(total[kSums - 1] / static_cast<float>(k) + eps);
      a0 *= scale;
      a1 *= scale;
    }
    const int col = 2 * group;
    if constexpr (E == Epilogue::kSwiGLU) {
      static_cast<uint16_t*>(out)[static_cast<size_t>(t) * (n / 2) + group] = to_bf(silu_times(a0, a1));
    } else if constexpr (E == Epilogue::kStore) {
      float* o = static_cast<float*>(out) + static_cast<size_t>(t) * n + col;
      o[0] = accumulate ? o[0] + a0 : a0;
      o[1] = accumulate ? o[1] + a1 : a1;
    } else {
      const int q_width = rope.hq * rope.d, kv_width = rope.hkv * rope.d;
      const float p = static_cast<float>(rope.pos[t]);
      const size_t slot = static_cast<size_t>(rope.slots[t]) * kv_width;
      if (col < q_width) {
        rotate(a0, a1, p, rope.inv_freq[(col % rope.d) / 2]);
        float* o = static_cast<float*>(out) + static_cast<size_t>(t) * n + col;
        o[0] = a0;
        o[1] = a1;
      } else if (col < q_width + kv_width) {
        rotate(a0, a1, p, rope.inv_freq[(col % rope.d) / 2]);
        rope.kc[slot + col - q_width] = to_bf(a0);
        rope.kc[slot + col - q_width + 1] = to_bf(a1);
      } else {
        rope.vc[slot + col - q_width - kv_width] = to_bf(a0);
        rope.vc[slot + col - q_width - kv_width + 1] = to_bf(a1);
      }
    }
  }
}

// n: rows of w (twice the output columns for kSwiGLU). With kNorm, x is f32 (see gemv_kernel).
// Four warps a row pair, except for the RoPE epilogue: there the split cost more than it gained
// (q/k/v at batch 1 on an H200: 29.9 µs unsplit, 31.2 split in four; the batch-1 step 3.93 vs 3.98 ms).
template <Epilogue E, bool kNorm = false, int kSplit = (E == Epilogue::kRoPE ? 1 : 4)>
void launch_gemv(const void* x, const uint16_t* w, void* out, int64_t t, int64_t n, int64_t k, bool accumulate,
                 float eps = 0, RopeTarget rope = {}) {
  constexpr int64_t kGroups = kGemvWarps / kSplit;
  const unsigned blocks = static_cast<unsigned>((n / 2 + kGroups - 1) / kGroups);
  const int ni = static_cast<int>(n), ki = static_cast<int>(k);
  constexpr unsigned threads = kGemvWarps * 32;
  switch (t) {
    case 1: gemv_kernel<1, E, kNorm, kSplit><<<blocks, threads, 0, stream()>>>(x, w, out, ni, ki, accumulate, eps, rope); break;
    case 2: gemv_kernel<2, E, kNorm, kSplit><<<blocks, threads, 0, stream()>>>(x, w, out, ni, ki, accumulate, eps, rope); break;
    case 3: gemv_kernel<3, E, kNorm, kSplit><<<blocks, threads, 0, stream()>>>(x, w, out, ni, ki, accumulate, eps, rope); break;
    default: gemv_kernel<4, E, kNorm, kSplit><<<blocks, threads, 0, stream()>>>(x, w, out, ni, ki, accumulate, eps, rope); break;
  }
  check_launch("gemv");
}

bool gemv_fits(int64_t t, int64_t n, int64_t k) { return t <= kGemvMaxRows && k % 8 == 0 && n % 2 == 0; }

// Block per row: the row's cos/sin table first (one sincos per frequency, not per head). The
// fused q/k rows come in RoPE pairs: dims 2i and 2i+1 of a head are the model's dims i and
// i + d/2 (a permutation of q and k alike leaves every q·k, and so attention, unchanged).
constexpr int kMaxRopeHalf = 256;
__global__ void rope_kv_write_kernel(float* qkv, const int32_t* pos, const int32_t* slots, int hq, int hkv, int d,
                                     const float* inv_freq, uint16_t* kc, uint16_t* vc) {
  __shared__ float cos_t[kMaxRopeHalf], sin_t[kMaxRopeHalf];
  const int row = blockIdx.x, half = d / 2, width = hkv * d;
  float* q = qkv + static_cast<size_t>(row) * (hq + 2 * hkv) * d;
  const float *k = q + hq * d, *v = k + width;
  const size_t slot = static_cast<size_t>(slots[row]);
  const float p = static_cast<float>(pos[row]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float angle = p * inv_freq[i];
    cos_t[i] = cosf(angle);
    sin_t[i] = sinf(angle);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < (hq + hkv) * half; idx += blockDim.x) {
    int head = idx / half, i = idx % half;
    const float* src = head < hq ? q + head * d : k + (head - hq) * d;
    float a0 = src[2 * i], a1 = src[2 * i + 1];
    rotate_by(a0, a1, cos_t[i], sin_t[i]);
    if (head < hq) {
      q[head * d + 2 * i] = a0;
      q[head * d + 2 * i + 1] = a1;
    } else {
      uint16_t* dst = kc + slot * width + (head - hq) * d;
      dst[2 * i] = to_bf(a0);
      dst[2 * i + 1] = to_bf(a1);
    }
  }
  for (int c = threadIdx.x; c < width; c += blockDim.x) vc[slot * width + c] = to_bf(v[c]);
}

// ---- prefill attention: flash attention on tensor cores ----------------------------------------
// A block takes kTileRows query rows of one sequence and one head; each of its 4 warps owns 16
// rows. Keys come in tiles of 64 through shared memory; S = Q·Kᵀ and O += P·V run as
// mma.m16n8k16 (bf16 in, f32 out), and P's accumulator layout is exactly the A-operand layout
// of the second product, so scores never leave registers.
constexpr int kPrefillThreads = 128, kKeyTile = 64;

__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8×8 bf16 matrices, transposed: the B operands (k = key, n = head dim) of two n-tiles.
__device__ __forceinline__ void ldmatrix_x4_trans(const uint16_t* p, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

// 16 bytes global → shared without passing through registers; `bytes` = 0 writes zeros.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int bytes) {
  auto s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <int D>
constexpr int prefill_smem_bytes() {
  return 2 * 2 * kKeyTile * (D + 8) * 2;  // two stages of K and V tiles, bf16, padded rows
}

template <int D>
__global__ void __launch_bounds__(kPrefillThreads) prefill_attention_kernel(
    const float* __restrict__ qkv, const uint16_t* __restrict__ kc, const uint16_t* __restrict__ vc,
    uint16_t* __restrict__ out, const int32_t* pos, const int32_t* table_offset, const int32_t* tables,
    const int32_t* tile_first_row, const int32_t* tile_rows, int hq, int hkv, int block_size, float scale_log2) {
  constexpr int kStride = D + 8;  // padded rows: the fragment loads below hit 32 distinct banks
  constexpr int kTile = kKeyTile * kStride;
  extern __shared__ __align__(16) uint16_t smem[];  // stage s: K at 2s·kTile, V at (2s+1)·kTile
  // Tiles run last first: later tiles see more keys, and starting them first shortens the tail.
  const int tile = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, group = h / (hq / hkv);
  const int first = tile_first_row[tile], rows = tile_rows[tile];
  const int pos0 = pos[first], last_pos = pos0 + rows - 1;
  const int32_t* table = tables + table_offset[first];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
  const int q_stride = (hq + 2 * hkv) * D, kv_width = hkv * D;
  const int r0 = warp * 16 + g, r1 = r0 + 8;  // this thread's two rows within the tile
  const int pos_r0 = pos0 + r0, pos_r1 = pos0 + r1;
  const bool active = warp * 16 < rows;  // a partial tile's idle warps still load and meet every barrier

  // Copies keys key0.. of the tile into a stage (zeros past the chunk's last position).
  auto load = [&](int key0, int stage) {
    constexpr int kChunks = D / 8;  // 16-byte pieces per key row
    uint16_t *ks = smem + 2 * stage * kTile, *vs = ks + kTile;
#pragma unroll
    for (int it = 0; it < kKeyTile * kChunks / kPrefillThreads; ++it) {
      int idx = it * kPrefillThreads + threadIdx.x, kk = idx / kChunks, c = (idx % kChunks) * 8, key = key0 + kk;
      size_t off = key <= last_pos ? kv_slot(table, key, block_size) * kv_width + group * D + c : 0;
      int bytes = key <= last_pos ? 16 : 0;
      cp_async16(ks + kk * kStride + c, kc + off, bytes);
      cp_async16(vs + kk * kStride + c, vc + off, bytes);
    }
    cp_async_commit();
  };

  uint32_t qf[D / 16][4];  // Q as A fragments, one per 16 head dims
#pragma unroll
  for (int s = 0; s < D / 16; ++s) {
    auto q_pair = [&](int r, int c) -> uint32_t {
      if (r >= rows) return 0u;
      const float* p = qkv + static_cast<size_t>(first + r) * q_stride + h * D + c;
      return pack_bf16(p[0], p[1]);
    };
    int c0 = s * 16 + tig * 2;
    qf[s][0] = q_pair(r0, c0);
    qf[s][1] = q_pair(r1, c0);
    qf[s][2] = q_pair(r0, c0 + 8);
    qf[s][3] = q_pair(r1, c0 + 8);
  }
  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0, l1 = 0;

  const int key_tiles = last_pos / kKeyTile + 1;
  load(0, 0);
  for (int t = 0; t < key_tiles; ++t) {
    // Tile t+1 streams in while tile t is computed on.
    if (t + 1 < key_tiles) {
      load((t + 1) * kKeyTile, (t + 1) % 2);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint16_t *ks = smem + 2 * (t % 2) * kTile, *vs = ks + kTile;
    const int key0 = t * kKeyTile;
    if (active) {
      float s[kKeyTile / 8][4];
#pragma unroll
      for (int j = 0; j < kKeyTile / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0;
#pragma unroll
      for (int kd = 0; kd < D / 16; ++kd)
#pragma unroll
        for (int j = 0; j < kKeyTile / 8; ++j) {
          const uint16_t* kr = ks + (j * 8 + g) * kStride + kd * 16 + tig * 2;
          mma_bf16(s[j], qf[kd], *reinterpret_cast<const uint32_t*>(kr), *reinterpret_cast<const uint32_t*>(kr + 8));
        }
      // Scores in log2 units; keys after a row's own position are masked (bottom-right causal),
      // which only tiles reaching past the warp's first row need.
      const bool diagonal = key0 + kKeyTile - 1 > pos0 + warp * 16;
      float bm0 = -INFINITY, bm1 = -INFINITY;
#pragma unroll
      for (int j = 0; j < kKeyTile / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          int key = key0 + j * 8 + tig * 2 + e;
          s[j][e] = !diagonal || key <= pos_r0 ? s[j][e] * scale_log2 : -INFINITY;
          s[j][2 + e] = !diagonal || key <= pos_r1 ? s[j][2 + e] * scale_log2 : -INFINITY;
          bm0 = fmaxf(bm0, s[j][e]);
          bm1 = fmaxf(bm1, s[j][2 + e]);
        }
      // A row's values sit in the 4 threads of its quad.
      bm0 = fmaxf(bm0, __shfl_xor_sync(0xffffffffu, bm0, 1));
      bm0 = fmaxf(bm0, __shfl_xor_sync(0xffffffffu, bm0, 2));
      bm1 = fmaxf(bm1, __shfl_xor_sync(0xffffffffu, bm1, 1));
      bm1 = fmaxf(bm1, __shfl_xor_sync(0xffffffffu, bm1, 2));
      // Key 0 is in the first tile and never masked, so the running maxima are finite from here.
      const float mn0 = fmaxf(m0, bm0), mn1 = fmaxf(m1, bm1);
      const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);
      m0 = mn0;
      m1 = mn1;
      l0 *= c0;
      l1 *= c1;
#pragma unroll
      for (int j = 0; j < kKeyTile / 8; ++j) {
        s[j][0] = exp2f(s[j][0] - m0);
        s[j][1] = exp2f(s[j][1] - m0);
        s[j][2] = exp2f(s[j][2] - m1);
        s[j][3] = exp2f(s[j][3] - m1);
        l0 += s[j][0] + s[j][1];
        l1 += s[j][2] + s[j][3];
      }
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        o[j][0] *= c0;
        o[j][1] *= c0;
        o[j][2] *= c1;
        o[j][3] *= c1;
      }
#pragma unroll
      for (int kk = 0; kk < kKeyTile / 16; ++kk) {
        const uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                               pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
        // Lanes 0-7 / 8-15 address keys 0-7 / 8-15 of this step at dims j·8; lanes 16-31 the same at (j+1)·8.
        const uint16_t* row_ptr = vs + (kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * kStride + (lane / 16) * 8;
#pragma unroll
        for (int j = 0; j < D / 8; j += 2) {
          uint32_t b0, b1, b2, b3;
          ldmatrix_x4_trans(row_ptr + j * 8, b0, b1, b2, b3);
          mma_bf16(o[j], a, b0, b1);
          mma_bf16(o[j + 1], a, b2, b3);
        }
      }
    }
    __syncthreads();  // this stage is refilled two tiles from now
  }
  if (!active) return;
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const size_t out_stride = static_cast<size_t>(hq) * D;
#pragma unroll
  for (int j = 0; j < D / 8; ++j) {
    int col = h * D + j * 8 + tig * 2;
    if (r0 < rows)
      *reinterpret_cast<uint32_t*>(out + (first + r0) * out_stride + col) = pack_bf16(o[j][0] / l0, o[j][1] / l0);
    if (r1 < rows)
      *reinterpret_cast<uint32_t*>(out + (first + r1) * out_stride + col) = pack_bf16(o[j][2] / l1, o[j][3] / l1);
  }
}

// ---- decode attention: split over long contexts -------------------------------------------------
// Block (row, head, split): 4 warps walk the split's keys, 8 keys a step with all loads issued
// first (a key's load depends on its block-table entry, so one key at a time would wait twice per
// key on memory). Each lane holds D/32 dims. Warps merge in shared memory; with several splits
// each block writes (unnormalised acc, max, sum) and the last one to finish merges them.
constexpr int kDecodeWarps = 4, kDecodeUnroll = 8;

template <int V>
__device__ __forceinline__ void load_bf16(const uint16_t* p, float* f) {
  if constexpr (V == 4) {
    uint2 w = *reinterpret_cast<const uint2*>(p);
    f[0] = __uint_as_float(w.x << 16);
    f[1] = __uint_as_float(w.x & 0xffff0000u);
    f[2] = __uint_as_float(w.y << 16);
    f[3] = __uint_as_float(w.y & 0xffff0000u);
  } else {
    uint32_t w = *reinterpret_cast<const uint32_t*>(p);
    f[0] = __uint_as_float(w << 16);
    f[1] = __uint_as_float(w & 0xffff0000u);
  }
}

template <int D>
__global__ void __launch_bounds__(kDecodeWarps * 32) decode_attention_kernel(
    const float* __restrict__ qkv, const uint16_t* __restrict__ kc, const uint16_t* __restrict__ vc,
    uint16_t* __restrict__ out, float* __restrict__ partial, int* split_counters, const int32_t* decode_rows, const int32_t* pos,
    const int32_t* table_offset, const int32_t* tables, int hq, int hkv, int block_size, int keys_per_split,
    float scale_log2) {
  constexpr int V = D / 32;
  __shared__ float sm_m[kDecodeWarps], sm_l[kDecodeWarps], sm_acc[kDecodeWarps][D];
  const int row = decode_rows[blockIdx.x], h = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
  const int group = h / (hq / hkv), warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int begin = split * keys_per_split, end = min(pos[row] + 1, begin + keys_per_split);
  const int32_t* table = tables + table_offset[row];
  const float* qr = qkv + static_cast<size_t>(row) * (hq + 2 * hkv) * D + h * D + lane * V;
  float q[V], acc[V];
#pragma unroll
  for (int i = 0; i < V; ++i) {
    q[i] = qr[i] * scale_log2;
    acc[i] = 0;
  }
  float m = -INFINITY, l = 0;
  const size_t kv_width = static_cast<size_t>(hkv) * D, head_off = static_cast<size_t>(group) * D + lane * V;
  for (int base = begin + warp * kDecodeUnroll; base < end; base += kDecodeWarps * kDecodeUnroll) {
    float k[kDecodeUnroll][V] = {}, v[kDecodeUnroll][V] = {};
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) {
      if (base + u < end) {
        size_t off = kv_slot(table, base + u, block_size) * kv_width + head_off;
        load_bf16<V>(kc + off, k[u]);
        load_bf16<V>(vc + off, v[u]);
      }
    }
    float s[kDecodeUnroll];
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) {
      float dot = 0;
      if (base + u < end)
#pragma unroll
        for (int i = 0; i < V; ++i) dot = fmaf(q[i], k[u][i], dot);
      s[u] = dot;
    }
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) s[u] = warp_sum(s[u]);
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) {
      if (base + u >= end) break;
      float mn = fmaxf(m, s[u]), c = exp2f(m - mn), p = exp2f(s[u] - mn);
      l = l * c + p;
#pragma unroll
      for (int i = 0; i < V; ++i) acc[i] = acc[i] * c + p * v[u][i];
      m = mn;
    }
  }
  if (lane == 0) {
    sm_m[warp] = m;
    sm_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < V; ++i) sm_acc[warp][lane * V + i] = acc[i];
  __syncthreads();
  float big = -INFINITY;
  for (int w = 0; w < kDecodeWarps; ++w) big = fmaxf(big, sm_m[w]);
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    float sum = 0, a = 0;
    for (int w = 0; w < kDecodeWarps; ++w) {
      if (sm_m[w] == -INFINITY) continue;  // a warp (or the whole split) that saw no keys
      float f = exp2f(sm_m[w] - big);
      sum += sm_l[w] * f;
      a += sm_acc[w][c] * f;
    }
    if (splits == 1) {
      out[static_cast<size_t>(row) * hq * D + h * D + c] = to_bf(a / sum);
    } else {
      float* p = partial + ((static_cast<size_t>(blockIdx.x) * hq + h) * splits + split) * (D + 2);
      p[c] = a;
      if (c == 0) {
        p[D] = big;
        p[D + 1] = sum;
      }
    }
  }
  if (splits == 1) return;
  // The last of the (row, head)'s splits to finish merges them all: no second launch.
  __shared__ bool last;
  __threadfence();  // this block's partial result is visible to whichever block merges
  __syncthreads();
  if (threadIdx.x == 0) {
    int* counter = split_counters + blockIdx.x * hq + h;
    last = atomicAdd(counter, 1) == splits - 1;
    if (last) *counter = 0;  // ready for the next pass (a replayed graph included)
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const float* base = partial + (static_cast<size_t>(blockIdx.x) * hq + h) * splits * (D + 2);
  big = -INFINITY;
  for (int sp = 0; sp < splits; ++sp) big = fmaxf(big, __ldcg(base + sp * (D + 2) + D));
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    float sum = 0, a = 0;
    for (int sp = 0; sp < splits; ++sp) {
      const float* p = base + sp * (D + 2);
      float m_sp = __ldcg(p + D);
      if (m_sp == -INFINITY) continue;  // a split past the row's context
      float f = exp2f(m_sp - big);
      sum += __ldcg(p + D + 1) * f;
      a += __ldcg(p + c) * f;
    }
    out[static_cast<size_t>(row) * hq * D + h * D + c] = to_bf(a / sum);
  }
}

// Any head size: block (row, head), threads over the head dimension, one key at a time.
__global__ void plain_attention_kernel(const float* qkv, const uint16_t* kc, const uint16_t* vc, uint16_t* out,
                                       const int32_t* decode_rows, const int32_t* pos, const int32_t* table_offset,
                                       const int32_t* tables, int hq, int hkv, int d, int block_size) {
  __shared__ float shared[32];
  const int row = decode_rows[blockIdx.x], h = blockIdx.y, group = h / (hq / hkv);
  const float* qr = qkv + static_cast<size_t>(row) * (hq + 2 * hkv) * d + h * d;
  const int32_t* table = tables + table_offset[row];
  const float scale = rsqrtf(static_cast<float>(d));
  const size_t width = static_cast<size_t>(hkv) * d;
  // Each thread owns at most 4 dimensions (d <= 4·blockDim).
  float acc[4] = {0, 0, 0, 0}, qv[4] = {0, 0, 0, 0};
  for (int j = 0; j < 4; ++j) {
    int c = threadIdx.x + j * blockDim.x;
    if (c < d) qv[j] = qr[c];
  }
  float m = -INFINITY, l = 0;
  for (int key = 0; key <= pos[row]; ++key) {
    size_t base = kv_slot(table, key, block_size) * width + static_cast<size_t>(group) * d;
    float partial = 0;
    for (int j = 0; j < 4; ++j) {
      int c = threadIdx.x + j * blockDim.x;
      if (c < d) partial += qv[j] * bf(kc[base + c]);
    }
    float s = block_sum(partial, shared) * scale;
    float m_new = fmaxf(m, s), corr = expf(m - m_new), p = expf(s - m_new);
    l = l * corr + p;
    for (int j = 0; j < 4; ++j) {
      int c = threadIdx.x + j * blockDim.x;
      if (c < d) acc[j] = acc[j] * corr + p * bf(vc[base + c]);
    }
    m = m_new;
  }
  for (int j = 0; j < 4; ++j) {
    int c = threadIdx.x + j * blockDim.x;
    if (c < d) out[static_cast<size_t>(row) * hq * d + h * d + c] = to_bf(acc[j] / l);
  }
}

// Block (column range, row); gate_up rows interleave gate and up: (g0, u0, g1, u1, ...).
__global__ void swiglu_kernel(const float* gate_up, int inter, uint16_t* out) {
  const float2* gu = reinterpret_cast<const float2*>(gate_up) + static_cast<size_t>(blockIdx.y) * inter;
  uint16_t* o = out + static_cast<size_t>(blockIdx.y) * inter;
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < inter; j += gridDim.x * blockDim.x) {
    float2 v = gu[j];
    o[j] = to_bf(silu_times(v.x, v.y));
  }
}

__global__ void gather_kernel(const float* x, const int32_t* rows, int64_t width, float* out) {
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) out[blockIdx.x * width + c] = x[rows[blockIdx.x] * width + c];
}

unsigned grid_for(int64_t n) {
  int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

template <int D>
void launch_fast_attention(const float* qkv, const uint16_t* kc, const uint16_t* vc, uint16_t* out, float* partial,
                           int* split_counters, const AttentionWork& w, int hq, int hkv, int bs) {
  const float scale_log2 = 1.4426950408889634f / std::sqrt(static_cast<float>(D));
  if (w.tiles > 0) {
    constexpr int kSmem = prefill_smem_bytes<D>();
    static const bool raised = [] {  // past the 48 KB a block gets by default
      check(cudaFuncSetAttribute(prefill_attention_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem),
            "prefill attention shared memory");
      return true;
    }();
    (void)raised;
    dim3 grid(static_cast<unsigned>(w.tiles), static_cast<unsigned>(hq));
    prefill_attention_kernel<D><<<grid, kPrefillThreads, kSmem, stream()>>>(qkv, kc, vc, out, w.pos, w.table_offset,
                                                                            w.tables, w.tile_first_row, w.tile_rows, hq,
                                                                            hkv, bs, scale_log2);
    check_launch("prefill attention");
  }
  if (w.decode_count > 0) {
    dim3 grid(static_cast<unsigned>(w.decode_count), static_cast<unsigned>(hq), static_cast<unsigned>(w.splits));
    decode_attention_kernel<D><<<grid, kDecodeWarps * 32, 0, stream()>>>(
        qkv, kc, vc, out, partial, split_counters, w.decode_rows, w.pos, w.table_offset, w.tables, hq, hkv, bs,
        static_cast<int>(w.keys_per_split), scale_log2);
    check_launch("decode attention");
  }
}

// Times `reps` runs of `f` with CUDA events (after one warm-up); seconds per run.
template <class F>
double time_device(F&& f, int reps) {
  f();
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  check(cudaEventRecord(a, stream()), "event record");
  for (int r = 0; r < reps; ++r) f();
  check(cudaEventRecord(b, stream()), "event record");
  check(cudaEventSynchronize(b), "event sync");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, a, b), "event time");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / 1e3 / reps;
}

}  // namespace

void* alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes > 0 ? bytes : 1), "cudaMalloc");
  return p;
}
void release(void* p) { cudaFree(p); }
// Host memory is pageable: the copy has left `src` when cudaMemcpyAsync returns.
void copy_to_device(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()), "copy to device");
}
void copy_to_host(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()), "copy to host");
  check(cudaStreamSynchronize(stream()), "copy to host");
}
void zero(void* p, size_t bytes) { check(cudaMemsetAsync(p, 0, bytes, stream()), "memset"); }
void synchronize() { check(cudaStreamSynchronize(stream()), "synchronize"); }

void* graph_capture(const std::function<void()>& issue) {
  check(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal), "begin capture");
  cudaGraph_t graph = nullptr;
  try {
    issue();
  } catch (...) {
    cudaStreamEndCapture(stream(), &graph);  // leaves capture mode whatever happened
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  check(cudaStreamEndCapture(stream(), &graph), "end capture");
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check(e, "graph instantiate");
  return exec;
}
void graph_replay(void* exec) { check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), stream()), "graph launch"); }
void graph_release(void* exec) { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec)); }

void fill_uniform_bf16(uint16_t* p, int64_t n, float scale, uint64_t seed) {
  fill_uniform_kernel<<<4096, 256, 0, stream()>>>(p, n, scale, seed);
  check_launch("fill_uniform_bf16");
}

void fill_f32(float* p, int64_t n, float value) {
  fill_f32_kernel<<<grid_for(n), 256, 0, stream()>>>(p, n, value);
  check_launch("fill_f32");
}

void embed(const uint16_t* table, const int32_t* tokens, int64_t rows, int64_t hidden, float* x) {
  embed_kernel<<<static_cast<unsigned>(rows), 256, 0, stream()>>>(table, tokens, hidden, x);
  check_launch("embed");
}

void rmsnorm(const float* x, const float* w, int64_t rows, int64_t hidden, float eps, uint16_t* out) {
  // A decode step's few rows get a wide block each: the row is read by more loads in flight.
  rmsnorm_kernel<<<static_cast<unsigned>(rows), rows < 64 ? 1024 : 256, 0, stream()>>>(x, w, hidden, eps, out);
  check_launch("rmsnorm");
}

void gemm(const uint16_t* x, const uint16_t* w, float* out, int64_t t, int64_t n, int64_t k, bool accumulate) {
  if (gemv_fits(t, n, k)) return launch_gemv<Epilogue::kStore>(x, w, out, t, n, k, accumulate);
  gemm_cublas(x, w, out, t, n, k, accumulate);
}

void norm_gemm_swiglu(const float* x, float eps, uint16_t* xn, const uint16_t* w, float* gate_up, uint16_t* act, int64_t t,
                      int64_t inter, int64_t k) {
  if (gemv_fits(t, 2 * inter, k)) return launch_gemv<Epilogue::kSwiGLU, true>(x, w, act, t, 2 * inter, k, false, eps);
  rmsnorm(x, nullptr, t, k, eps, xn);
  gemm_cublas(xn, w, gate_up, t, 2 * inter, k, false);
  swiglu(gate_up, t, inter, act);
}

void norm_gemm_qkv_rope(const float* x, float eps, uint16_t* xn, const uint16_t* w, float* qkv, int64_t t, int64_t k,
                        const int32_t* pos, const int32_t* slots, int64_t hq, int64_t hkv, int64_t d, const float* inv_freq,
                        uint16_t* kc, uint16_t* vc) {
  const int64_t n = (hq + 2 * hkv) * d;
  if (gemv_fits(t, n, k) && d % 2 == 0) {
    RopeTarget rope{pos, slots, inv_freq, kc, vc, static_cast<int>(hq), static_cast<int>(hkv), static_cast<int>(d)};
    return launch_gemv<Epilogue::kRoPE, true>(x, w, qkv, t, n, k, false, eps, rope);
  }
  rmsnorm(x, nullptr, t, k, eps, xn);
  gemm_cublas(xn, w, qkv, t, n, k, false);
  rope_kv_write(qkv, pos, slots, t, hq, hkv, d, inv_freq, kc, vc);
}

void gemm_cublas(const uint16_t* x, const uint16_t* w, float* out, int64_t t, int64_t n, int64_t k, bool accumulate) {
  // Row-major out[t, n] = x[t, k] · w[n, k]ᵀ is column-major outᵀ[n, t] = w · xᵀ with w transposed.
  float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  if (cublasGemmEx(handle(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(t), static_cast<int>(k), &alpha,
                   w, CUDA_R_16BF, static_cast<int>(k), x, CUDA_R_16BF, static_cast<int>(k), &beta, out, CUDA_R_32F,
                   static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error("cuBLAS GemmEx failed");
}

void rope_kv_write(float* qkv, const int32_t* pos, const int32_t* slots, int64_t rows, int64_t hq, int64_t hkv, int64_t d,
                   const float* inv_freq, uint16_t* kc, uint16_t* vc) {
  if (d / 2 > kMaxRopeHalf) throw std::invalid_argument("the CUDA RoPE kernel supports head_dim <= 512");
  rope_kv_write_kernel<<<static_cast<unsigned>(rows), 256, 0, stream()>>>(qkv, pos, slots, static_cast<int>(hq), static_cast<int>(hkv),
                                                             static_cast<int>(d), inv_freq, kc, vc);
  check_launch("rope_kv_write");
}

bool fast_attention(int64_t head_dim) { return head_dim == 64 || head_dim == 128; }

void attention(const float* qkv, const uint16_t* kc, const uint16_t* vc, uint16_t* out, float* partial,
               int* split_counters, const AttentionWork& w, int64_t hq, int64_t hkv, int64_t d, int64_t block_size) {
  const int h = static_cast<int>(hq), g = static_cast<int>(hkv), bs = static_cast<int>(block_size);
  if (d == 64) return launch_fast_attention<64>(qkv, kc, vc, out, partial, split_counters, w, h, g, bs);
  if (d == 128) return launch_fast_attention<128>(qkv, kc, vc, out, partial, split_counters, w, h, g, bs);
  if (d > 4 * 128) throw std::invalid_argument("the CUDA attention kernels support head_dim <= 512");
  if (w.tiles > 0 || w.splits != 1) throw std::logic_error("plain attention takes decode rows only, one split");
  if (w.decode_count == 0) return;
  dim3 grid(static_cast<unsigned>(w.decode_count), static_cast<unsigned>(hq));
  plain_attention_kernel<<<grid, 128, 0, stream()>>>(qkv, kc, vc, out, w.decode_rows, w.pos, w.table_offset, w.tables, h, g,
                                        static_cast<int>(d), bs);
  check_launch("attention");
}

void swiglu(const float* gate_up, int64_t rows, int64_t inter, uint16_t* out) {
  dim3 grid(static_cast<unsigned>(std::min<int64_t>((inter + 255) / 256, 1024)), static_cast<unsigned>(rows));
  swiglu_kernel<<<grid, 256, 0, stream()>>>(gate_up, static_cast<int>(inter), out);
  check_launch("swiglu");
}

void gather_rows(const float* x, const int32_t* rows, int64_t n, int64_t width, float* out) {
  gather_kernel<<<static_cast<unsigned>(n), 256, 0, stream()>>>(x, rows, width, out);
  check_launch("gather_rows");
}

double copy_bytes_per_second() {
  const size_t bytes = size_t{2} << 30;
  void *a = alloc(bytes), *b = alloc(bytes);
  zero(a, bytes);
  double s = 1e30;  // best of three rounds: the first can run before the clocks have risen
  for (int round = 0; round < 3; ++round)
    s = std::min(s, time_device([&] { check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream()), "copy"); }, 10));
  release(a);
  release(b);
  return 2.0 * static_cast<double>(bytes) / s;
}

double bf16_gemm_flops_per_second(int64_t n) {
  const size_t elems = static_cast<size_t>(n * n);
  auto* a = static_cast<uint16_t*>(alloc(elems * 2));
  auto* b = static_cast<uint16_t*>(alloc(elems * 2));
  auto* c = static_cast<uint16_t*>(alloc(elems * 2));
  fill_uniform_bf16(a, static_cast<int64_t>(elems), 1.0f, 1);
  fill_uniform_bf16(b, static_cast<int64_t>(elems), 1.0f, 2);
  const int ni = static_cast<int>(n);
  float alpha = 1.0f, beta = 0.0f;
  double s = time_device(
      [&] {
        if (cublasGemmEx(handle(), CUBLAS_OP_T, CUBLAS_OP_N, ni, ni, ni, &alpha, a, CUDA_R_16BF, ni, b, CUDA_R_16BF, ni, &beta,
                         c, CUDA_R_16BF, ni, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
          throw std::runtime_error("cuBLAS GemmEx failed");
      },
      10);
  release(a);
  release(b);
  release(c);
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / s;
}

}  // namespace xp::serving::cuda
