// DynaQuant's quantizer and checkpoint container (docs/dynaquant.md: partition, format, chains):
// prune/protect counts match their fractions, thresholds are shared per layer type, delta chains
// of 20 checkpoints decode bit-exactly, a delta of an unchanged model costs little, any flipped
// byte is refused, a delta refuses a missing or foreign parent, and a container of another
// format version is refused with a hint.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "compression/container.h"
#include "core/runtime/rng.h"

namespace xp::compression {
namespace {

using ::testing::HasSubstr;

nn::Tensor random_tensor(const tensor::Shape& shape, uint64_t stream, double std = 0.05) {
  nn::Tensor t = nn::Tensor::empty(shape, tensor::DType::kF32);
  runtime::RngStream rng(21, stream);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(std * rng.normal());
  return t;
}

nn::StateDict model(uint64_t stream) {
  return {{"fc1.weight", random_tensor({64, 100}, stream)},
          {"fc1.bias", random_tensor({64}, stream + 1)},
          {"fc2.weight", random_tensor({10, 64}, stream + 2)},
          {"embed.weight", random_tensor({50, 16}, stream + 3)}};
}

// The same model after a small training step: most weights move a little.
nn::StateDict drift(const nn::StateDict& sd, uint64_t stream) {
  nn::StateDict out;
  runtime::RngStream rng(22, stream);
  for (const auto& [name, t] : sd) {
    nn::Tensor c = t.clone();
    for (int64_t i = 0; i < c.numel(); ++i) c.data<float>()[i] += static_cast<float>(0.002 * rng.normal());
    out.emplace_back(name, c);
  }
  return out;
}

TEST(QuantizerTest, PrunedAndProtectedCountsMatchTheirFractions) {
  auto sd = model(1);
  QuantConfig c{.bins = 8, .prune_fraction = 0.3, .protect_fraction = 0.01};
  auto q = quantize(sd, {}, c);
  // fc1 and fc2 share the "linear" thresholds: count over both.
  size_t pruned = 0, protected_count = 0, n = 0;
  for (const auto& t : q) {
    if (t.layer_type != "linear") continue;
    n += t.symbols.size();
    for (uint16_t s : t.symbols) {
      pruned += s == 0;
      protected_count += s == t.alphabet() - 1;
    }
  }
  EXPECT_NEAR(static_cast<double>(protected_count), 0.01 * static_cast<double>(n), 1.0);
  EXPECT_NEAR(static_cast<double>(pruned), 0.3 * static_cast<double>(n), 1.0);
  EXPECT_EQ(q[1].layer_type, "raw");
  EXPECT_EQ(q[3].layer_type, "embedding");
  EXPECT_EQ(q[3].levels.size(), 16u);  // embedding_bins
}

TEST(QuantizerTest, PruneThresholdIsSharedPerLayerType) {
  nn::StateDict sd = {{"a.weight", random_tensor({32, 32}, 5, 0.01)}, {"b.weight", random_tensor({32, 32}, 6, 1.0)}};
  auto q = quantize(sd, {}, {.prune_fraction = 0.5, .protect_fraction = 0.0});
  auto pruned = [](const QuantizedTensor& t) { return std::count(t.symbols.begin(), t.symbols.end(), 0); };
  // One threshold for both: the small-magnitude tensor loses almost everything, the large one little.
  EXPECT_GT(pruned(q[0]), 900);
  EXPECT_LT(pruned(q[1]), 130);
}

TEST(QuantizerTest, DequantizedWeightsEqualOriginalsOnlyWhereProtected) {
  auto sd = model(2);
  auto q = quantize(sd, {}, {.bins = 4, .protect_fraction = 0.05});
  auto back = dequantize(q);
  const auto& w = sd[0].second;
  const auto& r = back[0].second;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const bool is_protected = q[0].symbols[static_cast<size_t>(i)] == q[0].alphabet() - 1;
    if (is_protected) {
      EXPECT_EQ(r.data<float>()[i], from_bf16(to_bf16(w.data<float>()[i])));
    }
  }
  EXPECT_EQ(back[1].second.to_vector(), sd[1].second.to_vector());  // raw bias: exact
}

TEST(QuantizerTest, DequantizeIntoWritesTheSameWeightsIntoExistingTensors) {
  auto sd = model(3);
  auto q = quantize(sd, {}, {.bins = 6, .prune_fraction = 0.1, .protect_fraction = 0.01});
  auto fresh = dequantize(q);
  auto target = model(4);  // same names and shapes, other values
  const void* storage = target[0].second.raw_data();
  dequantize_into(q, target);
  EXPECT_EQ(target[0].second.raw_data(), storage);  // written in place
  for (size_t i = 0; i < sd.size(); ++i) EXPECT_EQ(target[i].second.to_vector(), fresh[i].second.to_vector()) << sd[i].first;
  nn::StateDict other = {{"fc1.weight", random_tensor({64, 99}, 5)}};
  EXPECT_THROW(dequantize_into(q, other), std::invalid_argument);
}

TEST(QuantizerTest, SensitivityUsesTheGradientEma) {
  nn::StateDict sd = {{"w", random_tensor({16, 16}, 7)}};
  GradientEma ema;
  nn::Tensor g = nn::Tensor::zeros({16, 16}, tensor::DType::kF32);
  g.data<float>()[5] = 100.0f;  // one weight matters enormously
  ema.update("w", g);
  auto q = quantize(sd, ema.values(), {.prune_fraction = 0.5, .prune_metric = PruneMetric::kSensitivity, .protect_fraction = 1.0 / 256});
  EXPECT_EQ(q[0].symbols[5], q[0].alphabet() - 1);  // protected by sensitivity
}

ContainerHeader header(uint64_t step, int64_t parent) {
  ContainerHeader h;
  h.step = step;
  h.parent_step = parent;
  return h;
}

TEST(ContainerTest, ChainOfTwentyDeltasDecodesBitExactly) {
  auto sd = model(3);
  QuantConfig c{.bins = 8, .prune_fraction = 0.1, .protect_fraction = 0.005};
  std::vector<QuantizedTensor> parent_written, parent_read;
  for (uint64_t step = 0; step < 20; ++step) {
    c.bins = step % 5 == 4 ? 12 : 8;  // the alphabet changes along the chain
    auto q = quantize(sd, {}, c);
    ContainerHeader h = header(step, step == 0 ? -1 : static_cast<int64_t>(step - 1));
    h.config = c;
    auto bytes = encode_container(h, q, step ? &parent_written : nullptr);
    ContainerHeader got;
    auto decoded = decode_container(bytes, step ? &parent_read : nullptr, &got);
    EXPECT_EQ(got.step, step);
    ASSERT_EQ(decoded.size(), q.size());
    for (size_t i = 0; i < q.size(); ++i) {
      EXPECT_EQ(decoded[i].symbols, q[i].symbols) << step << " " << q[i].name;
      EXPECT_EQ(decoded[i].levels, q[i].levels);
      EXPECT_EQ(decoded[i].protected_bf16, q[i].protected_bf16);
      EXPECT_EQ(decoded[i].raw, q[i].raw);
    }
    parent_written = q;
    parent_read = decoded;
    sd = drift(sd, step);
  }
}

TEST(ContainerTest, ADeltaOfAnUnchangedModelIsSmallerThanItsFloatsStoredRaw) {
  // Right after a restore the live model is its checkpoint's reconstruction: the next delta's
  // symbols, levels, protected values and raw tensors all equal the parent's. Stored as they are,
  // the floats alone (~390 protected bf16 values, 64 f32 biases, the levels) would exceed the
  // whole delta: coded against the parent each costs about a bit.
  auto q = quantize(model(6), {}, {.bins = 8, .protect_fraction = 0.05});
  size_t raw_float_bytes = 0;
  for (const auto& t : q) raw_float_bytes += 4 * (t.raw.size() + t.levels.size()) + 2 * t.protected_bf16.size();
  const auto base = encode_container(header(1, -1), q, nullptr);
  const auto delta = encode_container(header(2, 1), q, &q);
  RecordProperty("delta_bytes", std::to_string(delta.size()));
  RecordProperty("raw_float_bytes", std::to_string(raw_float_bytes));
  EXPECT_GT(raw_float_bytes, 1000u);
  EXPECT_LT(delta.size(), raw_float_bytes);
  EXPECT_LT(delta.size() * 6, base.size());
  const auto back = decode_container(delta, &q);
  for (size_t i = 0; i < q.size(); ++i) EXPECT_EQ(back[i].protected_bf16, q[i].protected_bf16);
}

TEST(ContainerTest, EveryFlippedByteIsRefused) {
  auto q = quantize(model(4), {}, {});
  auto bytes = encode_container(header(7, -1), q, nullptr);
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto bad = bytes;
    bad[i] ^= std::byte{0x10};
    EXPECT_THROW(decode_container(bad, nullptr), ContainerError) << "byte " << i;
  }
  auto truncated = std::vector<std::byte>(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() / 2));
  EXPECT_THROW(decode_container(truncated, nullptr), ContainerError);
}

