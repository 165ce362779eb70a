// Every core/nn layer's backward against central finite differences, plus the behaviours the
// gradient check cannot see (running statistics, dropout masks, straight-through Step).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "core/nn/activation.h"
#include "core/nn/conv.h"
#include "core/nn/init.h"
#include "core/nn/linear.h"
#include "core/nn/norm.h"
#include "tests/nn/gradient_check.h"

namespace xp::nn {
namespace {

using testing::GradientCheck;
using testing::random_tensor;

TEST(GradientCheckTest, LinearWithBias) {
  Linear l(5, 3);
  runtime::RngStream rng(1, 1);
  l.reset(rng);
  GradientCheck(l, random_tensor({4, 5}, 1)).run();
}

TEST(GradientCheckTest, LinearWithoutBiasOnImageInput) {
  Linear l(2 * 3 * 3, 4, /*bias=*/false);
  runtime::RngStream rng(1, 2);
  l.reset(rng);
  GradientCheck(l, random_tensor({3, 2, 3, 3}, 2)).run();
}

TEST(GradientCheckTest, Conv2dWithPaddingAndStride) {
  Conv2d c(2, 3, {.kernel = 3, .stride = 2, .padding = 1});
  runtime::RngStream rng(1, 3);
  c.reset(rng);
  GradientCheck(c, random_tensor({2, 2, 5, 5}, 3)).run();
}

TEST(GradientCheckTest, Conv2dNoPadding) {
  Conv2d c(1, 2, {.kernel = 2, .stride = 1, .padding = 0, .bias = false});
  runtime::RngStream rng(1, 4);
  c.reset(rng);
  GradientCheck(c, random_tensor({2, 1, 4, 4}, 4)).run();
}

TEST(GradientCheckTest, MaxPool) {
  Pool2d p(PoolKind::kMax, 2);
  GradientCheck(p, random_tensor({2, 2, 4, 4}, 5)).run();
}

TEST(GradientCheckTest, AveragePoolOverlapping) {
  Pool2d p(PoolKind::kAverage, 3, 1);
  GradientCheck(p, random_tensor({1, 2, 4, 4}, 6)).run();
}

TEST(GradientCheckTest, ReLU) {
  ReLU r;
  GradientCheck(r, random_tensor({3, 7}, 7)).run();
}

TEST(GradientCheckTest, Tanh) {
  Tanh t;
  GradientCheck(t, random_tensor({3, 7}, 8)).run();
}

TEST(GradientCheckTest, LogSoftmax) {
  LogSoftmax l;
  GradientCheck(l, random_tensor({3, 5}, 9)).run();
}

TEST(GradientCheckTest, BatchNorm1d) {
  BatchNorm bn(4);
  runtime::RngStream rng(1, 5);
  init::uniform(bn.weight()->value, rng, 0.5, 1.5);
  init::uniform(bn.bias()->value, rng, -0.5, 0.5);
  GradientCheck(bn, random_tensor({6, 4}, 10)).run();
}

TEST(GradientCheckTest, BatchNorm2dNotAffine) {
  BatchNorm bn(2, {.affine = false});
  GradientCheck(bn, random_tensor({3, 2, 3, 3}, 11)).run();
}

TEST(GradientCheckTest, HardInvert) {
  HardInvert h;
  GradientCheck(h, random_tensor({2, 5}, 12)).run();
}

TEST(GradientCheckTest, SoftInvert) {
  SoftInvert s(0.3);
  GradientCheck(s, random_tensor({2, 5}, 13)).run();
}

TEST(GradientCheckTest, DropoutWithItsMask) {
  Dropout d(0.4, runtime::RngStream(3, 3));
  GradientCheck(d, random_tensor({4, 6}, 14)).run();
}

TEST(GradientCheckTest, SequentialChainsBackward) {
  Sequential s;
  runtime::RngStream rng(1, 6);
  s.add(std::make_unique<Conv2d>(1, 2, Conv2dOptions{.kernel = 3, .padding = 1})).reset(rng);
  s.add(std::make_unique<Tanh>());
  s.add(std::make_unique<Pool2d>(PoolKind::kMax, 2));
  s.add(std::make_unique<Flatten>());
  s.add(std::make_unique<Linear>(2 * 2 * 2, 3)).reset(rng);
  s.add(std::make_unique<BatchNorm>(3));
  s.add(std::make_unique<LogSoftmax>());
  GradientCheck(s, random_tensor({4, 1, 4, 4}, 15)).run();
  EXPECT_EQ(s.parameters().front().first, "0.weight");
}

// A layer fed by data (set_input_grad(false)) leaves out its input's gradient, and only that: the
// parameter gradients are the bits of a full backward.
TEST(InputGradTest, ALayerFedByDataLeavesOutItsInputGradientAndKeepsItsParameterGradients) {
  auto check = [](auto make, const Tensor& x, const char* what) {
    auto full = make(), data_fed = make();
    data_fed->set_input_grad(false);
    Tensor gy;
    for (auto* m : {full.get(), data_fed.get()}) {
      m->zero_grad();
      Tensor y = m->forward(x, Mode::kTrain);
      gy = random_tensor(y.shape(), 9);
      Tensor gx = m->backward(gy);
      EXPECT_EQ(gx.defined(), m == full.get()) << what;
    }
    auto a = full->parameters(), b = data_fed->parameters();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].second->grad.to_vector(), b[i].second->grad.to_vector()) << what << " " << a[i].first;
  };
  check([] {
    auto l = std::make_unique<Linear>(6, 4);
    runtime::RngStream rng(2, 1);
    l->reset(rng);
    return l;
  }, random_tensor({5, 6}, 3), "linear");
  check([] {
    auto c = std::make_unique<Conv2d>(1, 2, Conv2dOptions{.kernel = 3, .padding = 1});
    runtime::RngStream rng(2, 2);
    c->reset(rng);
    return c;
  }, random_tensor({2, 1, 4, 4}, 4), "conv2d");
}

