// What time slicing costs, and what reorganising it could save (docs/parallelism.md, issue 25's
// "L = 8 time-sliced costs < 3%"): one training step's matrix products of the 784-1024-1024-10
// ReLU MLP with Eigen as the layers run them (single-threaded, DataParallel's fixed blocking),
// over a batch of B rows split into L logical ranks' shards, organised five ways:
//   Plain/B             one batch, no ranks: the baseline.
//   Sliced/B/L          as DataParallel runs L ranks on one worker today: every shard its own
//                       forward and backward, its weight gradient (a full matrix) scaled onto a
//                       running sum.
//   SlicedDeferred/B/L  the same shards' forward and input gradients, each shard's weight-gradient
//                       product deferred to the end and summed in rank order tile by tile of
//                       output rows, in cache (the same bits as Sliced).
//   Lockstep/B/L        every shard through a layer before the next, each block of 120 weight rows
//                       (or columns, for input gradients) used by every shard's product while it is
//                       in cache (blocks of a multiple of 24 rows give Eigen's bits: the same bits
//                       as Sliced), the weight gradients as in SlicedDeferred.
//   BatchedTiled/B/L    forward and input gradients once for the whole batch (rows independent:
//                       the bits of a shard then depend on where its rows sit, see
//                       docs/parallelism.md), the weight gradients as in SlicedDeferred.
// Run with --benchmark_min_time=2 --benchmark_enable_random_interleaving=true
// --benchmark_repetitions=4; compare within one run.
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include <algorithm>
#include <utility>
#include <vector>

