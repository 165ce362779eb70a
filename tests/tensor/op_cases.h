// The cross-backend op harness (ggml's test-backend-ops pattern): every tensor op as a case
// with a naive double-precision reference. Tests check CPU against the reference and CUDA
// against CPU; the benchmark runs the same cases at larger sizes on every backend present.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor/ops.h"
#include "core/tensor/tensor.h"

namespace xp::tensor::testing {

struct OpCase {
  std::string name;
  std::vector<Shape> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> run;
  // Reference on the (dtype-rounded) inputs as doubles, row-major; returns the output values.
  std::function<std::vector<double>(const std::vector<std::vector<double>>&)> reference;
};

// `scale` multiplies the problem sizes (1 for tests; larger for benchmarks).
std::vector<OpCase> op_cases(int64_t scale = 1);
// Normal(0,1) inputs rounded to `dtype`, reproducible from `seed`.
std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, uint64_t seed, Device device = Device::kCPU);

struct Tolerance {
  double atol, rtol;
};
Tolerance tolerance(DType dtype);
// Index of the first element outside |a-b| <= atol + rtol*|b|, or -1 when all are within.
int64_t first_mismatch(const std::vector<double>& a, const std::vector<double>& b, Tolerance tol);

}  // namespace xp::tensor::testing
