// DynaQuant codec throughput, for bench/dynaquant_codec.sh: a synthetic checkpoint chain of
// PARAMS fp32 weights (linear-layer tensors of Gaussian weights drifting a little per step),
// with a gradient EMA per tensor, encoded with a fixed configuration (8 bins, 10% pruned, 0.5% protected; the search's cost is
// model evaluations, reported separately) and decoded, one thread, against zstd level 3 on the
// same bytes. Also the guided search's evaluation count against exhaustive search on random
// monotone cubes. Prints one JSON object.
//   bench_codec [PARAMS] [CHECKPOINTS]
#include <chrono>
#include <cstdio>
#include <string>

#include "compression/codec.h"
#include "compression/compressor.h"
#include "core/runtime/rng.h"

using namespace xp;
using namespace xp::compression;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

nn::StateDict synthetic(int64_t params) {
  nn::StateDict sd;
  const int64_t cols = 4096, rows_per = 4096;
  runtime::RngStream rng(1, 1);
  for (int64_t left = params, i = 0; left > 0; ++i) {
    const int64_t rows = std::min(rows_per, (left + cols - 1) / cols);
    nn::Tensor t = nn::Tensor::empty({rows, cols}, tensor::DType::kF32);
    for (int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = static_cast<float>(0.02 * rng.normal());
    sd.emplace_back("layer" + std::to_string(i) + ".weight", t);
    left -= t.numel();
  }
  return sd;
}

void drift(nn::StateDict& sd, uint64_t step) {
  runtime::RngStream rng(2, step);
  for (auto& [name, t] : sd)
    for (int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] += static_cast<float>(0.0005 * rng.normal());
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t params = argc > 1 ? std::stoll(argv[1]) : 100'000'000;
  const int checkpoints = argc > 2 ? std::stoi(argv[2]) : 4;
  nn::StateDict sd = synthetic(params);
  const double mb = static_cast<double>(fp32_bytes(sd)) / 1e6;
  // A gradient EMA per tensor, as the training loop keeps: sensitivity |EMA·w| is scored too.
  std::map<std::string, std::vector<float>> ema;
  {
    runtime::RngStream rng(3, 0);
    for (const auto& [name, t] : sd) {
      auto& e = ema[name];
      e.resize(static_cast<size_t>(t.numel()));
      for (float& v : e) v = static_cast<float>(0.001 * rng.normal());
    }
  }
  const QuantConfig config{.bins = 8, .prune_fraction = 0.1, .protect_fraction = 0.005};
  // The codec itself: quantize + encode, decode + dequantize. (DynaQuantCompressor::compress adds
  // the model evaluations, which are the search's cost and reported as its evaluation count.)
  double quantize_s = 0, encode_s = 0, decode_s = 0, dequantize_s = 0, decode_into_s = 0, zstd_encode_s = 0, zstd_decode_s = 0;
  size_t dq_bytes = 0, zstd_bytes = 0;
  std::vector<QuantizedTensor> parent, restored_parent, restore_parent_again;
  nn::StateDict model;  // the tensors a restore writes into
  for (const auto& [name, t] : sd) model.emplace_back(name, t.clone());
  auto zstd = make_codec("zstd", {}, [](const nn::StateDict&) { return 1.0; });
  for (int c = 0; c < checkpoints; ++c) {
    auto t0 = Clock::now();
    std::vector<QuantizedTensor> q = quantize(sd, ema, config);
    quantize_s += seconds_since(t0);
    t0 = Clock::now();
    ContainerHeader h{.step = static_cast<uint64_t>(c), .parent_step = c ? c - 1 : -1, .config = config};
    auto bytes = encode_container(h, q, c ? &parent : nullptr);
    encode_s += seconds_since(t0);
    parent = std::move(q);
    dq_bytes += bytes.size();
    t0 = Clock::now();
    restored_parent = decode_container(bytes, c ? &restored_parent : nullptr);
    decode_s += seconds_since(t0);
    t0 = Clock::now();
    nn::StateDict restored = dequantize(restored_parent);
    dequantize_s += seconds_since(t0);
    // A restore writes into the model's own tensors: the same decode without fresh memory.
    t0 = Clock::now();
    auto again = decode_container(bytes, c ? &restore_parent_again : nullptr);
    dequantize_into(again, model);
    decode_into_s += seconds_since(t0);
    restore_parent_again = std::move(again);
    t0 = Clock::now();
    auto z = zstd->encode(0, sd, {}).bytes;
    zstd_encode_s += seconds_since(t0);
    zstd_bytes += z.size();
    t0 = Clock::now();
    auto back = zstd->decode({z});
    zstd_decode_s += seconds_since(t0);
    drift(sd, static_cast<uint64_t>(c));
  }
  // Search cost on random monotone cubes (as in tests/compression/test_search.cpp).
  ConfigCube cube;
  int guided = 0, exhaustive = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    runtime::RngStream rng(31, i);
    const double w0 = rng.uniform(), w1 = rng.uniform(), w2 = rng.uniform(), bonus = rng.uniform() - 0.5, th = rng.uniform() * 8;
    SearchOracle oracle{[](const CubePoint& p) { return 1000.0 / ((1 + p.index[0]) * (1.5 + p.index[1]) * (1.2 + p.index[2])); },
                        [=](const CubePoint& p) {
                          return w0 * p.index[0] + w1 * p.index[1] + w2 * p.index[2] +
                                     bonus * (p.metric == PruneMetric::kSensitivity) >= th;
                        }};
    guided += guided_search(cube, oracle).evaluations;
    exhaustive += exhaustive_search(cube, oracle).evaluations;
  }
  const double n = checkpoints;
  std::printf("{\"params\": %lld, \"checkpoints\": %d, \"encode_mb_s\": %.1f, \"decode_mb_s\": %.1f, "
              "\"decode_into_mb_s\": %.1f, \"quantize_share\": %.3f, \"dequantize_share\": %.3f, "
              "\"zstd_encode_mb_s\": %.1f, \"zstd_decode_mb_s\": %.1f, \"ratio\": %.2f, \"zstd_ratio\": %.3f, "
              "\"guided_evaluations\": %.1f, \"exhaustive_evaluations\": %.1f}\n",
              static_cast<long long>(params), checkpoints, mb * n / (quantize_s + encode_s), mb * n / (decode_s + dequantize_s), mb * n / decode_into_s,
              quantize_s / (quantize_s + encode_s), dequantize_s / (decode_s + dequantize_s), mb * n / zstd_encode_s,
              mb * n / zstd_decode_s, mb * n / static_cast<double>(dq_bytes) * 1e6, mb * n / static_cast<double>(zstd_bytes) * 1e6,
              guided / 100.0, exhaustive / 100.0);
  return 0;
}
