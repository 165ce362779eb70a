// core/nn's own CUDA kernels for what cuBLAS and cuDNN do not cover the way the CPU layers
// compute it: the inverting norms, the step and the binarize/clip of the {0,1} networks,
// dropout's mask product,
// log-softmax, batch norm (PyTorch's statistics, any eps, no affine option in cuDNN's sense) and
// the SGD and Adam updates. Each follows its CPU loop formula for formula; sums run in a
// different order (tree reductions), so results agree to rounding. Default stream throughout.
#include <cuda_runtime.h>

#include <cmath>

#include "core/nn/cuda/layers.h"
#include "core/tensor/cuda/status.h"

namespace xp::nn::cuda {
namespace {

using tensor::cuda::check;

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

__device__ float clamp01(float a) { return fminf(fmaxf(a, 0.0f), 1.0f); }

__global__ void pointwise_forward_kernel(Pointwise p, const float* x, float* y, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  y[i] = p == Pointwise::kHardInvert ? 1.0f - x[i] : (x[i] >= 0.0f ? 1.0f : 0.0f);
}

__global__ void pointwise_backward_kernel(Pointwise p, const float* x, const float* gy, float* gx, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  gx[i] = p == Pointwise::kHardInvert ? -gy[i] : (fabsf(x[i]) <= 1.0f ? gy[i] : 0.0f);
}

__global__ void threshold_kernel(const float* x, float threshold, float value, float* y, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = fabsf(x[i]) >= threshold ? value : 0.0f;
}

__global__ void clamp_kernel(float* x, float lo, float hi, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = fminf(fmaxf(x[i], lo), hi);
}

__global__ void multiply_kernel(const float* x, const float* mask, float* y, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = x[i] * mask[i];
}

__global__ void soft_invert_forward_kernel(const float* x, const float* a, float* y, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float e = clamp01(*a);
  y[i] = x[i] * (1.0f - e) + (1.0f - x[i]) * e;
}

// A block-wide reduction in shared memory: every thread brings one value and gets the result.
template <class T, class Combine>
__device__ T block_reduce(T v, Combine combine) {
  __shared__ T partial[kThreads];
  partial[threadIdx.x] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) partial[threadIdx.x] = combine(partial[threadIdx.x], partial[threadIdx.x + s]);
    __syncthreads();
  }
  T total = partial[0];
  __syncthreads();  // the buffer may be reused by the next call
  return total;
}
template <class T>
__device__ T block_sum(T v) {
  return block_reduce(v, [](T a, T b) { return a + b; });
}

// dy/dx = 1 − 2a; dy/da = 1 − 2x, summed into a's gradient (one atomic add per block).
__global__ void soft_invert_backward_kernel(const float* x, const float* gy, const float* a, float* gx, float* grad_a,
                                            int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const float e = clamp01(*a);
  float contribution = 0.0f;
  if (i < n) {
    gx[i] = gy[i] * (1.0f - 2.0f * e);
    contribution = gy[i] * (1.0f - 2.0f * x[i]);
  }
  const float block = block_sum(contribution);
  if (threadIdx.x == 0) atomicAdd(grad_a, block);
}

// One block a row: y = x − (max + log Σ exp(x − max)).
__global__ void log_softmax_forward_kernel(const float* x, float* y, int64_t cols) {
  const float* in = x + blockIdx.x * cols;
  float* out = y + blockIdx.x * cols;
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, in[c]);
  mx = block_reduce(mx, [](float a, float b) { return fmaxf(a, b); });
  float s = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += expf(in[c] - mx);
  const float lse = mx + logf(block_sum(s));
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[c] = in[c] - lse;
}

// gx = gy − softmax · Σ gy, one block a row.
__global__ void log_softmax_backward_kernel(const float* y, const float* gy, float* gx, int64_t cols) {
  const int64_t base = blockIdx.x * cols;
  float s = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += gy[base + c];
  const float total = block_sum(s);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) gx[base + c] = gy[base + c] - expf(y[base + c]) * total;
}

