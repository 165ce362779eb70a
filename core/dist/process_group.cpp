#include "core/dist/process_group.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace xp::dist {

namespace {

// All-gather, then every rank adds the contributions in rank order: the same bits everywhere.
template <class T, class Op>
void all_reduce(ProcessGroup& g, std::span<T> values, Op op) {
  if (g.size() == 1 || values.empty()) return;
  std::vector<T> parts = g.all_gather(std::span<const T>(values.data(), values.size()));
  const size_t n = values.size();
  std::copy_n(parts.begin(), n, values.begin());
  for (int r = 1; r < g.size(); ++r)
    for (size_t i = 0; i < n; ++i) values[i] = op(values[i], parts[static_cast<size_t>(r) * n + i]);
}

}  // namespace

void ProcessGroup::all_reduce_sum(std::span<float> v) { all_reduce(*this, v, [](float a, float b) { return a + b; }); }
void ProcessGroup::all_reduce_sum(std::span<double> v) { all_reduce(*this, v, [](double a, double b) { return a + b; }); }
void ProcessGroup::all_reduce_max(std::span<double> v) {
  all_reduce(*this, v, [](double a, double b) { return std::max(a, b); });
}

void ProcessGroup::barrier() {
  const std::byte token{0};
  std::vector<std::byte> all(static_cast<size_t>(size()));
  all_gather_bytes(std::span<const std::byte>(&token, 1), all);
}

std::string describe(const ProcessGroup& g) { return fmt::format("group '{}', rank {} of {}", g.name(), g.rank(), g.size()); }

std::string list_ranks(const std::vector<int>& ranks) {
  return fmt::format("{} {}", ranks.size() == 1 ? "rank" : "ranks", fmt::join(ranks, ", "));
}

}  // namespace xp::dist
