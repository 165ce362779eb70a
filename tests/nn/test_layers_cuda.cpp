// core/nn's CUDA layers (cuBLAS, cuDNN, our kernels) and optimizer steps against the CPU ones (label cuda: skips where no GPU
// is visible). Both compute in f32 (cuDNN pinned to FMA math, no TF32) but sum in different
// orders, so outputs and every gradient agree to |Δ| ≤ 1e-4 on values of order 1.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <tuple>

#include "core/nn/activation.h"
#include "core/nn/conv.h"
#include "core/nn/cuda/layers.h"
#include "core/nn/linear.h"
#include "core/nn/loss.h"
#include "core/nn/norm.h"
#include "core/nn/optim.h"
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

TEST_F(CudaLayers, BatchNormMatchesTheCpuLayerInTrainingAndEval) {
  for (bool affine : {true, false}) {
    for (const Shape& shape : {Shape{16, 5}, Shape{3, 4, 5, 6}}) {
      const std::string what = fmt::format("affine={} shape {}", affine, tensor::shape_str(shape));
      const BatchNormOptions options{.eps = 1e-4, .momentum = 0.15, .affine = affine};
      BatchNorm cpu(shape[1], options), gpu(shape[1], options);
      if (affine) {  // a non-trivial scale and shift, the same on both
        cpu.weight()->value = random_tensor({shape[1]}, 20);
        cpu.bias()->value = random_tensor({shape[1]}, 21);
        gpu.weight()->value = random_tensor({shape[1]}, 20);
        gpu.bias()->value = random_tensor({shape[1]}, 21);
      }
      const Tensor x = random_tensor(shape, 22, 3.0);
      expect_cuda_matches_cpu(cpu, gpu, x);
      expect_near(gpu.running_mean(), cpu.running_mean(), what + " running mean");
      expect_near(gpu.running_var(), cpu.running_var(), what + " running variance");
      expect_near(gpu.forward(x.to(Device::kCUDA), Mode::kEval), cpu.forward(x, Mode::kEval), what + " eval output");
    }
  }
}

TEST_F(CudaLayers, TheInvertingNormsAndTheStepMatchTheCpuLayers) {
  HardInvert hard_cpu, hard_gpu;
  expect_cuda_matches_cpu(hard_cpu, hard_gpu, random_tensor({6, 40}, 30));
  for (double a : {0.75, 0.2, 1.3}) {  // 1.3: clamped to 1 where used
    SoftInvert soft_cpu(a), soft_gpu(a);
    // Three blocks add into a's gradient; small enough that its f32 sum (~30) keeps within 1e-4.
    expect_cuda_matches_cpu(soft_cpu, soft_gpu, random_tensor({2, 300}, 31, 0.5));
  }
  Step step_cpu, step_gpu;
  expect_cuda_matches_cpu(step_cpu, step_gpu, random_tensor({6, 40}, 32, 2.0));
}

TEST_F(CudaLayers, LogSoftmaxAndDropoutMatchTheCpuLayers) {
  LogSoftmax ls_cpu, ls_gpu;
  expect_cuda_matches_cpu(ls_cpu, ls_gpu, random_tensor({7, 10}, 40, 4.0));
  expect_cuda_matches_cpu(ls_cpu, ls_gpu, random_tensor({3, 1000}, 41, 4.0));  // rows longer than a block
  // The same stream gives the same mask on either device, and its position moves the same way.
  Dropout d_cpu(0.3, runtime::RngStream(5, 1)), d_gpu(0.3, runtime::RngStream(5, 1));
  expect_cuda_matches_cpu(d_cpu, d_gpu, random_tensor({4, 50}, 42));
  expect_cuda_matches_cpu(d_cpu, d_gpu, random_tensor({4, 50}, 43));
}

TEST_F(CudaLayers, LossesOfGpuScoresMatchTheCpuAndKeepTheGradientOnTheGpu) {
  const Tensor scores = random_tensor({5, 10}, 50, 2.0);
  const std::vector<int32_t> labels{3, 0, 9, 9, 4};
  for (auto loss : {&cross_entropy, &nll_loss}) {
    LossResult want = loss(scores, labels), got = loss(scores.to(Device::kCUDA), labels);
    EXPECT_DOUBLE_EQ(got.loss, want.loss);
    EXPECT_EQ(got.correct, want.correct);
    EXPECT_EQ(got.grad.device(), Device::kCUDA);
    expect_near(got.grad, want.grad, "loss gradient");
  }
  EXPECT_EQ(argmax_rows(scores.to(Device::kCUDA)), argmax_rows(scores));
}

// A few training steps of a {0,1}-network-shaped stack (Linear → Tanh → HardInvert → BatchNorm →
// Linear → Tanh → SoftInvert → LogSoftmax, NLL) under each optimizer, on both devices: the
// weights, moments and step count must stay together.
TEST_F(CudaLayers, TrainingStepsWithSgdAndAdamMatchTheCpu) {
  auto build = [] {
    auto s = std::make_unique<Sequential>();
    runtime::RngStream rng(60, 1);
    s->add(std::make_unique<Linear>(12, 16)).reset(rng);
    s->add(std::make_unique<Tanh>());
    s->add(std::make_unique<HardInvert>());
    s->add(std::make_unique<BatchNorm>(16));
    s->add(std::make_unique<Linear>(16, 4)).reset(rng);
    s->add(std::make_unique<Tanh>());
    s->add(std::make_unique<SoftInvert>());
    s->add(std::make_unique<LogSoftmax>());
    return s;
  };
  const std::vector<int32_t> labels{0, 1, 2, 3, 1, 2, 0, 3};
  for (int which = 0; which < 3; ++which) {  // SGD, Adam (L2), AdamW
    auto cpu = build(), gpu = build();
    gpu->to(Device::kCUDA);
    auto optimizer = [&](Module& m) -> std::unique_ptr<Optimizer> {
      if (which == 0) return std::make_unique<Sgd>(m.parameters(), SgdOptions{.momentum = 0.9, .weight_decay = 1e-3, .nesterov = true});
      return std::make_unique<Adam>(m.parameters(), AdamOptions{.weight_decay = which == 1 ? 1e-3 : 0.5, .decoupled = which == 2});
    };
    auto opt_cpu = optimizer(*cpu), opt_gpu = optimizer(*gpu);
    for (int step = 0; step < 3; ++step) {
      const Tensor x = random_tensor({8, 12}, 61 + static_cast<uint64_t>(step));
      for (auto [m, o, input] : {std::tuple{cpu.get(), opt_cpu.get(), x}, std::tuple{gpu.get(), opt_gpu.get(), x.to(Device::kCUDA)}}) {
        m->zero_grad();
        LossResult r = nll_loss(m->forward(input, Mode::kTrain), labels);
        m->backward(r.grad);
        o->step(0.05);
      }
    }
    const std::string name = which == 0 ? "SGD" : which == 1 ? "Adam" : "AdamW";
    auto want = cpu->parameters(), got = gpu->parameters();
    for (size_t i = 0; i < got.size(); ++i) expect_near(got[i].second->value, want[i].second->value, name + " " + got[i].first);
    auto state_want = opt_cpu->state(), state_got = opt_gpu->state();
    ASSERT_EQ(state_got.size(), state_want.size());
    EXPECT_EQ(opt_gpu->steps(), 3);
    for (size_t i = 1; i < state_got.size(); ++i)  // [0] is the step count, kept on the host
      expect_near(*state_got[i].second, *state_want[i].second, name + " " + state_got[i].first);
  }
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
