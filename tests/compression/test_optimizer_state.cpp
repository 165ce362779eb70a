// The optimizer-state policy of DynaQuant checkpoints (docs/dynaquant.md): each policy
// restores what it promises (exact, half precision, the weights' quantizer without pruning,
// zeros), leaves everything that is not a moment alone, never changes the caller's state, and
// refuses corrupt bytes or another model's state.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "compression/container.h"
#include "compression/optimizer_state.h"
#include "core/runtime/rng.h"

namespace xp::compression {
namespace {

using ::testing::HasSubstr;

nn::Tensor filled(const tensor::Shape& shape, uint64_t stream, bool squared) {
  nn::Tensor t = nn::Tensor::empty(shape, tensor::DType::kF32);
  runtime::RngStream rng(41, stream);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double g = 0.01 * rng.normal();
    t.data<float>()[i] = static_cast<float>(squared ? g * g : g);
  }
  return t;
}

// What Trainer::state() holds for a two-layer model under Adam (names as nn::state_dict gives).
nn::StateDict trainer_state(tensor::Shape hidden = {64, 100}) {
  nn::Tensor step = nn::Tensor::zeros({1}, tensor::DType::kI64);
  step.data<int64_t>()[0] = 1234;
  return {{"fc1.weight", filled(hidden, 1, false)},
          {"fc1.bias", filled({hidden[0]}, 2, false)},
          {"optim.step", step},
          {"optim.exp_avg.fc1.weight", filled(hidden, 3, false)},
          {"optim.exp_avg.fc1.bias", filled({hidden[0]}, 4, false)},
          {"optim.exp_avg_sq.fc1.weight", filled(hidden, 5, true)},
          {"optim.exp_avg_sq.fc1.bias", filled({hidden[0]}, 6, true)}};
}

const nn::Tensor& find(const nn::StateDict& sd, const std::string& name) {
  for (const auto& [n, t] : sd)
    if (n == name) return t;
  throw std::out_of_range(name);
}

std::vector<float> values(const nn::Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

nn::StateDict round_trip(const nn::StateDict& state, OptimizerStatePolicy policy) {
  return decode_optimizer_state(encode_optimizer_state(state, policy, QuantConfig{}), state);
}

TEST(OptimizerStateTest, Fp32RestoresEveryTensorExactly) {
  const auto state = trainer_state();
  const auto back = round_trip(state, OptimizerStatePolicy::kFp32);
  ASSERT_EQ(back.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(back[i].first, state[i].first);
    EXPECT_EQ(std::memcmp(back[i].second.raw_data(), state[i].second.raw_data(), state[i].second.nbytes()), 0) << state[i].first;
  }
}

TEST(OptimizerStateTest, Fp16KeepsMomentsToHalfPrecisionInHalfTheBytes) {
  const auto state = trainer_state();
  const auto fp32 = encode_optimizer_state(state, OptimizerStatePolicy::kFp32, {});
  const auto fp16 = encode_optimizer_state(state, OptimizerStatePolicy::kFp16, {});
  EXPECT_LT(fp16.size(), fp32.size() * 0.52);
  const auto back = decode_optimizer_state(fp16, state);
  // Both moments, including the second (squared gradients ~1e-4..1e-10, below fp16's range
  // unscaled), within half precision of their largest value's binade and never flushed to zero.
  for (const char* name : {"optim.exp_avg.fc1.weight", "optim.exp_avg_sq.fc1.weight"}) {
    const auto a = values(find(state, name)), b = values(find(back, name));
    const float largest = *std::max_element(a.begin(), a.end(), [](float x, float y) { return std::fabs(x) < std::fabs(y); });
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_NEAR(b[i], a[i], std::fabs(a[i]) * std::ldexp(1.0, -11) + std::fabs(largest) * 1e-9) << name << " " << i;
      if (std::fabs(a[i]) > std::fabs(largest) * 1e-7) {
        EXPECT_NE(b[i], 0.0f) << name << " " << i;
      }
    }
  }
  EXPECT_EQ(find(back, "optim.step").data<int64_t>()[0], 1234);
  EXPECT_EQ(values(find(back, "fc1.weight")), values(find(state, "fc1.weight")));  // not a moment
}

TEST(OptimizerStateTest, QuantizeLikeWeightsUsesFewLevelsAndPrunesNothing) {
  const auto state = trainer_state();
  QuantConfig weights_config;
  weights_config.bins = 8;
  weights_config.prune_fraction = 0.3;  // ignored for moments
  const auto bytes = encode_optimizer_state(state, OptimizerStatePolicy::kQuantizeLikeWeights, weights_config);
  EXPECT_LT(bytes.size(), encode_optimizer_state(state, OptimizerStatePolicy::kFp16, {}).size() / 2);
  const auto back = decode_optimizer_state(bytes, state);
  const auto a = values(find(state, "optim.exp_avg_sq.fc1.weight")), b = values(find(back, "optim.exp_avg_sq.fc1.weight"));
  std::set<float> levels;
  size_t protected_count = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_GT(b[i], 0.0f) << "a second moment quantized to zero at " << i;
    if (b[i] == from_bf16(to_bf16(a[i]))) ++protected_count;
    else levels.insert(b[i]);
  }
  EXPECT_LE(levels.size(), 8u);
  EXPECT_GT(protected_count, 0u);
  // Biases are tiny tensors: stored raw, exactly.
  EXPECT_EQ(values(find(back, "optim.exp_avg.fc1.bias")), values(find(state, "optim.exp_avg.fc1.bias")));
}

