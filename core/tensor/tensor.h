// Tensor: a typed, strided view over shared storage on one device (docs/architecture.md, core/tensor).
// Copying a Tensor shares its storage (like PyTorch); clone() copies the data. Views
// (reshape, transpose, slice) share storage too. CPU storage is 64-byte aligned host memory;
// CUDA storage is device memory (cudaMalloc) and exists only in EXP_CUDA builds.
// Element access through data<T>() is for contiguous CPU tensors. A Tensor is not
// synchronised: share it across threads only read-only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/tensor/dtype.h"

namespace xp::tensor {

template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<Eigen::half>() { return DType::kF16; }
template <> constexpr DType dtype_of<Eigen::bfloat16>() { return DType::kBF16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::kI64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kU8; }


enum class Device { kCPU, kCUDA };
std::string device_name(Device d);

using Shape = std::vector<int64_t>;
int64_t numel_of(const Shape& shape);
std::string shape_str(const Shape& shape);

class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::kCPU);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::kCPU);
  static Tensor full(const Shape& shape, double value, DType dtype, Device device = Device::kCPU);
  // Copies `values` (converted to dtype) into a new CPU tensor.
  static Tensor from_values(const std::vector<double>& values, const Shape& shape, DType dtype = DType::kF32);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return numel_of(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::kCPU; }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  // Raw pointer to the first element (device memory for CUDA tensors).
  void* raw_data() const;
  template <class T>
  T* data() const {
    check_access(dtype_of<T>());
    return static_cast<T*>(raw_data());
  }

  // Views sharing storage.
  Tensor reshape(const Shape& shape) const;  // needs a contiguous tensor; one dim may be -1
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor slice(int64_t d, int64_t begin, int64_t end) const;

  Tensor contiguous() const;            // self when already contiguous
  Tensor clone() const;                 // always a fresh contiguous copy
  Tensor to(Device device) const;       // copy across devices (self when already there)
  Tensor to(DType dtype) const;         // converted copy (self when already that dtype)

  // Element values as doubles, in row-major order (copies to the CPU first): for tests and
  // printing, not hot paths.
  std::vector<double> to_vector() const;

 private:
  void check_access(DType want) const;
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in elements
  Shape shape_, strides_;
  DType dtype_ = DType::kF32;
};

bool cuda_available();  // a CUDA build and at least one visible GPU

// A 2-D CPU tensor as an Eigen matrix that shares its memory, strides included (so a
// transpose() view maps without a copy). Writes through the map change the tensor.
template <class T>
using MatrixView = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Unaligned,
                              Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
template <class T>
MatrixView<T> eigen_matrix(const Tensor& t) {
  if (t.dim() != 2) throw std::invalid_argument("eigen_matrix needs a 2-D tensor, got shape " + shape_str(t.shape()));
  return MatrixView<T>(t.data<T>(), t.size(0), t.size(1),
                       Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(t.strides()[0], t.strides()[1]));
}

}  // namespace xp::tensor