TEST(InputGradTest, ASequentialTurnsItOffInItsFirstLayerOnly) {
  Sequential s;
  auto& first = s.add(std::make_unique<Linear>(3, 4));
  s.add(std::make_unique<ReLU>());
  auto& second = s.add(std::make_unique<Linear>(4, 2));
  s.set_input_grad(false);
  EXPECT_FALSE(first.input_grad());
  EXPECT_TRUE(second.input_grad());
  s.forward(random_tensor({2, 3}, 5), Mode::kTrain);
  EXPECT_FALSE(s.backward(random_tensor({2, 2}, 6)).defined());
}

TEST(StepTest, ForwardIsZeroOneAndGradientIsStraightThroughInsideUnitInterval) {
  Step s;
  Tensor x = Tensor::from_values({-2.0, -0.5, 0.0, 0.5, 2.0}, {1, 5});
  EXPECT_EQ(s.forward(x, Mode::kTrain).to_vector(), (std::vector<double>{0, 0, 1, 1, 1}));
  Tensor g = Tensor::from_values({1, 1, 1, 1, 1}, {1, 5});
  EXPECT_EQ(s.backward(g).to_vector(), (std::vector<double>{0, 1, 1, 1, 0}));
}

TEST(BatchNormTest, TracksRunningStatisticsWithUnbiasedVariance) {
  BatchNorm bn(1, {.momentum = 0.5});
  bn.forward(Tensor::from_values({1, 3}, {2, 1}), Mode::kTrain);
  auto buffers = bn.buffers();
  EXPECT_FLOAT_EQ(static_cast<float>(buffers[0].second->to_vector()[0]), 1.0f);  // 0.5·0 + 0.5·2
  EXPECT_FLOAT_EQ(static_cast<float>(buffers[1].second->to_vector()[0]), 1.5f);  // 0.5·1 + 0.5·2
  // Evaluation uses the running statistics.
  Tensor y = bn.forward(Tensor::from_values({1.0}, {1, 1}), Mode::kEval);
  EXPECT_NEAR(y.to_vector()[0], 0.0, 1e-6);
}

TEST(DropoutTest, IsIdentityInEvaluationAndDeterministicFromItsPosition) {
  Dropout d(0.5, runtime::RngStream(3, 3));
  Tensor x = Tensor::full({2, 50}, 1.0, tensor::DType::kF32);
  EXPECT_EQ(d.forward(x, Mode::kEval).to_vector(), x.to_vector());
  Tensor position = d.buffers()[0].second->clone();
  auto first = d.forward(x, Mode::kTrain).to_vector();
  for (double v : first) EXPECT_TRUE(v == 0.0 || v == 2.0);
  auto second = d.forward(x, Mode::kTrain).to_vector();
  EXPECT_NE(first, second);
  std::memcpy(d.buffers()[0].second->raw_data(), position.raw_data(), 8);
  EXPECT_EQ(d.forward(x, Mode::kTrain).to_vector(), first);
}

TEST(LayerShapeTest, LinearNamesItselfWhenShapesDoNotChain) {
  Linear l(784, 10);
  try {
    l.forward(Tensor::zeros({2, 100}, tensor::DType::kF32), Mode::kEval);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("Linear(784->10)"));
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("does not chain"));
  }
}

}  // namespace
}  // namespace xp::nn
