// The CUDA backend's entry points, called by core/tensor for tensors on Device::kCUDA. In
// builds without EXP_CUDA they exist as stubs that throw, and available() is false. All
// pointers are device pointers to contiguous data; calls are synchronous (they finish before
// returning), which keeps the CPU/CUDA comparison harness simple.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/tensor/dtype.h"

namespace xp::tensor::cuda {

enum class Binary { kAdd, kSub, kMul };

bool available();
void* alloc(size_t bytes);
void release(void* p);
void copy_to_device(void* dst, const void* host_src, size_t bytes);
void copy_to_host(void* host_dst, const void* src, size_t bytes);
void copy_on_device(void* dst, const void* src, size_t bytes);
void fill(void* dst, DType t, int64_t n, double value);

void cast(const void* src, DType from, void* dst, DType to, int64_t n);
void binary(Binary op, const void* a, const void* b, void* out, DType t, int64_t n);
void scale(const void* a, void* out, DType t, int64_t n, float s);
void relu(const void* a, void* out, DType t, int64_t n);
// Row-major C[m,n] = op(A) op(B); A is [m,k] (or [k,m] if trans_a), B is [k,n] (or [n,k]).
void matmul(const void* a, bool trans_a, const void* b, bool trans_b, void* c, DType t, int64_t m, int64_t n,
            int64_t k);
void sum(const void* a, DType t, int64_t n, float* out);  // out: one f32 on the device
void sum_rows(const void* a, DType t, int64_t rows, int64_t cols, void* out);

}  // namespace xp::tensor::cuda
