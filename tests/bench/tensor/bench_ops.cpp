// Benchmark mode of the cross-backend op harness (tests/tensor/op_cases.h): every op case at
// a larger size, for each dtype, on the CPU and — where a GPU is visible — on CUDA, so the
// two backends are timed side by side in one run. Items/s counts output elements.
#include <benchmark/benchmark.h>

#include "tests/tensor/op_cases.h"

namespace {

using xp::tensor::Device;
using xp::tensor::DType;
using xp::tensor::Tensor;
using xp::tensor::testing::OpCase;

constexpr int64_t kScale = 8;  // sizes ×8 (element-wise ×64) over the test sizes

void run_case(benchmark::State& state, const OpCase& c, DType dtype, Device device) {
  auto inputs = xp::tensor::testing::make_inputs(c, dtype, 1, device);
  c.run(inputs);  // warm-up: the first cuBLAS call creates its handle and picks kernels
  int64_t items = 0;
  for (auto _ : state) {
    Tensor out = c.run(inputs);  // CUDA entry points synchronise before returning
    items += out.numel();
    benchmark::DoNotOptimize(out.raw_data());
  }
  state.SetItemsProcessed(items);
}

bool register_all() {
  bool cuda = xp::tensor::cuda_available();
  for (const auto& c : xp::tensor::testing::op_cases(kScale)) {
    for (DType t : {DType::kF32, DType::kBF16}) {
      for (Device d : {Device::kCPU, Device::kCUDA}) {
        if (d == Device::kCUDA && !cuda) continue;
        std::string name = c.name + "/" + xp::tensor::dtype_name(t) + "/" + xp::tensor::device_name(d);
        benchmark::RegisterBenchmark(name.c_str(), [c, t, d](benchmark::State& s) { run_case(s, c, t, d); })
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  return true;
}

const bool registered = register_all();

}  // namespace

BENCHMARK_MAIN();
