// Element types. f16/bf16 use Eigen's half and bfloat16 on the CPU (storage is the IEEE /
// brain-float bit pattern, identical to CUDA's __half / __nv_bfloat16). This header stays free
// of Eigen so the CUDA sources can include it; dtype_of<T>() lives in tensor.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace xp::tensor {

enum class DType { kF32, kF16, kBF16, kI32, kI64, kU8 };

size_t dtype_size(DType t);
std::string dtype_name(DType t);
bool is_floating(DType t);

}  // namespace xp::tensor
