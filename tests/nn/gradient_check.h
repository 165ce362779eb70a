// Finite-difference gradient checks for core/nn modules: the loss is sum(y ⊙ r) for a fixed
// random r, so backward(r) must return dL/dx and accumulate dL/dθ; both are compared with
// central differences. Buffers (running statistics, RNG positions) are restored before every
// forward so each evaluation sees the same state.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/nn/module.h"
#include "core/runtime/rng.h"

namespace xp::nn::testing {

inline Tensor random_tensor(const Shape& shape, uint64_t stream, double scale = 1.0) {
  Tensor t = Tensor::empty(shape, tensor::DType::kF32);
  runtime::RngStream rng(7, stream);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(scale * rng.normal());
  return t;
}

class GradientCheck {
 public:
  GradientCheck(Module& m, Tensor x) : m_(m), x_(std::move(x)) {
    for (auto& [name, b] : m_.buffers()) saved_.push_back(b->clone());
  }

  // Checks dL/dx and every parameter's gradient at up to `max_entries` entries each.
  void run(double eps = 1e-3, double atol = 2e-3, double rtol = 2e-2, int64_t max_entries = 40) {
    reset_buffers();
    Tensor y = m_.forward(x_, Mode::kTrain);
    r_ = random_tensor(y.shape(), 99);
    m_.zero_grad();
    Tensor gx = m_.backward(r_);
    ASSERT_EQ(gx.shape(), x_.shape()) << m_.describe();
    compare("input", x_, gx, eps, atol, rtol, max_entries);
    for (auto& [name, p] : m_.parameters()) compare(name, p->value, p->grad, eps, atol, rtol, max_entries);
  }

 private:
  void reset_buffers() {
    size_t i = 0;
    for (auto& [name, b] : m_.buffers()) std::memcpy(b->raw_data(), saved_[i++].raw_data(), b->nbytes());
  }
  double loss() {
    reset_buffers();
    Tensor y = m_.forward(x_, Mode::kTrain);
    double s = 0.0;
    for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y.data<float>()[i]) * r_.data<float>()[i];
    return s;
  }
  void compare(const std::string& what, Tensor& wrt, const Tensor& analytic, double eps, double atol, double rtol,
               int64_t max_entries) {
    const int64_t n = wrt.numel();
    const int64_t step = std::max<int64_t>(1, n / max_entries);
    for (int64_t i = 0; i < n; i += step) {
      float* p = wrt.data<float>() + i;
      const float keep = *p;
      *p = keep + static_cast<float>(eps);
      const double up = loss();
      *p = keep - static_cast<float>(eps);
      const double down = loss();
      *p = keep;
      const double numeric = (up - down) / (2 * eps);
      const double got = analytic.data<float>()[i];
      EXPECT_NEAR(got, numeric, atol + rtol * std::fabs(numeric)) << m_.describe() << " d/d" << what << "[" << i << "]";
    }
  }

  Module& m_;
  Tensor x_, r_;
  std::vector<Tensor> saved_;
};

}  // namespace xp::nn::testing