TEST(ContainerTest, AnotherFormatVersionIsRefusedWithAHint) {
  auto q = quantize(model(4), {}, {});
  auto bytes = encode_container(header(7, -1), q, nullptr);
  for (uint16_t version : {uint16_t{1}, uint16_t{99}}) {
    auto other = std::vector<std::byte>(bytes.begin(), bytes.end() - 4);  // without the CRC trailer
    std::memcpy(other.data() + 4, &version, sizeof version);               // after the magic
    append_crc32(other);
    try {
      decode_container(other, nullptr);
      ADD_FAILURE() << "version " << version << " was accepted";
    } catch (const ContainerError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(version == 1 ? "older build" : "newer build"));
    }
  }
}

TEST(ContainerTest, DeltaRefusesAMissingOrForeignParent) {
  auto base = quantize(model(5), {}, {});
  auto next = quantize(drift(model(5), 1), {}, {});
  auto bytes = encode_container(header(2, 1), next, &base);
  try {
    decode_container(bytes, nullptr);
    FAIL();
  } catch (const ContainerError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("missing"));
  }
  nn::StateDict other = {{"conv.weight", random_tensor({8, 4, 3, 3}, 9)}};
  auto foreign = quantize(other, {}, {});
  EXPECT_THROW(decode_container(bytes, &foreign), ContainerError);
  // Another checkpoint of the same model (another run's step 1): same names and shapes, other
  // contents — refused by the parent's fingerprint rather than decoded into wrong weights.
  auto sibling = quantize(model(8), {}, {});
  try {
    decode_container(bytes, &sibling);
    FAIL() << "a delta decoded against another parent";
  } catch (const ContainerError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("contents differ"));
  }
  EXPECT_EQ(decode_container(bytes, &base)[0].symbols, next[0].symbols);
  EXPECT_EQ(read_container_header(bytes).parent_step, 1);
}

}  // namespace
}  // namespace xp::compression