// One block a channel, statistics in double as on the CPU: mean, then the centred second moment.
__global__ void batch_norm_forward_kernel(BatchNormShape L, const float* x, const float* weight, const float* bias,
                                          float* running_mean, float* running_var, bool train, double momentum,
                                          double eps, float* y, float* xhat, float* inv_std) {
  const int64_t c = blockIdx.x, per_channel = L.batch * L.spatial;
  auto at = [&](int64_t k) { return ((k / L.spatial) * L.channels + c) * L.spatial + k % L.spatial; };
  __shared__ double stats[2];
  if (train) {
    double s = 0.0;
    for (int64_t k = threadIdx.x; k < per_channel; k += blockDim.x) s += x[at(k)];
    const double mean = block_sum(s) / static_cast<double>(per_channel);
    double s2 = 0.0;
    for (int64_t k = threadIdx.x; k < per_channel; k += blockDim.x) {
      const double d = x[at(k)] - mean;
      s2 += d * d;
    }
    const double centred = block_sum(s2);
    if (threadIdx.x == 0) {
      const double count = static_cast<double>(per_channel);
      const double var = centred / count;
      running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
      running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * (count > 1 ? centred / (count - 1) : var));
      stats[0] = mean;
      stats[1] = var;
    }
  } else if (threadIdx.x == 0) {
    stats[0] = running_mean[c];
    stats[1] = running_var[c];
  }
  __syncthreads();
  const float inv = static_cast<float>(1.0 / sqrt(stats[1] + eps));
  const float g = weight ? weight[c] : 1.0f, b = bias ? bias[c] : 0.0f, fm = static_cast<float>(stats[0]);
  for (int64_t k = threadIdx.x; k < per_channel; k += blockDim.x) {
    const int64_t i = at(k);
    const float xh = (x[i] - fm) * inv;
    if (xhat) xhat[i] = xh;
    y[i] = g * xh + b;
  }
  if (inv_std && threadIdx.x == 0) inv_std[c] = inv;
}

__global__ void batch_norm_backward_kernel(BatchNormShape L, const float* gy, const float* xhat, const float* inv_std,
                                           const float* weight, float* gx, float* grad_weight, float* grad_bias) {
  const int64_t c = blockIdx.x, per_channel = L.batch * L.spatial;
  auto at = [&](int64_t k) { return ((k / L.spatial) * L.channels + c) * L.spatial + k % L.spatial; };
  double sg = 0.0, sgx = 0.0;
  for (int64_t k = threadIdx.x; k < per_channel; k += blockDim.x) {
    const int64_t i = at(k);
    sg += gy[i];
    sgx += static_cast<double>(gy[i]) * xhat[i];
  }
  const double sum_g = block_sum(sg), sum_gx = block_sum(sgx);
  if (threadIdx.x == 0) {
    if (grad_weight) grad_weight[c] += static_cast<float>(sum_gx);
    if (grad_bias) grad_bias[c] += static_cast<float>(sum_g);
  }
  const double count = static_cast<double>(per_channel);
  const double scale = (weight ? weight[c] : 1.0) * inv_std[c] / count;
  for (int64_t k = threadIdx.x; k < per_channel; k += blockDim.x) {
    const int64_t i = at(k);
    gx[i] = static_cast<float>(scale * (count * gy[i] - sum_g - xhat[i] * sum_gx));
  }
}

__global__ void sgd_kernel(float* w, const float* g, float* buf, int64_t n, float lr, float wd, float mu, bool first,
                           bool nesterov) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= n) return;
  float d = g[k] + wd * w[k];
  if (buf) {
    buf[k] = first ? d : mu * buf[k] + d;
    d = nesterov ? d + mu * buf[k] : buf[k];
  }
  w[k] -= lr * d;
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, int64_t n, AdamStep s) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= n) return;
  const float d = g[k] + s.weight_decay * w[k];
  m[k] = s.beta1 * m[k] + (1.0f - s.beta1) * d;
  v[k] = s.beta2 * v[k] + (1.0f - s.beta2) * d * d;
  w[k] = w[k] * s.shrink - s.step_size * m[k] / (sqrtf(v[k]) / s.sqrt_bias_correction2 + s.eps);
}

