// core/nn's CUDA layers (cuBLAS, cuDNN) against the CPU layers (label cuda: skips where no GPU
// is visible). Both compute in f32 (cuDNN pinned to FMA math, no TF32) but sum in different
// orders, so outputs and every gradient agree to |Δ| ≤ 1e-4 on values of order 1.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include "core/nn/activation.h"
#include "core/nn/conv.h"
#include "core/nn/cuda/layers.h"
#include "core/nn/linear.h"
#include "core/nn/state_dict.h"
#include "tests/nn/gradient_check.h"

namespace xp::nn {
namespace {

using tensor::Device;
using testing::random_tensor;

constexpr double kTolerance = 1e-4;

void expect_near(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  auto g = got.to_vector(), w = want.to_vector();
  double diff = 0;
  for (size_t i = 0; i < g.size(); ++i) diff = std::max(diff, std::fabs(g[i] - w[i]));
  std::printf("  %s: max |Δ| = %.3g\n", what.c_str(), diff);
  EXPECT_LE(diff, kTolerance) << what;
}

// Forward (train) and backward with one input and one output gradient through `cpu` and through
// `gpu` (an identical layer, moved to the GPU here): output, input gradient and every parameter
// gradient must agree.
void expect_cuda_matches_cpu(Module& cpu, Module& gpu, const Tensor& x) {
  gpu.to(Device::kCUDA);
  gpu.zero_grad();
  Tensor y = cpu.forward(x, Mode::kTrain);
  Tensor y_gpu = gpu.forward(x.to(Device::kCUDA), Mode::kTrain);
  EXPECT_EQ(y_gpu.device(), Device::kCUDA);
  expect_near(y_gpu, y, gpu.describe() + " output");
  Tensor gy = random_tensor(y.shape(), 99);
  expect_near(gpu.backward(gy.to(Device::kCUDA)), cpu.backward(gy), gpu.describe() + " input gradient");
  auto want = cpu.parameters(), got = gpu.parameters();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) expect_near(got[i].second->grad, want[i].second->grad, got[i].first + " gradient");
}

template <class Layer, class... Args>
std::pair<std::unique_ptr<Layer>, std::unique_ptr<Layer>> twins(uint64_t seed, Args... args) {
  auto a = std::make_unique<Layer>(args...), b = std::make_unique<Layer>(args...);
  runtime::RngStream ra(seed, 1), rb(seed, 1);
  a->reset(ra);
  b->reset(rb);
  return {std::move(a), std::move(b)};
}

class CudaLayers : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tensor::cuda_available() || !cuda::available()) GTEST_SKIP() << "no CUDA device (or no cuDNN in this build)";
  }
};

}  // namespace

TEST_F(CudaLayers, LinearMatchesTheCpuLayer) {
  auto [cpu, gpu] = twins<Linear>(1, 37, 19, true);
  expect_cuda_matches_cpu(*cpu, *gpu, random_tensor({8, 37}, 1));
}

TEST_F(CudaLayers, LinearWithoutBiasOnImageInputMatchesTheCpuLayer) {
  auto [cpu, gpu] = twins<Linear>(2, 18, 5, false);
  expect_cuda_matches_cpu(*cpu, *gpu, random_tensor({4, 2, 3, 3}, 2));
}

TEST_F(CudaLayers, Conv2dWithPaddingAndStrideMatchesTheCpuLayer) {
  auto [cpu, gpu] = twins<Conv2d>(3, 3, 4, Conv2dOptions{.kernel = 3, .stride = 2, .padding = 1});
  expect_cuda_matches_cpu(*cpu, *gpu, random_tensor({2, 3, 9, 9}, 3));
}

TEST_F(CudaLayers, Conv2dWithoutPaddingOrBiasMatchesTheCpuLayer) {
  auto [cpu, gpu] = twins<Conv2d>(4, 1, 6, Conv2dOptions{.kernel = 5, .stride = 1, .padding = 0, .bias = false});
  expect_cuda_matches_cpu(*cpu, *gpu, random_tensor({3, 1, 12, 12}, 4));
}

