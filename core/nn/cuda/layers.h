// Internal: the CUDA versions of core/nn's layers and optimizers, behind plain device pointers
// (f32, contiguous, NCHW). cuBLAS runs the linear layer's GEMMs and cuDNN convolution, pooling and
// the activations, all in FP32 arithmetic (no TF32); our kernels (kernels.cu) the rest. They match
// the CPU layers to rounding; the `cuda` tests compare them. Gradients of parameters accumulate
// (+=), as on the CPU.
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

// The {0,1} networks' elementwise layers: HardInvert y = 1 − x, Step y = [x ≥ 0] (backward: the
// straight-through gradient where |x| ≤ 1; HardInvert's ignores x).
enum class Pointwise { kHardInvert, kStep };
void pointwise_forward(Pointwise p, const float* x, float* y, int64_t n);
void pointwise_backward(Pointwise p, const float* x, const float* gy, float* gx, int64_t n);
// y = |x| ≥ threshold ? value : 0 (the {0,1} networks' binary weights); x clamped to [lo, hi] in place.
void threshold(const float* x, float threshold, float value, float* y, int64_t n);
void clamp(float* x, float lo, float hi, int64_t n);
// y = x · mask (dropout: the mask, already scaled, is drawn on the host from the layer's stream).
void multiply(const float* x, const float* mask, float* y, int64_t n);
// SoftInvert with its scalar `a` in device memory (clamped to [0, 1] where used); backward adds
// Σ gy·(1 − 2x) to grad_a.
void soft_invert_forward(const float* x, const float* a, float* y, int64_t n);
void soft_invert_backward(const float* x, const float* gy, const float* a, float* gx, float* grad_a, int64_t n);
// Row-wise log-softmax of [rows, cols]; backward from the forward output y.
void log_softmax_forward(const float* x, float* y, int64_t rows, int64_t cols);
void log_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t cols);

// Batch norm over [batch, channels, spatial] (spatial = 1 for 2-D input), as the CPU layer: batch
// statistics in training (running ones updated, unbiased variance), running ones in eval.
// weight and bias may be null (not affine); xhat and inv_std (per channel) are kept for backward
// in training and may be null otherwise.
struct BatchNormShape {
  int64_t batch, channels, spatial;
};
void batch_norm_forward(const BatchNormShape& shape, const float* x, const float* weight, const float* bias,
                        float* running_mean, float* running_var, bool train, double momentum, double eps, float* y,
                        float* xhat, float* inv_std);
void batch_norm_backward(const BatchNormShape& shape, const float* gy, const float* xhat, const float* inv_std,
                         const float* weight, float* gx, float* grad_weight, float* grad_bias);

// The optimizers' updates of one parameter, formula for formula as on the CPU (momentum_buffer
// null: plain SGD).
void sgd_step(float* w, const float* g, float* momentum_buffer, int64_t n, float lr, float weight_decay, float momentum,
              bool first, bool nesterov);
struct AdamStep {
  float step_size;              // lr / (1 − β1^t)
  float sqrt_bias_correction2;  // √(1 − β2^t)
  float beta1, beta2, eps, weight_decay;
  float shrink;                 // AdamW's 1 − lr·decay (1 for L2 decay)
};
void adam_step(float* w, const float* g, float* exp_avg, float* exp_avg_sq, int64_t n, const AdamStep& step);

}  // namespace xp::nn::cuda
