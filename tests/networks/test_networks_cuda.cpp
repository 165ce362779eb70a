// The {0,1}-topology trainer on the GPU (train.device = cuda) against the same trainer on the
// CPU (label cuda: skips where no GPU is visible). Binarization thresholds at |w| = 0.5 make
// long runs diverge on rounding, so the comparison is over a few steps, where the latent weights
// must agree to rounding and stay clipped to [0, 1]. It trains with SGD: Adam's first steps move
// a weight by about lr · sign(gradient), so a gradient that is zero on one device and rounding
// noise on the other (seen on an H200: batch_norm latents 0.026 apart after three steps) becomes
// a full step; Adam's update itself is compared with the CPU in tests/nn.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/data/dataset.h"
#include "core/nn/cuda/layers.h"
#include "core/tensor/tensor.h"
#include "networks/network.h"
#include "networks/trainer.h"

namespace xp::networks {
namespace {

class CudaTrainer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tensor::cuda_available() || !nn::cuda::available()) GTEST_SKIP() << "no CUDA device (or no cuDNN in this build)";
  }
};

NetworkSpec digits_spec(const std::string& norm) {
  NetworkSpec s;
  s.layers = {64, 128, 128, 10};
  s.norm = norm;
  s.init_p = 0.3;  // many connections from the start, so every layer passes gradient
  return s;
}

}  // namespace

TEST_F(CudaTrainer, StepsOnTheGpuMatchTheCpuForEveryNorm) {
  data::Dataset d = data::load_digits(data::default_digits_path());
  data::binarize(d);
  for (const char* norm : {"hard_invert", "soft_invert", "batch_norm"}) {
    Network cpu(digits_spec(norm), 4), gpu(digits_spec(norm), 4);
    // A unit's pre-activation is `on` times its active inputs (~20 here): at on = 1 tanh
    // saturates and the invert norms pass no gradient at all.
    cpu.set_on(0.1f);
    gpu.set_on(0.1f);
    std::vector<std::vector<double>> initial;
    for (auto* layer : cpu.binary_layers()) initial.push_back(layer->latent().value.to_vector());
    Trainer tc(cpu, {.epochs = 1, .batch_size = 100, .optimizer = "sgd", .lr = 1.0}, 4);
    Trainer tg(gpu, {.epochs = 1, .batch_size = 100, .optimizer = "sgd", .lr = 1.0, .device = "cuda"}, 4);
    for (int s = 0; s < 3; ++s) {
      StepResult a = tc.step(d), b = tg.step(d);
      EXPECT_NEAR(b.loss, a.loss, 1e-3 * a.samples) << norm << " step " << s;
    }
    for (size_t l = 0; l < cpu.binary_layers().size(); ++l) {
      auto want = cpu.binary_layers()[l]->latent().value.to_vector();
      auto got = gpu.binary_layers()[l]->latent().value.to_vector();
      ASSERT_EQ(got.size(), want.size());
      double diff = 0, moved = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        diff = std::max(diff, std::fabs(got[i] - want[i]));
        moved = std::max(moved, std::fabs(want[i] - initial[l][i]));
        ASSERT_GE(got[i], 0.0) << norm;
        ASSERT_LE(got[i], 1.0) << norm;
      }
      EXPECT_GT(moved, 1e-4) << norm << " layer " << l << ": three steps should train the weights";
      EXPECT_LE(diff, 1e-4) << norm << " layer " << l;
    }
    // Evaluation runs where the model is and predicts as the CPU twin does.
    EXPECT_NEAR(evaluate(gpu, d).accuracy, evaluate(cpu, d).accuracy, 0.005) << norm;
  }
}

}  // namespace xp::networks
