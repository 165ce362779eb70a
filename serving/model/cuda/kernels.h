// Internal: the Llama CUDA kernels and cuBLAS calls, behind plain pointers so the .cu file needs
// none of the C++20 headers the host code uses. bf16 buffers are `uint16_t` bit patterns. Every
// call is asynchronous on one stream of the backend's own, except copies to the host.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

namespace xp::serving::cuda {

void* alloc(size_t bytes);
void release(void* p);
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);  // synchronises
void zero(void* p, size_t bytes);
void synchronize();
// CUDA graphs: capture records the work `issue` launches (nothing runs); replay reruns it with
// one launch. A decode step is ~5 launches per layer, and launching costs more than running them.
void* graph_capture(const std::function<void()>& issue);
void graph_replay(void* exec);
void graph_release(void* exec);
// Weights for benchmarks, made on the device: uniform in [-scale, scale] from a counter hash.
void fill_uniform_bf16(uint16_t* p, int64_t n, float scale, uint64_t seed);
void fill_f32(float* p, int64_t n, float value);

void embed(const uint16_t* table, const int32_t* tokens, int64_t rows, int64_t hidden, float* x);
// out = x · rsqrt(mean(x²) + eps) · w; w may be null where the weight is folded into the next matrix.
void rmsnorm(const float* x, const float* w, int64_t rows, int64_t hidden, float eps, uint16_t* out);
// out[t, n] (+)= x[t, k] · w[n, k]ᵀ with bf16 inputs and f32 accumulation: our matrix-vector
// kernel for t <= kGemvMaxRows (decode batches read each weight once, at full bandwidth), cuBLAS
// otherwise.
constexpr int64_t kGemvMaxRows = 4;
void gemm(const uint16_t* x, const uint16_t* w, float* out, int64_t t, int64_t n, int64_t k, bool accumulate);
void gemm_cublas(const uint16_t* x, const uint16_t* w, float* out, int64_t t, int64_t n, int64_t k, bool accumulate);
// Rows of `qkv` are [q (hq·d) | k (hkv·d) | v (hkv·d)], each head of q and k in RoPE pairs: its
// dims 2i and 2i+1 hold the model's dims i and i + d/2 (the weights' rows are permuted so; q·k is
// unchanged). Rotates q in place and writes the rotated k and v to their cache slots (bf16).
void rope_kv_write(float* qkv, const int32_t* pos, const int32_t* slots, int64_t rows, int64_t hq, int64_t hkv,
                   int64_t d, const float* inv_freq, uint16_t* kc, uint16_t* vc);

// Which rows attention runs how (device arrays). Row r (absolute position pos[r]) of head h
// attends over keys 0..pos[r] of its sequence, whose KV blocks are tables[table_offset[r] ...].
// Prefill chunks go in tiles of up to kTileRows consecutive rows of one sequence (tensor-core
// flash attention); every other row is a decode row, its keys split into `splits` ranges of
// `keys_per_split` that run in parallel; the last range to finish merges them.
constexpr int64_t kTileRows = 64;
struct AttentionWork {
  const int32_t *pos, *table_offset, *tables;
  const int32_t *tile_first_row, *tile_rows;
  int64_t tiles;
  const int32_t* decode_rows;
  int64_t decode_count, splits, keys_per_split;
};
// Head sizes with the tensor-core and split kernels; others run a plain per-row kernel
// (every row as a decode row, one split).
bool fast_attention(int64_t head_dim);
// When splits > 1: `partial` holds decode_count · hq · splits · (d + 2) floats, and
// `split_counters` decode_count · hq ints that are zero (each pass leaves them zero again).
// Output bf16 [rows, hq·d].
void attention(const float* qkv, const uint16_t* kc, const uint16_t* vc, uint16_t* out, float* partial,
               int* split_counters, const AttentionWork& work, int64_t hq, int64_t hkv, int64_t d, int64_t block_size);
// The two products that follow an RMSNorm take the f32 residual stream x and the norm's eps; the
// norm's weight must be folded into w's columns (w[n, c] · weight[c]). Decode batches fuse the
// norm into the matrix-vector kernel; larger ones write the normed rows to `xn` (bf16 scratch,
// t · k) for cuBLAS.
// qkv = norm(x) · wᵀ followed by rope_kv_write; decode batches fuse both into the matrix-vector
// kernel (then the k and v parts of `qkv` are not written: they go straight to the cache).
void norm_gemm_qkv_rope(const float* x, float eps, uint16_t* xn, const uint16_t* w, float* qkv, int64_t t, int64_t k,
                        const int32_t* pos, const int32_t* slots, int64_t hq, int64_t hkv, int64_t d, const float* inv_freq,
                        uint16_t* kc, uint16_t* vc);
// gate_up rows interleave gate and up (g0, u0, g1, u1, ...); out = silu(gate) · up, bf16.
void swiglu(const float* gate_up, int64_t rows, int64_t inter, uint16_t* out);
// act[t, inter] = silu(gate) · up of norm(x) · wᵀ, w's rows interleaving gate and up. Decode
// batches fuse it into the matrix-vector kernel; larger ones go through `gate_up` (f32 scratch).
void norm_gemm_swiglu(const float* x, float eps, uint16_t* xn, const uint16_t* w, float* gate_up, uint16_t* act, int64_t t,
                      int64_t inter, int64_t k);
void gather_rows(const float* x, const int32_t* rows, int64_t n, int64_t width, float* out);

// Probes for the benchmark: device-to-device copy rate (bytes read + written per second) and
// cuBLAS's bf16 GEMM rate on an n×n×n product.
double copy_bytes_per_second();
double bf16_gemm_flops_per_second(int64_t n);

}  // namespace xp::serving::cuda
