#include "serving/scheduler/time_model.h"

#include <Eigen/Dense>

#include "core/runtime/rng.h"

namespace xp::serving {
namespace {

std::array<double, 6> features(const BatchShape& b) {
  double prefill = 0, pctx = 0, dctx = 0;
  for (const auto& p : b.prefills) {
    prefill += static_cast<double>(p.chunk);
    pctx += static_cast<double>(p.context + p.chunk);
  }
  for (int64_t c : b.decode_contexts) dctx += static_cast<double>(c);
  auto decodes = static_cast<double>(b.decode_contexts.size());
  return {1.0, prefill + decodes, prefill, decodes, dctx, pctx};
}

constexpr int64_t kRegimeSplit = 512;  // total tokens: memory-bound below, compute-bound above

}  // namespace

int64_t BatchShape::num_tokens() const {
  int64_t n = static_cast<int64_t>(decode_contexts.size());
  for (const auto& p : prefills) n += p.chunk;
  return n;
}

BatchShape BatchShape::of(const Batch& b) {
  BatchShape s;
  for (const auto& it : b.items) {
    if (it.is_prefill) s.prefills.push_back({it.num_tokens, it.context});
    else s.decode_contexts.push_back(it.context);
  }
  return s;
}

double LinearIterationModel::predict_s(const BatchShape& b) const {
  auto f = features(b);
  const auto& c = b.num_tokens() <= kRegimeSplit ? small_ : large_;
  double t = 0;
  for (size_t i = 0; i < f.size(); ++i) t += c[i] * f[i];
  return std::max(t, 0.0);
}

LinearIterationModel LinearIterationModel::fit(const StageTimer& timer, int64_t stages, int64_t max_context) {
  // Batches like the ones a Sarathi-style scheduler forms: up to 128 decodes and up to two
  // prefill chunks, at contexts across the model's range. Seeded: the fit is reproducible.
  runtime::RngStream rng(0x5eed, 0);
  std::vector<std::pair<BatchShape, double>> small, large;
  for (int i = 0; i < 4000; ++i) {
    BatchShape b;
    auto decodes = static_cast<int64_t>(rng.below(129));
    for (int64_t d = 0; d < decodes; ++d) b.decode_contexts.push_back(1 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_context))));
    auto prefills = static_cast<int64_t>(rng.below(3));
    for (int64_t p = 0; p < prefills; ++p)
      b.prefills.push_back({1 + static_cast<int64_t>(rng.below(2560)), static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_context)))});
    if (b.num_tokens() == 0) continue;
    double t = 0;
    for (int64_t s = 0; s < stages; ++s) t += timer.stage_time_s(b, s);
    (b.num_tokens() <= kRegimeSplit ? small : large).emplace_back(std::move(b), t);
  }
  auto solve = [](const std::vector<std::pair<BatchShape, double>>& rows) {
    Eigen::MatrixXd A(static_cast<Eigen::Index>(rows.size()), 6);
    Eigen::VectorXd y(static_cast<Eigen::Index>(rows.size()));
    for (size_t r = 0; r < rows.size(); ++r) {
      auto f = features(rows[r].first);
      for (int c = 0; c < 6; ++c) A(static_cast<Eigen::Index>(r), c) = f[static_cast<size_t>(c)];
      y(static_cast<Eigen::Index>(r)) = rows[r].second;
    }
    Eigen::VectorXd x = A.colPivHouseholderQr().solve(y);
    Coefficients c{};
    for (int i = 0; i < 6; ++i) c[static_cast<size_t>(i)] = x(i);
    return c;
  };
  return LinearIterationModel(solve(small), solve(large));
}

}  // namespace xp::serving
