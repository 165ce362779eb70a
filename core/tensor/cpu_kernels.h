// Internal: typed CPU loops shared by tensor.cpp and ops.cpp. dispatch() calls fn with a
// value of the element type of `t`, so one template body serves every dtype.
#pragma once
#include <stdexcept>

#include <Eigen/Core>
#include <type_traits>

#include "core/tensor/dtype.h"

namespace xp::tensor::detail {

template <class F>
decltype(auto) dispatch(DType t, F&& fn) {
  switch (t) {
    case DType::kF32: return fn(float{});
    case DType::kF16: return fn(Eigen::half{});
    case DType::kBF16: return fn(Eigen::bfloat16{});
    case DType::kI32: return fn(int32_t{});
    case DType::kI64: return fn(int64_t{});
    case DType::kU8: return fn(uint8_t{});
  }
  throw std::logic_error("unknown dtype");
}

template <class F>
decltype(auto) dispatch_float(DType t, F&& fn) {
  switch (t) {
    case DType::kF32: return fn(float{});
    case DType::kF16: return fn(Eigen::half{});
    case DType::kBF16: return fn(Eigen::bfloat16{});
    default: throw std::invalid_argument("this op needs a floating-point tensor (f32, f16 or bf16), got " + dtype_name(t));
  }
}

template <class T>
double to_double(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <>
inline double to_double<float>(float v) { return v; }
template <>
inline double to_double<int32_t>(int32_t v) { return v; }
template <>
inline double to_double<int64_t>(int64_t v) { return static_cast<double>(v); }
template <>
inline double to_double<uint8_t>(uint8_t v) { return v; }

template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, Eigen::half> || std::is_same_v<T, Eigen::bfloat16>)
    return T(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

}  // namespace xp::tensor::detail