namespace {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Rows = decltype(std::declval<const Matrix&>().middleRows(0, 0));

struct Mlp {
  std::vector<Matrix> weights, grads;
  Matrix scratch;
  Mlp() {
    const int dims[] = {784, 1024, 1024, 10};
    for (int l = 0; l < 3; ++l) {
      weights.push_back(Matrix::Random(dims[l + 1], dims[l]) * 0.03f);
      grads.push_back(Matrix::Zero(dims[l + 1], dims[l]));
    }
  }
  size_t layers() const { return weights.size(); }
  // Activations of every layer for `x` (its input first).
  std::vector<Matrix> forward(const Matrix& x) const {
    std::vector<Matrix> acts{x};
    for (size_t l = 0; l < layers(); ++l) {
      Matrix y = acts.back() * weights[l].transpose();
      if (l + 1 < layers()) y = y.cwiseMax(0.0f);
      acts.push_back(std::move(y));
    }
    return acts;
  }
  // The gradient at layer l's input, from its output's gradient `gy` (ReLU below it).
  Matrix input_grad(size_t l, const Matrix& gy, const std::vector<Matrix>& acts) const {
    Matrix gx = gy * weights[l];
    return gx.cwiseProduct((acts[l].array() > 0.0f).cast<float>().matrix());
  }
  // Every layer's output gradient for the activations `acts` (a stand-in loss gradient on top).
  std::vector<Matrix> output_grads(const std::vector<Matrix>& acts) const {
    std::vector<Matrix> gys(layers());
    gys.back() = acts.back() * 0.01f;
    for (size_t l = layers() - 1; l > 0; --l) gys[l - 1] = input_grad(l, gys[l], acts);
    return gys;
  }
  // grads[l] = Σ_r scale · (gy_r^T x_r) in rank order, where gy(r), x(r) are rank r's rows of
  // layer l's output gradient and input, formed tile by tile of output rows (each tile's terms
  // while it is in cache; tiles of a multiple of 4 rows give the whole product's bits).
  template <class Gy, class X>
  void sum_weight_grads(size_t l, int64_t ranks, float scale, Gy gy, X x) {
    constexpr int64_t kTile = 128;  // 128 × 1024 floats, 512 KB: of 16–256 rows, the fastest here
    const int64_t out = weights[l].rows();
    for (int64_t t = 0; t < out; t += kTile) {
      const int64_t n = std::min(kTile, out - t);
      auto g = grads[l].middleRows(t, n);
      for (int64_t r = 0; r < ranks; ++r) {
        scratch.setZero(n, weights[l].cols());
        scratch.noalias() += gy(r).middleCols(t, n).transpose() * x(r);
        if (r == 0) g = scratch * scale;
        else g += scratch * scale;
      }
    }
  }
};

void fix_blocking() {  // as DataParallel does
  Eigen::setNbThreads(1);
  Eigen::setCpuCacheSizes(32 * 1024, 1024 * 1024, 16 * 1024 * 1024);
}

struct Setup {
  Mlp mlp;
  int64_t ranks, rows;
  float scale;
  Matrix x;
  explicit Setup(const benchmark::State& state)
      : ranks(state.range(1)), rows(state.range(0) / ranks), scale(1.0f / static_cast<float>(ranks)),
        x(Matrix::Random(state.range(0), 784)) {
    fix_blocking();
  }
  // Every layer's weight gradient from each rank's own output gradients and activations.
  void sum_weight_grads(const std::vector<std::vector<Matrix>>& gys, const std::vector<std::vector<Matrix>>& acts) {
    for (size_t l = 0; l < mlp.layers(); ++l)
      mlp.sum_weight_grads(l, ranks, scale, [&](int64_t r) -> const Matrix& { return gys[static_cast<size_t>(r)][l]; },
                           [&](int64_t r) -> const Matrix& { return acts[static_cast<size_t>(r)][l]; });
  }
};

void Plain(benchmark::State& state) {
  fix_blocking();
  Mlp mlp;
  const Matrix x = Matrix::Random(state.range(0), 784);
  for (auto _ : state) {
    const std::vector<Matrix> acts = mlp.forward(x);
    const std::vector<Matrix> gys = mlp.output_grads(acts);
    for (size_t l = 0; l < mlp.layers(); ++l) {
      mlp.grads[l].setZero();
      mlp.grads[l].noalias() += gys[l].transpose() * acts[l];
    }
    benchmark::DoNotOptimize(mlp.grads.back().data());
  }
}

void Sliced(benchmark::State& state) {
  Setup s(state);
  for (auto _ : state) {
    for (int64_t r = 0; r < s.ranks; ++r) {
      const std::vector<Matrix> acts = s.mlp.forward(s.x.middleRows(r * s.rows, s.rows));
      const std::vector<Matrix> gys = s.mlp.output_grads(acts);
      for (size_t l = 0; l < s.mlp.layers(); ++l) {
        s.mlp.scratch.setZero(s.mlp.weights[l].rows(), s.mlp.weights[l].cols());
        s.mlp.scratch.noalias() += gys[l].transpose() * acts[l];
        if (r == 0) s.mlp.grads[l] = s.mlp.scratch * s.scale;
        else s.mlp.grads[l] += s.mlp.scratch * s.scale;
      }
    }
    benchmark::DoNotOptimize(s.mlp.grads.back().data());
  }
}

void SlicedDeferred(benchmark::State& state) {
  Setup s(state);
  std::vector<std::vector<Matrix>> acts(static_cast<size_t>(s.ranks)), gys(acts.size());
  for (auto _ : state) {
    for (size_t r = 0; r < acts.size(); ++r) {
      acts[r] = s.mlp.forward(s.x.middleRows(static_cast<int64_t>(r) * s.rows, s.rows));
      gys[r] = s.mlp.output_grads(acts[r]);
    }
    s.sum_weight_grads(gys, acts);
    benchmark::DoNotOptimize(s.mlp.grads.back().data());
  }
}

void Lockstep(benchmark::State& state) {
  Setup s(state);
  constexpr int64_t kBlock = 120;  // weight rows (columns) per block: a multiple of 24
  const auto ranks = static_cast<size_t>(s.ranks);
  std::vector<std::vector<Matrix>> acts(ranks), gys(ranks);
  for (auto _ : state) {
    for (size_t r = 0; r < ranks; ++r) acts[r] = {s.x.middleRows(static_cast<int64_t>(r) * s.rows, s.rows)};
    for (size_t l = 0; l < s.mlp.layers(); ++l) {
      const Matrix& w = s.mlp.weights[l];
      for (size_t r = 0; r < ranks; ++r) acts[r].emplace_back(s.rows, w.rows());
      for (int64_t b = 0; b < w.rows(); b += kBlock) {
        const int64_t n = std::min(kBlock, w.rows() - b);
        for (size_t r = 0; r < ranks; ++r) acts[r][l + 1].middleCols(b, n).noalias() = acts[r][l] * w.middleRows(b, n).transpose();
      }
      if (l + 1 < s.mlp.layers())
        for (size_t r = 0; r < ranks; ++r) acts[r][l + 1] = acts[r][l + 1].cwiseMax(0.0f);
    }
    for (size_t r = 0; r < ranks; ++r) {
      gys[r].assign(s.mlp.layers(), Matrix());
      gys[r].back() = acts[r].back() * 0.01f;
    }
    for (size_t l = s.mlp.layers() - 1; l > 0; --l) {
      const Matrix& w = s.mlp.weights[l];
      for (size_t r = 0; r < ranks; ++r) gys[r][l - 1].resize(s.rows, w.cols());
      for (int64_t b = 0; b < w.cols(); b += kBlock) {
        const int64_t n = std::min(kBlock, w.cols() - b);
        for (size_t r = 0; r < ranks; ++r) gys[r][l - 1].middleCols(b, n).noalias() = gys[r][l] * w.middleCols(b, n);
      }
      for (size_t r = 0; r < ranks; ++r)
        gys[r][l - 1] = gys[r][l - 1].cwiseProduct((acts[r][l].array() > 0.0f).cast<float>().matrix());
    }
    s.sum_weight_grads(gys, acts);
    benchmark::DoNotOptimize(s.mlp.grads.back().data());
  }
}

void BatchedTiled(benchmark::State& state) {
  Setup s(state);
  for (auto _ : state) {
    const std::vector<Matrix> acts = s.mlp.forward(s.x);
    const std::vector<Matrix> gys = s.mlp.output_grads(acts);
    for (size_t l = 0; l < s.mlp.layers(); ++l)
      s.mlp.sum_weight_grads(l, s.ranks, s.scale, [&](int64_t r) -> Rows { return gys[l].middleRows(r * s.rows, s.rows); },
                             [&](int64_t r) -> Rows { return acts[l].middleRows(r * s.rows, s.rows); });
    benchmark::DoNotOptimize(s.mlp.grads.back().data());
  }
}

}  // namespace

BENCHMARK(Plain)->Arg(200)->Arg(1600)->Unit(benchmark::kMillisecond);
BENCHMARK(Sliced)->Args({200, 8})->Args({200, 2})->Args({1600, 8})->Unit(benchmark::kMillisecond);
BENCHMARK(SlicedDeferred)->Args({200, 8})->Args({200, 2})->Unit(benchmark::kMillisecond);
BENCHMARK(Lockstep)->Args({200, 8})->Args({200, 2})->Unit(benchmark::kMillisecond);
BENCHMARK(BatchedTiled)->Args({200, 8})->Args({1600, 8})->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