TEST_F(CudaLayers, MaxPoolMatchesTheCpuLayer) {
  Pool2d cpu(PoolKind::kMax, 2), gpu(PoolKind::kMax, 2);
  expect_cuda_matches_cpu(cpu, gpu, random_tensor({2, 3, 8, 6}, 5));
}

TEST_F(CudaLayers, OverlappingAveragePoolMatchesTheCpuLayer) {
  Pool2d cpu(PoolKind::kAverage, 3, 1), gpu(PoolKind::kAverage, 3, 1);
  expect_cuda_matches_cpu(cpu, gpu, random_tensor({1, 2, 5, 7}, 6));
}

TEST_F(CudaLayers, ReLUAndTanhMatchTheCpuLayers) {
  ReLU relu_cpu, relu_gpu;
  expect_cuda_matches_cpu(relu_cpu, relu_gpu, random_tensor({4, 33}, 7));
  Tanh tanh_cpu, tanh_gpu;
  expect_cuda_matches_cpu(tanh_cpu, tanh_gpu, random_tensor({4, 33}, 8));
}

TEST_F(CudaLayers, ALeNetStyleStackMatchesTheCpuStack) {
  auto build = [] {
    auto s = std::make_unique<Sequential>();
    runtime::RngStream rng(9, 1);
    s->add(std::make_unique<Conv2d>(1, 4, Conv2dOptions{.kernel = 5, .padding = 2})).reset(rng);
    s->add(std::make_unique<ReLU>());
    s->add(std::make_unique<Pool2d>(PoolKind::kMax, 2));
    s->add(std::make_unique<Conv2d>(4, 8, Conv2dOptions{.kernel = 5})).reset(rng);
    s->add(std::make_unique<Tanh>());
    s->add(std::make_unique<Pool2d>(PoolKind::kAverage, 2));
    s->add(std::make_unique<Flatten>());
    s->add(std::make_unique<Linear>(8 * 5 * 5, 10)).reset(rng);
    return s;
  };
  auto cpu = build(), gpu = build();
  expect_cuda_matches_cpu(*cpu, *gpu, random_tensor({3, 1, 28, 28}, 10));
}

TEST_F(CudaLayers, AModelOnTheGpuSavesAndLoadsItsStateDict) {
  auto [cpu, gpu] = twins<Linear>(12, 6, 3, true);
  gpu->to(Device::kCUDA);
  StateDict saved = state_dict(*gpu);
  for (const auto& [name, t] : saved) EXPECT_EQ(t.device(), Device::kCPU) << name;
  EXPECT_EQ(fingerprint(saved), fingerprint(state_dict(*cpu)));  // the same values as its CPU twin
  auto [other, unused] = twins<Linear>(13, 6, 3, true);
  other->to(Device::kCUDA);
  load_state_dict(saved, *other);
  EXPECT_EQ(other->weight().value.device(), Device::kCUDA);
  expect_near(other->forward(random_tensor({2, 6}, 12).to(Device::kCUDA), Mode::kEval),
              cpu->forward(random_tensor({2, 6}, 12), Mode::kEval), "reloaded output");
}

TEST_F(CudaLayers, AnInputOnTheOtherDeviceIsAClearError) {
  auto [cpu, gpu] = twins<Linear>(11, 4, 2, true);
  try {
    cpu->forward(random_tensor({2, 4}, 11).to(Device::kCUDA), Mode::kEval);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("parameters are on cpu"), std::string::npos) << e.what();
  }
}

TEST(CudaLayersWithoutGpu, MovingAModelSaysWhy) {
  if (tensor::cuda_available()) GTEST_SKIP() << "a GPU is present";
  Linear l(3, 2);
  EXPECT_THROW(l.to(Device::kCUDA), std::runtime_error);
}

}  // namespace xp::nn
