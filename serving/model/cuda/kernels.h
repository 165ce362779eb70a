// Internal: the Llama CUDA kernels and cuBLAS calls, behind plain pointers so the .cu file needs
// none of the C++20 headers the host code uses. bf16 buffers are `uint16_t` bit patterns. Every
// call is asynchronous on the default stream except copies to the host.
#pragma once
#include <cstddef>
#include <cstdint>

namespace xp::serving::cuda {

void* alloc(size_t bytes);
void release(void* p);
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);  // synchronises
void zero(void* p, size_t bytes);

void embed(const uint16_t* table, const int32_t* tokens, int64_t rows, int64_t hidden, float* x);
void rmsnorm(const float* x, const float* w, int64_t rows, int64_t hidden, float eps, uint16_t* out);
// out[T, n] (+)= x[T, k] · w[n, k]ᵀ with bf16 inputs and f32 accumulation (cuBLAS).
void gemm(const uint16_t* x, const uint16_t* w, float* out, int64_t t, int64_t n, int64_t k, bool accumulate);
void rope(float* q, float* k, const int32_t* pos, int64_t rows, int64_t hq, int64_t hkv, int64_t d, const float* inv_freq);
void kv_write(const float* k, const float* v, const int32_t* slots, int64_t rows, int64_t row_width, float* kc, float* vc);
// Row r (absolute position pos[r]) of head h attends over keys 0..pos[r] of its sequence, whose
// KV blocks are tables[table_offset[r] ...]; online softmax in f32.
void attention(const float* q, const float* kc, const float* vc, float* out, const int32_t* pos,
               const int32_t* table_offset, const int32_t* tables, int64_t rows, int64_t hq, int64_t hkv, int64_t d,
               int64_t block_size);
void swiglu(const float* g, const float* u, int64_t n, uint16_t* out);
void to_bf16(const float* x, int64_t n, uint16_t* out);
void gather_rows(const float* x, const int32_t* rows, int64_t n, int64_t width, float* out);

}  // namespace xp::serving::cuda
