// Internal: the CUDA versions of core/nn's layers, behind plain device pointers (f32,
// contiguous, NCHW). cuBLAS runs the linear layer's GEMMs and cuDNN convolution, pooling and the
// activations, all in FP32 arithmetic (no TF32), so that they match the CPU layers to rounding;
// the `cuda` tests compare them. Gradients of parameters accumulate (+=), as on the CPU.
// Builds without EXP_CUDA or without cuDNN get stubs whose calls throw.
#pragma once
#include <cstdint>

namespace xp::nn::cuda {

bool available();  // built with CUDA and cuDNN (a GPU may still be missing)

// y[n, out] = x[n, in] · w[out, in]ᵀ (+ b[out] when b is not null).
void linear_forward(const float* x, const float* w, const float* b, float* y, int64_t n, int64_t in, int64_t out);
// gx = gy · w; gw += gyᵀ · x; gb += column sums of gy (gw, gb may be null).
void linear_backward(const float* x, const float* w, const float* gy, float* gx, float* gw, float* gb, int64_t n,
                     int64_t in, int64_t out);

struct ConvGeometry {
  int64_t n, c, h, w;             // input
  int64_t out, kernel, stride, pad;
  int64_t oh, ow;                 // output, as the CPU layer computes it
};
void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* b, float* y);
void conv2d_backward(const ConvGeometry& g, const float* x, const float* w, const float* gy, float* gx, float* gw,
                     float* gb);

struct PoolGeometry {
  bool max;
  int64_t n, c, h, w, kernel, stride, oh, ow;
};
void pool2d_forward(const PoolGeometry& g, const float* x, float* y);
void pool2d_backward(const PoolGeometry& g, const float* x, const float* y, const float* gy, float* gx);

enum class Activation { kReLU, kTanh };
void activation_forward(Activation a, const float* x, float* y, int64_t n);
// gx from gy and the forward output y (both activations' derivatives follow from y).
void activation_backward(Activation a, const float* y, const float* gy, float* gx, int64_t n);

}  // namespace xp::nn::cuda
