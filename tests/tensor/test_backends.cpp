// Every op on every backend: CPU against a double-precision reference, CUDA against CPU
// (label `cuda` tests skip where no GPU is visible). Tolerances per dtype: tolerance() in
// op_cases.cpp (f32 1e-4, f16 2e-2 abs / 1e-2 rel, bf16 1e-1 abs / 2e-2 rel).
#include <gtest/gtest.h>

#include "tests/tensor/op_cases.h"

namespace xp::tensor::testing {
namespace {

struct Param {
  std::string op;
  DType dtype;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.op << "/" << dtype_name(p.dtype); }

std::vector<Param> all_params() {
  std::vector<Param> out;
  for (const auto& c : op_cases())
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) out.push_back({c.name, t});
  return out;
}

std::string param_name(const ::testing::TestParamInfo<Param>& p) { return p.param.op + "_" + dtype_name(p.param.dtype); }

OpCase find_case(const std::string& name) {
  for (auto& c : op_cases())
    if (c.name == name) return c;
  throw std::logic_error("no op case " + name);
}

class CpuBackend : public ::testing::TestWithParam<Param> {};
class CudaBackend : public ::testing::TestWithParam<Param> {};

}  // namespace

TEST_P(CpuBackend, MatchesDoubleReference) {
  OpCase c = find_case(GetParam().op);
  auto inputs = make_inputs(c, GetParam().dtype, 7);
  std::vector<std::vector<double>> values;
  for (const auto& t : inputs) values.push_back(t.to_vector());
  std::vector<double> want = c.reference(values);
  Tensor got = c.run(inputs);
  EXPECT_EQ(got.device(), Device::kCPU);
  std::vector<double> g = got.to_vector();
  ASSERT_EQ(g.size(), want.size());
  int64_t bad = first_mismatch(g, want, tolerance(GetParam().dtype));
  EXPECT_EQ(bad, -1) << "element " << bad << ": got " << g[static_cast<size_t>(bad)] << ", want "
                     << want[static_cast<size_t>(bad)];
}

TEST_P(CudaBackend, MatchesCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  OpCase c = find_case(GetParam().op);
  auto cpu_in = make_inputs(c, GetParam().dtype, 11);
  std::vector<Tensor> gpu_in;
  for (const auto& t : cpu_in) gpu_in.push_back(t.to(Device::kCUDA));
  Tensor gpu = c.run(gpu_in);
  EXPECT_EQ(gpu.device(), Device::kCUDA);
  std::vector<double> g = gpu.to_vector(), want = c.run(cpu_in).to_vector();
  ASSERT_EQ(g.size(), want.size());
  int64_t bad = first_mismatch(g, want, tolerance(GetParam().dtype));
  EXPECT_EQ(bad, -1) << "element " << bad << ": cuda " << g[static_cast<size_t>(bad)] << ", cpu "
                     << want[static_cast<size_t>(bad)];
}

INSTANTIATE_TEST_SUITE_P(Ops, CpuBackend, ::testing::ValuesIn(all_params()), param_name);
INSTANTIATE_TEST_SUITE_P(Ops, CudaBackend, ::testing::ValuesIn(all_params()), param_name);

TEST(CudaTensor, RoundTripAndCastMatchCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible";
  Tensor a = Tensor::from_values({1.0, -2.5, 1.00390625, 65504.0, 3.14159}, {5});
  for (DType t : {DType::kF16, DType::kBF16, DType::kI32}) {
    EXPECT_EQ(a.to(Device::kCUDA).to(t).to_vector(), a.to(t).to_vector()) << dtype_name(t);
  }
  Tensor full = Tensor::full({3, 2}, 1.5, DType::kBF16, Device::kCUDA);
  EXPECT_EQ(full.to_vector(), std::vector<double>(6, 1.5));
  Tensor m = Tensor::from_values({1, 2, 3, 4, 5, 6}, {2, 3}).to(Device::kCUDA);
  EXPECT_EQ(m.transpose(0, 1).contiguous().to_vector(), (std::vector<double>{1, 4, 2, 5, 3, 6}));
}

}  // namespace xp::tensor::testing
