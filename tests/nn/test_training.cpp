// Losses, optimizers, schedules and state dicts of core/nn, and a whole training run: an MLP
// learns the digits set, and stopping, saving and restoring mid-run continues bit for bit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numeric>

#include "core/data/dataset.h"
#include "core/nn/activation.h"
#include "core/nn/init.h"
#include "core/nn/linear.h"
#include "core/nn/loss.h"
#include "core/nn/optim.h"
#include "core/nn/state_dict.h"
#include "tests/nn/gradient_check.h"

namespace xp::nn {
namespace {

using testing::random_tensor;

TEST(LossTest, CrossEntropyGradientMatchesFiniteDifferences) {
  Tensor logits = random_tensor({3, 4}, 1);
  std::vector<int32_t> labels{2, 0, 3};
  LossResult r = cross_entropy(logits, labels);
  for (int64_t i = 0; i < logits.numel(); ++i) {
    float* p = logits.data<float>() + i;
    const float keep = *p;
    *p = keep + 1e-3f;
    double up = cross_entropy(logits, labels).loss;
    *p = keep - 1e-3f;
    double down = cross_entropy(logits, labels).loss;
    *p = keep;
    EXPECT_NEAR(r.grad.data<float>()[i], (up - down) / 2e-3, 1e-4) << i;
  }
}

TEST(LossTest, CrossEntropyEqualsNllOfLogSoftmax) {
  Tensor logits = random_tensor({5, 3}, 2);
  std::vector<int32_t> labels{0, 1, 2, 1, 0};
  LogSoftmax ls;
  Tensor logp = ls.forward(logits, Mode::kTrain);
  LossResult nll = nll_loss(logp, labels);
  LossResult ce = cross_entropy(logits, labels);
  EXPECT_NEAR(nll.loss, ce.loss, 1e-6);
  EXPECT_EQ(nll.correct, ce.correct);
  auto via_nll = ls.backward(nll.grad).to_vector();
  auto direct = ce.grad.to_vector();
  for (size_t i = 0; i < direct.size(); ++i) EXPECT_NEAR(via_nll[i], direct[i], 1e-6);
}

TEST(LossTest, RejectsLabelsOutsideTheClasses) {
  EXPECT_THROW(cross_entropy(random_tensor({2, 3}, 3), std::vector<int32_t>{0, 3}), std::invalid_argument);
}

// One parameter p = 1 with gradient g = 0.5 (PyTorch gives the same numbers).
struct OneParameter : Module {
  Parameter& p = add_parameter("p", {1});
  OneParameter() {
    p.value.data<float>()[0] = 1.0f;
    p.grad.data<float>()[0] = 0.5f;
  }
  std::string describe() const override { return "OneParameter"; }
  Tensor forward(const Tensor& x, Mode) override { return x; }
  Tensor backward(const Tensor& g) override { return g; }
};

TEST(OptimizerTest, AdamFirstStepMovesByLearningRateTimesSignOfGradient) {
  OneParameter m;
  Adam adam(m.parameters(), {});
  adam.step(0.1);
  // m̂ = g, v̂ = g², so the step is lr·g/(|g| + eps).
  EXPECT_NEAR(m.p.value.data<float>()[0], 1.0 - 0.1, 1e-6);
  adam.step(0.1);
  EXPECT_NEAR(m.p.value.data<float>()[0], 0.8, 1e-5);
  EXPECT_EQ(adam.steps(), 2);
}

TEST(OptimizerTest, AdamWShrinksTheWeightBeforeTheStepInsteadOfAddingL2) {
  OneParameter m;
  Adam adamw(m.parameters(), {.weight_decay = 0.5, .decoupled = true});
  adamw.step(0.1);  // torch.optim.AdamW: p = 1·(1 − 0.1·0.5) − 0.1·g/|g| = 0.85
  EXPECT_NEAR(m.p.value.data<float>()[0], 0.85, 1e-6);
  OneParameter l2;
  Adam adam(l2.parameters(), {.weight_decay = 0.5});
  adam.step(0.1);  // L2: the gradient 0.5 + 0.5·1 goes through Adam's normalisation, a plain lr step
  EXPECT_NEAR(l2.p.value.data<float>()[0], 0.9, 1e-6);
}

TEST(OptimizerTest, SgdMomentumAndWeightDecayFollowTorch) {
  OneParameter m;
  Sgd sgd(m.parameters(), {.momentum = 0.9, .weight_decay = 0.1});
  sgd.step(0.1);  // d = 0.5 + 0.1·1 = 0.6; buf = 0.6; p = 1 − 0.06
  EXPECT_NEAR(m.p.value.data<float>()[0], 0.94, 1e-6);
  sgd.step(0.1);  // d = 0.5 + 0.094 = 0.594; buf = 0.54 + 0.594 = 1.134; p = 0.94 − 0.1134
  EXPECT_NEAR(m.p.value.data<float>()[0], 0.8266, 1e-6);
}

TEST(OptimizerTest, SgdWithNesterovMomentumAndWithoutMomentumFollowsTorch) {
  OneParameter n;
  Sgd nesterov(n.parameters(), {.momentum = 0.9, .nesterov = true});
  nesterov.step(0.1);  // buf = 0.5; d = 0.5 + 0.9·0.5 = 0.95; p = 1 − 0.095
  EXPECT_NEAR(n.p.value.data<float>()[0], 0.905, 1e-6);
  nesterov.step(0.1);  // buf = 0.45 + 0.5 = 0.95; d = 0.5 + 0.855 = 1.355; p = 0.905 − 0.1355
  EXPECT_NEAR(n.p.value.data<float>()[0], 0.7695, 1e-6);
  OneParameter plain;
  Sgd sgd(plain.parameters(), {.weight_decay = 0.1});
  sgd.step(0.1);  // d = 0.5 + 0.1·1 = 0.6; p = 1 − 0.06
  sgd.step(0.1);  // d = 0.5 + 0.094 = 0.594; p = 0.94 − 0.0594
  EXPECT_NEAR(plain.p.value.data<float>()[0], 0.8806, 1e-6);
  EXPECT_TRUE(sgd.per_parameter_state().empty());
}

// Data-parallel processes each update their share of the parameters (laid end to end): a step
// over some elements leaves them, and their moments, as a whole step does, and touches no other.
TEST(OptimizerTest, AStepOverSomeElementsUpdatesThemAsAWholeStepDoesAndLeavesTheRest) {
  constexpr int64_t kBegin = 12, kEnd = 38;  // across the weight (7·5) and bias (5) boundary
  auto flat = [](Module& m, Optimizer& o) {  // parameters, then each kind of moment, end to end
    std::vector<std::vector<float>> out(1);
    for (auto& [name, p] : m.parameters()) out[0].insert(out[0].end(), p->value.data<float>(), p->value.data<float>() + p->value.numel());
    for (const auto& kind : o.per_parameter_state()) {
      out.emplace_back();
      for (Tensor* t : kind) out.back().insert(out.back().end(), t->data<float>(), t->data<float>() + t->numel());
    }
    return out;
  };
  auto check = [&](const std::function<std::unique_ptr<Optimizer>(NamedParameters)>& make, const char* what) {
    Linear whole(7, 5), part(7, 5);
    runtime::RngStream a(4, 1), b(4, 1);
    whole.reset(a);
    part.reset(b);
    auto ow = make(whole.parameters()), op = make(part.parameters());
    const auto start = flat(part, *op);
    for (int step = 0; step < 3; ++step) {
      for (Linear* m : {&whole, &part}) {
        int64_t k = 0;
        for (auto& [name, p] : m->parameters())
          for (int64_t i = 0; i < p->grad.numel(); ++i) p->grad.data<float>()[i] = std::sin(static_cast<float>(++k * (step + 2)));
      }
      ow->step(0.05);
      op->step(0.05, {kBegin, kEnd});
    }
    const auto w = flat(whole, *ow), p = flat(part, *op);
    ASSERT_EQ(p.size(), w.size()) << what;
    for (size_t v = 0; v < p.size(); ++v)
      for (int64_t k = 0; k < static_cast<int64_t>(p[v].size()); ++k) {
        const auto i = static_cast<size_t>(k);
        if (k >= kBegin && k < kEnd) EXPECT_EQ(p[v][i], w[v][i]) << what << ": vector " << v << ", element " << k;
        else EXPECT_EQ(p[v][i], start[v][i]) << what << ": vector " << v << ", element " << k << " changed";
      }
  };
  check([](NamedParameters p) { return std::make_unique<Adam>(std::move(p), AdamOptions{.weight_decay = 0.01}); }, "adam");
  check([](NamedParameters p) { return std::make_unique<Sgd>(std::move(p), SgdOptions{.momentum = 0.9, .weight_decay = 0.1}); },
        "sgd");
}

TEST(OptimizerTest, CosineScheduleRunsFromBaseToMinimum) {
  EXPECT_DOUBLE_EQ(cosine_lr(0.1, 0, 100), 0.1);
  EXPECT_NEAR(cosine_lr(0.1, 50, 100), 0.05, 1e-12);
  EXPECT_NEAR(cosine_lr(0.1, 100, 100, 0.01), 0.01, 1e-12);
  EXPECT_NEAR(cosine_lr(0.1, 200, 100, 0.01), 0.01, 1e-12);
}

// The dropout stream is the run's (seed, stream) — the same in a resumed run — while the initial
// weights may differ: everything that matters must come from the state dict.
std::unique_ptr<Sequential> digits_mlp(uint64_t seed) {
  auto s = std::make_unique<Sequential>();
  runtime::RngStream rng(seed, 1);
  s->add(std::make_unique<Linear>(64, 32)).reset(rng);
  s->add(std::make_unique<ReLU>());
  s->add(std::make_unique<Dropout>(0.1, runtime::RngStream(1, 2)));
  s->add(std::make_unique<Linear>(32, 10)).reset(rng);
  return s;
}

// Trains `steps` mini-batches of 64 (batch b is a function of b alone) from `start`.
void train(Sequential& model, Optimizer& opt, const data::Dataset& d, int64_t start, int64_t steps) {
  for (int64_t b = start; b < start + steps; ++b) {
    auto order = data::permutation(d.size(), runtime::RngStream(5, static_cast<uint64_t>(b / 20)));
    std::span<const int64_t> rows(order.data() + (b % 20) * 64, 64);
    model.zero_grad();
    LossResult r = cross_entropy(model.forward(data::batch_features(d, rows), Mode::kTrain), data::batch_labels(d, rows));
    model.backward(r.grad);
    opt.step(cosine_lr(0.01, b, 400));
  }
}

double accuracy(Sequential& model, const data::Dataset& d) {
  std::vector<int64_t> all(static_cast<size_t>(d.size()));
  std::iota(all.begin(), all.end(), 0);
  auto pred = argmax_rows(model.forward(data::batch_features(d, all), Mode::kEval));
  int64_t ok = 0;
  for (size_t i = 0; i < pred.size(); ++i) ok += pred[i] == d.labels[i];
  return static_cast<double>(ok) / static_cast<double>(d.size());
}

TEST(TrainingTest, MlpLearnsDigits) {
  auto [train_set, test_set] = data::split(data::load_digits(data::default_digits_path()), 1400, runtime::RngStream(1, 1));
  auto model = digits_mlp(1);
  Adam adam(model->parameters(), {});
  train(*model, adam, train_set, 0, 400);
  EXPECT_GT(accuracy(*model, test_set), 0.93);  // spec §5.2: 95–98% expected for 64-32-10
}

TEST(TrainingTest, StateDictRestoreContinuesBitForBit) {
  auto digits = data::load_digits(data::default_digits_path());
  auto straight = digits_mlp(2);
  Adam a1(straight->parameters(), {.weight_decay = 1e-4});
  train(*straight, a1, digits, 0, 60);

  auto first = digits_mlp(2);
  Adam a2(first->parameters(), {.weight_decay = 1e-4});
  train(*first, a2, digits, 0, 25);
  jobs::ByteWriter out;
  write_state_dict(out, state_dict(*first, &a2));
  auto bytes = out.take();

  auto resumed = digits_mlp(99);  // different initial weights: all must come from the checkpoint
  Adam a3(resumed->parameters(), {.weight_decay = 1e-4});
  jobs::ByteReader in(bytes);
  load_state_dict(read_state_dict(in), *resumed, &a3);
  EXPECT_EQ(a3.steps(), 25);
  train(*resumed, a3, digits, 25, 35);

  auto want = state_dict(*straight, &a1), got = state_dict(*resumed, &a3);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(want[i].first, got[i].first);
    EXPECT_EQ(0, std::memcmp(want[i].second.raw_data(), got[i].second.raw_data(), want[i].second.nbytes()))
        << want[i].first;
  }
}

TEST(StateDictTest, RefusesACheckpointOfADifferentModelAndChangesNothing) {
  auto model = digits_mlp(3);
  auto other = std::make_unique<Sequential>();
  other->add(std::make_unique<Linear>(64, 16));
  Tensor before = model->parameters()[0].second->value.clone();
  try {
    load_state_dict(state_dict(*other), *model);
    FAIL();
  } catch (const StateDictError& e) {
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("model.0.weight"));
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("different model"));
  }
  EXPECT_EQ(before.to_vector(), model->parameters()[0].second->value.to_vector());
}

TEST(StateDictTest, TruncatedPayloadIsACheckpointError) {
  auto model = digits_mlp(4);
  jobs::ByteWriter out;
  write_state_dict(out, state_dict(*model));
  auto bytes = out.take();
  bytes.resize(bytes.size() / 2);
  jobs::ByteReader in(bytes);
  EXPECT_THROW(read_state_dict(in), jobs::CheckpointError);
}

}  // namespace
}  // namespace xp::nn