TEST(OptimizerStateTest, DropRestoresZeroMomentsAndKeepsTheRest) {
  const auto state = trainer_state();
  const auto back = round_trip(state, OptimizerStatePolicy::kDrop);
  for (const auto& [name, t] : back) {
    if (is_optimizer_moment(name, t)) {
      for (float v : values(t)) ASSERT_EQ(v, 0.0f) << name;
    }
  }
  EXPECT_EQ(find(back, "optim.step").data<int64_t>()[0], 1234);
}

TEST(OptimizerStateTest, DecodingLeavesTheCallersStateUntouched) {
  const auto state = trainer_state();
  const auto before = values(find(state, "optim.exp_avg.fc1.weight"));
  round_trip(state, OptimizerStatePolicy::kDrop);
  round_trip(state, OptimizerStatePolicy::kFp16);
  EXPECT_EQ(values(find(state, "optim.exp_avg.fc1.weight")), before);
}

TEST(OptimizerStateTest, CorruptBytesOrAnotherModelsStateAreRefused) {
  const auto state = trainer_state();
  const auto bytes = encode_optimizer_state(state, OptimizerStatePolicy::kFp16, {});
  for (size_t i = 0; i < bytes.size(); i += 7) {
    auto bad = bytes;
    bad[i] ^= std::byte{0x10};
    EXPECT_THROW(decode_optimizer_state(bad, state), ContainerError) << "byte " << i;
  }
  auto truncated = bytes;
  truncated.resize(bytes.size() / 2);
  EXPECT_THROW(decode_optimizer_state(truncated, state), ContainerError);
  try {
    decode_optimizer_state(bytes, trainer_state({32, 100}));
    FAIL() << "another model's moments were accepted";
  } catch (const ContainerError& e) {
    EXPECT_THAT(e.what(), HasSubstr("optim.exp_avg.fc1.weight"));
  }
}

TEST(OptimizerStateTest, UnknownPolicyNameListsTheChoices) {
  EXPECT_EQ(optimizer_state_policy("quantize_like_weights"), OptimizerStatePolicy::kQuantizeLikeWeights);
  try {
    optimizer_state_policy("int4");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("fp16"));
  }
}

}  // namespace
}  // namespace xp::compression
