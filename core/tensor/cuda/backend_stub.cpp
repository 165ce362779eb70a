// Built when EXP_CUDA is off: every CUDA entry point reports that this build has no CUDA.
#include <stdexcept>

#include "core/tensor/cuda/backend.h"

namespace xp::tensor::cuda {
namespace {
[[noreturn]] void no_cuda() {
  throw std::runtime_error("this exp build has no CUDA backend (configure with -DEXP_CUDA=ON where nvcc exists)");
}
}  // namespace

bool available() { return false; }
void* alloc(size_t) { no_cuda(); }
void release(void*) {}
void copy_to_device(void*, const void*, size_t) { no_cuda(); }
void copy_to_host(void*, const void*, size_t) { no_cuda(); }
void copy_on_device(void*, const void*, size_t) { no_cuda(); }
void fill(void*, DType, int64_t, double) { no_cuda(); }
void cast(const void*, DType, void*, DType, int64_t) { no_cuda(); }
void binary(Binary, const void*, const void*, void*, DType, int64_t) { no_cuda(); }
void scale(const void*, void*, DType, int64_t, float) { no_cuda(); }
void relu(const void*, void*, DType, int64_t) { no_cuda(); }
void matmul(const void*, bool, const void*, bool, void*, DType, int64_t, int64_t, int64_t) { no_cuda(); }
void sum(const void*, DType, int64_t, float*) { no_cuda(); }
void sum_rows(const void*, DType, int64_t, int64_t, void*) { no_cuda(); }

}  // namespace xp::tensor::cuda
