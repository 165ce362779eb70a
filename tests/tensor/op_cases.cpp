#include "tests/tensor/op_cases.h"

#include <cmath>

namespace xp::tensor::testing {
namespace {

using Values = std::vector<std::vector<double>>;

std::vector<double> elementwise(const Values& in, double (*f)(double, double)) {
  std::vector<double> out(in[0].size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = f(in[0][i], in.size() > 1 ? in[1][i] : 0.0);
  return out;
}

// Reference C[m,n] = A[m,k] B[k,n]; `a_transposed`: A's values are stored as [k,m].
std::vector<double> matmul_ref(const std::vector<double>& a, const std::vector<double>& b, int64_t m, int64_t k,
                               int64_t n, bool a_transposed) {
  std::vector<double> c(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p)
        s += a[static_cast<size_t>(a_transposed ? p * m + i : i * k + p)] * b[static_cast<size_t>(p * n + j)];
      c[static_cast<size_t>(i * n + j)] = s;
    }
  return c;
}

}  // namespace

std::vector<OpCase> op_cases(int64_t s) {
  int64_t n = 1000 * s * s, m = 64 * s, k = 48 * s, p = 32 * s;
  std::vector<OpCase> cases;
  cases.push_back({"add", {{n}}, nullptr, nullptr});
  cases.back().inputs = {{n}, {n}};
  cases.back().run = [](const std::vector<Tensor>& x) { return add(x[0], x[1]); };
  cases.back().reference = [](const Values& v) { return elementwise(v, [](double a, double b) { return a + b; }); };
  cases.push_back({"sub", {{n}, {n}}, [](const std::vector<Tensor>& x) { return sub(x[0], x[1]); },
                   [](const Values& v) { return elementwise(v, [](double a, double b) { return a - b; }); }});
  cases.push_back({"mul", {{n}, {n}}, [](const std::vector<Tensor>& x) { return mul(x[0], x[1]); },
                   [](const Values& v) { return elementwise(v, [](double a, double b) { return a * b; }); }});
  cases.push_back({"scale", {{n}}, [](const std::vector<Tensor>& x) { return scale(x[0], 0.37); },
                   [](const Values& v) { return elementwise(v, [](double a, double) { return a * 0.37; }); }});
  cases.push_back({"relu", {{n}}, [](const std::vector<Tensor>& x) { return relu(x[0]); },
                   [](const Values& v) { return elementwise(v, [](double a, double) { return a > 0 ? a : 0.0; }); }});
  cases.push_back({"matmul", {{m, k}, {k, p}}, [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
                   [m, k, p](const Values& v) { return matmul_ref(v[0], v[1], m, k, p, false); }});
  cases.push_back({"matmul_transposed_a", {{k, m}, {k, p}},
                   [](const std::vector<Tensor>& x) { return matmul(x[0].transpose(0, 1), x[1]); },
                   [m, k, p](const Values& v) { return matmul_ref(v[0], v[1], m, k, p, true); }});
  cases.push_back({"sum", {{n}}, [](const std::vector<Tensor>& x) { return sum(x[0]); },
                   [](const Values& v) {
                     double t = 0;
                     for (double x : v[0]) t += x;
                     return std::vector<double>{t};
                   }});
  cases.push_back({"sum_rows", {{m, p}}, [](const std::vector<Tensor>& x) { return sum_rows(x[0]); },
                   [m, p](const Values& v) {
                     std::vector<double> out(static_cast<size_t>(p), 0.0);
                     for (int64_t r = 0; r < m; ++r)
                       for (int64_t c = 0; c < p; ++c) out[static_cast<size_t>(c)] += v[0][static_cast<size_t>(r * p + c)];
                     return out;
                   }});
  return cases;
}

std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, uint64_t seed, Device device) {
  std::vector<Tensor> out;
  runtime::RngStream rng(seed, 0);
  for (const auto& shape : c.inputs) {
    Tensor t = Tensor::empty(shape, DType::kF32);
    fill_normal(t, rng);
    out.push_back(t.to(dtype).to(device));
  }
  return out;
}

Tolerance tolerance(DType dtype) {
  switch (dtype) {
    case DType::kF32: return {1e-4, 1e-4};
    case DType::kF16: return {2e-2, 1e-2};    // 11-bit mantissa, one rounding of the f32 result
    case DType::kBF16: return {1e-1, 2e-2};   // 8-bit mantissa
    default: return {0, 0};
  }
}

int64_t first_mismatch(const std::vector<double>& a, const std::vector<double>& b, Tolerance tol) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::fabs(a[i] - b[i]) <= tol.atol + tol.rtol * std::fabs(b[i]))) return static_cast<int64_t>(i);
  return -1;
}

}  // namespace xp::tensor::testing
