#include "core/tensor/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/runtime/check.h"
#include "core/tensor/cpu_kernels.h"
#include "core/tensor/cuda/backend.h"

namespace xp::tensor {

std::string device_name(Device d) { return d == Device::kCPU ? "cpu" : "cuda"; }

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

bool cuda_available() { return cuda::available(); }

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (device == Device::kCPU) {
    size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    data_ = std::aligned_alloc(64, rounded);
    if (!data_) throw std::bad_alloc();
  } else {
    data_ = cuda::alloc(std::max<size_t>(bytes, 1));
  }
}

Storage::~Storage() {
  if (device_ == Device::kCPU) std::free(data_);
  else cuda::release(data_);
}

namespace {
Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) EXP_CHECK(s >= 0, "negative dimension in shape {}", shape_str(shape));
  Tensor t;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(numel_of(shape)) * dtype_size(dtype), device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device == Device::kCUDA) {
    cuda::fill(t.raw_data(), dtype, t.numel(), value);
    return t;
  }
  detail::dispatch(dtype, [&](auto zero) {
    using T = decltype(zero);
    T v = detail::from_double<T>(value);
    T* p = static_cast<T*>(t.raw_data());
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = v;
  });
  return t;
}

Tensor Tensor::from_values(const std::vector<double>& values, const Shape& shape, DType dtype) {
  EXP_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), "{} values for shape {}", values.size(),
            shape_str(shape));
  Tensor t = empty(shape, dtype);
  detail::dispatch(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* p = static_cast<T*>(t.raw_data());
    for (size_t i = 0; i < values.size(); ++i) p[i] = detail::from_double<T>(values[i]);
  });
  return t;
}

int64_t Tensor::size(int64_t d) const {
  if (d < 0) d += dim();
  EXP_CHECK(d >= 0 && d < dim(), "dimension {} out of range for shape {}", d, shape_str(shape_));
  return shape_[static_cast<size_t>(d)];
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

void* Tensor::raw_data() const {
  EXP_CHECK(storage_ != nullptr, "tensor is undefined");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

void Tensor::check_access(DType want) const {
  EXP_CHECK(want == dtype_, "data<{}>() on a {} tensor", dtype_name(want), dtype_name(dtype_));
  EXP_CHECK(device() == Device::kCPU, "data<T>() on a CUDA tensor; copy it with .to(Device::kCPU)");
}

Tensor Tensor::reshape(const Shape& shape) const {
  EXP_CHECK(is_contiguous(), "reshape needs a contiguous tensor; call contiguous() first");
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      EXP_CHECK(infer < 0, "only one dimension may be -1 in {}", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) s[static_cast<size_t>(infer)] = known ? numel() / known : 0;
  EXP_CHECK(numel_of(s) == numel(), "cannot reshape {} into {}", shape_str(shape_), shape_str(shape));
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  if (d0 < 0) d0 += dim();
  if (d1 < 0) d1 += dim();
  EXP_CHECK(d0 >= 0 && d0 < dim() && d1 >= 0 && d1 < dim(), "transpose({}, {}) of shape {}", d0, d1, shape_str(shape_));
  Tensor t = *this;
  std::swap(t.shape_[static_cast<size_t>(d0)], t.shape_[static_cast<size_t>(d1)]);
  std::swap(t.strides_[static_cast<size_t>(d0)], t.strides_[static_cast<size_t>(d1)]);
  return t;
}

Tensor Tensor::slice(int64_t d, int64_t begin, int64_t end) const {
  if (d < 0) d += dim();
  EXP_CHECK(d >= 0 && d < dim(), "slice dimension {} of shape {}", d, shape_str(shape_));
  auto ud = static_cast<size_t>(d);
  EXP_CHECK(0 <= begin && begin <= end && end <= shape_[ud], "slice [{}, {}) of dimension {} with size {}", begin, end,
            d, shape_[ud]);
  Tensor t = *this;
  t.offset_ += begin * strides_[ud];
  t.shape_[ud] = end - begin;
  return t;
}

namespace {
// Copies a strided CPU tensor into contiguous memory, element by element.
void strided_copy_cpu(const Tensor& src, void* dst) {
  size_t es = dtype_size(src.dtype());
  const char* base = static_cast<const char*>(src.raw_data());
  char* out = static_cast<char*>(dst);
  int64_t n = src.numel();
  size_t nd = src.shape().size();
  std::vector<int64_t> idx(nd, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < nd; ++d) off += idx[d] * src.strides()[d];
    std::memcpy(out + static_cast<size_t>(i) * es, base + off * static_cast<int64_t>(es), es);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < src.shape()[d]) break;
      idx[d] = 0;
    }
  }
}
}  // namespace

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  if (device() == Device::kCUDA) return to(Device::kCPU).contiguous().to(Device::kCUDA);
  Tensor out = empty(shape_, dtype_);
  strided_copy_cpu(*this, out.raw_data());
  return out;
}

Tensor Tensor::clone() const {
  Tensor src = contiguous();
  Tensor out = empty(shape_, dtype_, device());
  if (device() == Device::kCPU) std::memcpy(out.raw_data(), src.raw_data(), nbytes());
  else cuda::copy_on_device(out.raw_data(), src.raw_data(), nbytes());
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  if (!is_contiguous() && device() == Device::kCUDA) {
    // No strided copy kernel yet: bring the whole storage over, keep this view's offset and
    // strides on it, and compact on the CPU (contiguous() must not come back here).
    Tensor host = *this;
    host.storage_ = std::make_shared<Storage>(storage_->bytes(), Device::kCPU);
    cuda::copy_to_host(host.storage_->data(), storage_->data(), storage_->bytes());
    return target == Device::kCPU ? host.contiguous() : host.contiguous().to(target);
  }
  Tensor src = contiguous();
  Tensor out = empty(shape_, dtype_, target);
  if (target == Device::kCUDA) cuda::copy_to_device(out.raw_data(), src.raw_data(), nbytes());
  else cuda::copy_to_host(out.raw_data(), src.raw_data(), nbytes());
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype_) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape_, target, device());
  if (device() == Device::kCUDA) {
    cuda::cast(src.raw_data(), dtype_, out.raw_data(), target, numel());
    return out;
  }
  detail::dispatch(dtype_, [&](auto from_zero) {
    using From = decltype(from_zero);
    detail::dispatch(target, [&](auto to_zero) {
      using To = decltype(to_zero);
      const From* s = static_cast<const From*>(src.raw_data());
      To* d = static_cast<To*>(out.raw_data());
      // Through double: exact for every integer up to 2^53 and for every float type, and the
      // float -> f16/bf16 step rounds to nearest even, as the CUDA kernels do.
      for (int64_t i = 0; i < numel(); ++i) d[i] = detail::from_double<To>(detail::to_double<From>(s[i]));
    });
  });
  return out;
}

std::vector<double> Tensor::to_vector() const {
  Tensor c = to(Device::kCPU).contiguous();
  std::vector<double> out(static_cast<size_t>(c.numel()));
  detail::dispatch(dtype_, [&](auto zero) {
    using T = decltype(zero);
    const T* p = static_cast<const T*>(c.raw_data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = detail::to_double<T>(p[i]);
  });
  return out;
}

}  // namespace xp::tensor
