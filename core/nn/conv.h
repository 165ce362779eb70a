// 2-D convolution (im2col + one GEMM over the whole batch) and max/average pooling, on
// [batch, channels, height, width] tensors; on CUDA tensors, cuDNN's. Square kernels, equal
// stride and zero padding on both axes: all the LeNet-style models here need.
#pragma once
#include "core/nn/module.h"
#include "core/runtime/rng.h"

namespace xp::nn {

struct Conv2dOptions {
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t padding = 0;
  bool bias = true;
};

class Conv2d final : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Conv2dOptions options);
  // PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels·k².
  void reset(runtime::RngStream& rng);
  Parameter& weight() { return *weight_; }  // [out, in, k, k]
  Parameter* bias() { return bias_; }
  std::string describe() const override;
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  int64_t in_, out_;
  Conv2dOptions opt_;
  Parameter* weight_;
  Parameter* bias_ = nullptr;
  Shape x_shape_;
  Tensor cols_;  // CPU: [in·k², batch·out_h·out_w] of the last training forward
  Tensor x_;     // CUDA (cuDNN): the last training forward's input
};

enum class PoolKind { kMax, kAverage };

class Pool2d final : public Module {
 public:
  Pool2d(PoolKind kind, int64_t kernel, int64_t stride = 0);  // stride 0 = kernel
  std::string describe() const override;
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  PoolKind kind_;
  int64_t kernel_, stride_;
  Shape x_shape_, y_shape_;
  std::vector<int64_t> argmax_;  // CPU max pooling: input index of each output
  Tensor x_, y_;                 // CUDA (cuDNN): the last training forward's input and output
};

}  // namespace xp::nn
