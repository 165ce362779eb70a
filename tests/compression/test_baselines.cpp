// The checkpoint codecs behind the dynaquant experiment (docs/dynaquant.md): every one
// decodes a chain of drifting checkpoints back to weights close to the originals, the lossless
// ones exactly, and refuses a truncated encoding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "compression/codec.h"
#include "core/runtime/rng.h"

namespace xp::compression {
namespace {

nn::StateDict weights(uint64_t step) {
  nn::StateDict sd;
  runtime::RngStream rng(41, 1), drift(42, step);
  for (const char* name : {"0.weight", "0.bias", "1.weight"}) {
    nn::Tensor t = nn::Tensor::empty(std::string(name) == "0.bias" ? tensor::Shape{64} : tensor::Shape{64, 48}, tensor::DType::kF32);
    for (int64_t i = 0; i < t.numel(); ++i)
      t.data<float>()[i] = static_cast<float>(0.1 * rng.normal() + 0.001 * static_cast<double>(step) * drift.normal());
    sd.emplace_back(name, t);
  }
  return sd;
}

double max_error(const nn::StateDict& a, const nn::StateDict& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t k = 0; k < a[i].second.numel(); ++k)
      m = std::max(m, std::fabs(static_cast<double>(a[i].second.data<float>()[k]) - b[i].second.data<float>()[k]));
  return m;
}

TEST(CodecTest, EveryCodecDecodesItsChainCloseToTheWeights) {
  // Quality = minus the largest deviation from the step's weights, so ε bounds the error.
  nn::StateDict current;
  auto quality = [&](const nn::StateDict& w) { return 1.0 - max_error(w, current); };
  CompressorOptions o;
  o.epsilon = 0.02;
  for (const std::string& method : codec_names()) {
    auto codec = make_codec(method, o, quality);
    std::vector<std::vector<std::byte>> chain;
    for (uint64_t step = 0; step < 5; ++step) {
      current = weights(step);
      auto e = codec->encode(step, current, {});
      if (e.self_contained) chain.clear();
      chain.push_back(e.bytes);
      const double err = max_error(codec->decode(chain), current);
      if (method == "none" || method == "zstd") EXPECT_EQ(err, 0.0) << method;
      // LC keeps one value per (sign, binary exponent) bucket: up to half an octave off by design.
      else EXPECT_LT(err, method == "uniform8_zstd" ? 0.01 : method == "lc" ? 0.2 : 0.03) << method << " step " << step;
    }
    auto truncated = chain.back();
    truncated.resize(truncated.size() / 2);
    chain.back() = truncated;
    EXPECT_ANY_THROW(codec->decode(chain)) << method;
  }
}

// The quantizing baselines search the same level counts DynaQuant does (down to 2), so where
// a few levels meet the quality floor they choose a few, as DynaQuant would; each reports its
// choice (they once could not go below 8 while DynaQuant chose 4).
TEST(CodecTest, QuantizingBaselinesChooseFewerThanEightLevelsWhenTheyMeetTheFloor) {
  auto indifferent = [](const nn::StateDict&) { return 1.0; };  // any quantization meets the floor
  CompressorOptions o;
  o.epsilon = 0.05;
  for (const std::string method : {"cnr", "qd"}) {
    auto codec = make_codec(method, o, indifferent);
    EXPECT_EQ(codec->encode(0, weights(0), {}).levels, 2) << method;
  }
  auto exacting = [](const nn::StateDict& w) {  // the floor needs the weights to within 0.01
    return 1.0 - 10 * max_error(w, weights(0));
  };
  auto cnr = make_codec("cnr", o, exacting);
  const int levels = cnr->encode(0, weights(0), {}).levels;
  EXPECT_GT(levels, 2);
  EXPECT_LE(levels, 256);
  EXPECT_EQ(make_codec("zstd", o, indifferent)->encode(0, weights(0), {}).levels, -1);  // not a quantizer
}

TEST(CnrQuantizedTest, EachRowTakesAtMostBinsValuesAndMoreBinsErrLess) {
  const nn::StateDict w = weights(0);
  double previous = INFINITY;
  for (int bins : {2, 5, 16, 256}) {
    const nn::StateDict q = cnr_quantized(w, bins);
    ASSERT_EQ(q.size(), w.size());
    EXPECT_EQ(q[1].second.to_vector(), w[1].second.to_vector()) << "1-D tensors stay fp32";
    const nn::Tensor& t = q[0].second;
    for (int64_t r = 0; r < t.size(0); ++r) {
      std::vector<float> row(t.data<float>() + r * t.size(1), t.data<float>() + (r + 1) * t.size(1));
      std::sort(row.begin(), row.end());
      EXPECT_LE(std::unique(row.begin(), row.end()) - row.begin(), bins) << "row " << r;
    }
    const double err = max_error(w, q);
    EXPECT_LT(err, previous) << bins << " bins";
    previous = err;
  }
  EXPECT_LT(previous, 0.01);  // 256 levels over a ±0.4 row
}


TEST(CodecTest, AnUnregisteredMethodIsRefusedNamingTheRegisteredOnes) {
  try {
    make_codec("gzip", {}, [](const nn::StateDict&) { return 1.0; });
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("gzip"), std::string::npos);
    for (const auto& c : codec_types()) EXPECT_NE(std::string(e.what()).find(c.name), std::string::npos) << c.name;
  }
}


// A codec added from one file (here, a test's) is found by name like the shipped ones.
class RawFloats final : public CheckpointCodec {
 public:
  EncodedCheckpoint encode(uint64_t, const nn::StateDict& w, const std::map<std::string, std::vector<float>>&) override {
    jobs::ByteWriter out;
    nn::write_state_dict(out, w);
    return {out.take(), true, {}};
  }
  nn::StateDict decode(const std::vector<std::vector<std::byte>>& chain) override {
    jobs::ByteReader in(chain.back());
    return nn::read_state_dict(in);
  }
};

TEST(CodecTest, ACodecRegisteredFromItsOwnFileIsMadeByName) {
  register_codec({"raw_floats", "the state dict's bytes", [](const CompressorOptions&, CheckpointCodec::Quality) {
                    return std::unique_ptr<CheckpointCodec>(std::make_unique<RawFloats>());
                  }});
  EXPECT_THROW(register_codec({"zstd", "taken", nullptr}), std::invalid_argument);
  const auto names = codec_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "raw_floats"), names.end());
  auto codec = make_codec("raw_floats", {}, [](const nn::StateDict&) { return 1.0; });
  EXPECT_EQ(max_error(codec->decode({codec->encode(0, weights(3), {}).bytes}), weights(3)), 0.0);
}

}  // namespace
}  // namespace xp::compression