void launched(const char* what) { check(cudaGetLastError(), what); }

}  // namespace

void pointwise_forward(Pointwise p, const float* x, float* y, int64_t n) {
  if (n == 0) return;
  pointwise_forward_kernel<<<blocks_for(n), kThreads>>>(p, x, y, n);
  launched("pointwise forward");
}
void pointwise_backward(Pointwise p, const float* x, const float* gy, float* gx, int64_t n) {
  if (n == 0) return;
  pointwise_backward_kernel<<<blocks_for(n), kThreads>>>(p, x, gy, gx, n);
  launched("pointwise backward");
}
void threshold(const float* x, float threshold, float value, float* y, int64_t n) {
  if (n == 0) return;
  threshold_kernel<<<blocks_for(n), kThreads>>>(x, threshold, value, y, n);
  launched("threshold");
}
void clamp(float* x, float lo, float hi, int64_t n) {
  if (n == 0) return;
  clamp_kernel<<<blocks_for(n), kThreads>>>(x, lo, hi, n);
  launched("clamp");
}
void multiply(const float* x, const float* mask, float* y, int64_t n) {
  if (n == 0) return;
  multiply_kernel<<<blocks_for(n), kThreads>>>(x, mask, y, n);
  launched("multiply");
}
void soft_invert_forward(const float* x, const float* a, float* y, int64_t n) {
  if (n == 0) return;
  soft_invert_forward_kernel<<<blocks_for(n), kThreads>>>(x, a, y, n);
  launched("soft invert forward");
}
void soft_invert_backward(const float* x, const float* gy, const float* a, float* gx, float* grad_a, int64_t n) {
  if (n == 0) return;
  soft_invert_backward_kernel<<<blocks_for(n), kThreads>>>(x, gy, a, gx, grad_a, n);
  launched("soft invert backward");
}
void log_softmax_forward(const float* x, float* y, int64_t rows, int64_t cols) {
  if (rows == 0) return;
  log_softmax_forward_kernel<<<static_cast<unsigned>(rows), kThreads>>>(x, y, cols);
  launched("log-softmax forward");
}
void log_softmax_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t cols) {
  if (rows == 0) return;
  log_softmax_backward_kernel<<<static_cast<unsigned>(rows), kThreads>>>(y, gy, gx, cols);
  launched("log-softmax backward");
}
void batch_norm_forward(const BatchNormShape& shape, const float* x, const float* weight, const float* bias,
                        float* running_mean, float* running_var, bool train, double momentum, double eps, float* y,
                        float* xhat, float* inv_std) {
  if (shape.channels == 0) return;
  batch_norm_forward_kernel<<<static_cast<unsigned>(shape.channels), kThreads>>>(
      shape, x, weight, bias, running_mean, running_var, train, momentum, eps, y, xhat, inv_std);
  launched("batch norm forward");
}
void batch_norm_backward(const BatchNormShape& shape, const float* gy, const float* xhat, const float* inv_std,
                         const float* weight, float* gx, float* grad_weight, float* grad_bias) {
  if (shape.channels == 0) return;
  batch_norm_backward_kernel<<<static_cast<unsigned>(shape.channels), kThreads>>>(shape, gy, xhat, inv_std, weight, gx,
                                                                                  grad_weight, grad_bias);
  launched("batch norm backward");
}
void sgd_step(float* w, const float* g, float* momentum_buffer, int64_t n, float lr, float weight_decay, float momentum,
              bool first, bool nesterov) {
  if (n == 0) return;
  sgd_kernel<<<blocks_for(n), kThreads>>>(w, g, momentum_buffer, n, lr, weight_decay, momentum, first, nesterov);
  launched("SGD step");
}
void adam_step(float* w, const float* g, float* exp_avg, float* exp_avg_sq, int64_t n, const AdamStep& step) {
  if (n == 0) return;
  adam_kernel<<<blocks_for(n), kThreads>>>(w, g, exp_avg, exp_avg_sq, n, step);
  launched("Adam step");
}

}  // namespace xp::nn::cuda
