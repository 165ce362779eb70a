// Built without EXP_CUDA or without cuDNN: the CUDA layers report why they cannot run.
#include <stdexcept>

#include "core/nn/cuda/layers.h"

namespace xp::nn::cuda {
namespace {
[[noreturn]] void unavailable() {
  throw std::runtime_error(
      "core/nn has no CUDA layers in this build (configure with -DEXP_CUDA=ON where nvcc and cuDNN exist)");
}
}  // namespace

bool available() { return false; }
void linear_forward(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t) { unavailable(); }
void linear_backward(const float*, const float*, const float*, float*, float*, float*, int64_t, int64_t, int64_t) {
  unavailable();
}
void conv2d_forward(const ConvGeometry&, const float*, const float*, const float*, float*) { unavailable(); }
void conv2d_backward(const ConvGeometry&, const float*, const float*, const float*, float*, float*, float*) {
  unavailable();
}
void pool2d_forward(const PoolGeometry&, const float*, float*) { unavailable(); }
void pool2d_backward(const PoolGeometry&, const float*, const float*, const float*, float*) { unavailable(); }
void activation_forward(Activation, const float*, float*, int64_t) { unavailable(); }
void activation_backward(Activation, const float*, const float*, float*, int64_t) { unavailable(); }
void pointwise_forward(Pointwise, const float*, float*, int64_t) { unavailable(); }
void pointwise_backward(Pointwise, const float*, const float*, float*, int64_t) { unavailable(); }
void threshold(const float*, float, float, float*, int64_t) { unavailable(); }
void clamp(float*, float, float, int64_t) { unavailable(); }
void multiply(const float*, const float*, float*, int64_t) { unavailable(); }
void soft_invert_forward(const float*, const float*, float*, int64_t) { unavailable(); }
void soft_invert_backward(const float*, const float*, const float*, float*, float*, int64_t) { unavailable(); }
void log_softmax_forward(const float*, float*, int64_t, int64_t) { unavailable(); }
void log_softmax_backward(const float*, const float*, float*, int64_t, int64_t) { unavailable(); }
void batch_norm_forward(const BatchNormShape&, const float*, const float*, const float*, float*, float*, bool, double,
                        double, float*, float*, float*) {
  unavailable();
}
void batch_norm_backward(const BatchNormShape&, const float*, const float*, const float*, const float*, float*, float*,
                         float*) {
  unavailable();
}
void sgd_step(float*, const float*, float*, int64_t, float, float, float, bool, bool) { unavailable(); }
void adam_step(float*, const float*, float*, float*, int64_t, const AdamStep&) { unavailable(); }

}  // namespace xp::nn::cuda
