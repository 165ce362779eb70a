#include "compression/search.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace xp::compression {

int ConfigCube::size(int axis) const {
  return static_cast<int>(axis == 0 ? bins.size() : axis == 1 ? prune.size() : protect.size());
}

QuantConfig ConfigCube::config_at(const CubePoint& p, QuantConfig base) const {
  base.bins = bins.at(static_cast<size_t>(p.index[0]));
  base.prune_fraction = prune.at(static_cast<size_t>(p.index[1]));
  base.protect_fraction = protect.at(static_cast<size_t>(p.index[2]));
  base.prune_metric = p.metric;
  return base;
}

namespace {

// Memoises the oracle and tracks the best feasible point seen.
class Memo {
 public:
  explicit Memo(const SearchOracle& o) : oracle_(o) {}
  bool feasible(const CubePoint& p) {
    auto k = key(p);
    auto it = feasible_.find(k);
    if (it != feasible_.end()) return it->second;
    const bool f = oracle_.feasible(p);
    feasible_[k] = f;
    if (f) consider(p);
    return f;
  }
  double ratio(const CubePoint& p) {
    auto k = key(p);
    auto it = ratio_.find(k);
    if (it != ratio_.end()) return it->second;
    return ratio_[k] = oracle_.ratio(p);
  }
  SearchResult result() const { return {best_, best_ratio_, static_cast<int>(feasible_.size())}; }

 private:
  static std::array<int, 4> key(const CubePoint& p) {
    return {p.index[0], p.index[1], p.index[2], static_cast<int>(p.metric)};
  }
  void consider(const CubePoint& p) {
    const double r = ratio(p);
    if (!best_ || r > best_ratio_) best_ = p, best_ratio_ = r;
  }
  const SearchOracle& oracle_;
  std::map<std::array<int, 4>, bool> feasible_;
  std::map<std::array<int, 4>, double> ratio_;
  std::optional<CubePoint> best_;
  double best_ratio_ = 0.0;
};

using Box = std::array<std::array<int, 2>, 3>;  // per axis [lo, hi]

CubePoint on_diagonal(const Box& box, int t, int steps, PruneMetric metric) {
  CubePoint p;
  p.metric = metric;
  for (int a = 0; a < 3; ++a) {
    const int lo = box[static_cast<size_t>(a)][0], hi = box[static_cast<size_t>(a)][1];
    p.index[static_cast<size_t>(a)] =
        lo + (steps == 0 ? 0 : static_cast<int>(std::lround(static_cast<double>(t) * (hi - lo) / steps)));
  }
  return p;
}

void ges(const Box& box, PruneMetric metric, Memo& memo) {
  int steps = 0;
  for (const auto& axis : box) steps = std::max(steps, axis[1] - axis[0]);
  if (!memo.feasible(on_diagonal(box, steps, steps, metric))) return;  // the least aggressive corner fails
  int lo = 0, hi = steps;  // smallest feasible t in [lo, hi]
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (memo.feasible(on_diagonal(box, mid, steps, metric))) hi = mid;
    else lo = mid + 1;
  }
  if (lo == 0) return;  // the most aggressive corner is feasible: it dominates the box
  const CubePoint below = on_diagonal(box, lo - 1, steps, metric), at = on_diagonal(box, lo, steps, metric);
  for (int orthant = 1; orthant < 7; ++orthant) {  // skip 0 (all lower) and 7 (all higher)
    Box sub = box;
    for (int a = 0; a < 3; ++a) {
      auto& axis = sub[static_cast<size_t>(a)];
      if (orthant & (1 << a)) axis[0] = at.index[static_cast<size_t>(a)];
      else axis[1] = below.index[static_cast<size_t>(a)];
    }
    ges(sub, metric, memo);
  }
}

}  // namespace

SearchResult exhaustive_search(const ConfigCube& cube, const SearchOracle& oracle) {
  Memo memo(oracle);
  for (PruneMetric m : {PruneMetric::kMagnitude, PruneMetric::kSensitivity})
    for (int b = 0; b < cube.size(0); ++b)
      for (int p = 0; p < cube.size(1); ++p)
        for (int q = 0; q < cube.size(2); ++q) memo.feasible({{b, p, q}, m});
  return memo.result();
}

SearchResult guided_search(const ConfigCube& cube, const SearchOracle& oracle) {
  Memo memo(oracle);
  const Box whole{{{0, cube.size(0) - 1}, {0, cube.size(1) - 1}, {0, cube.size(2) - 1}}};
  for (PruneMetric m : {PruneMetric::kMagnitude, PruneMetric::kSensitivity}) ges(whole, m, memo);
  return memo.result();
}

SearchResult neighbourhood_search(const ConfigCube& cube, const SearchOracle& oracle, const CubePoint& previous,
                                  int radius) {
  Memo memo(oracle);
  CubePoint start = previous;
  CubePoint other = previous;
  other.metric = previous.metric == PruneMetric::kMagnitude ? PruneMetric::kSensitivity : PruneMetric::kMagnitude;
  // The other metric at the same point: switch when it is feasible and the previous one is not.
  if (!memo.feasible(previous) && memo.feasible(other)) start = other;
  std::vector<CubePoint> candidates;
  for (int db = 0; db <= radius; ++db)
    for (int dp = 0; dp <= radius; ++dp)
      for (int dq = 0; dq <= radius; ++dq) {
        CubePoint c{{start.index[0] + db, start.index[1] + dp, start.index[2] + dq}, start.metric};
        if (c.index[0] < cube.size(0) && c.index[1] < cube.size(1) && c.index[2] < cube.size(2)) candidates.push_back(c);
      }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](const CubePoint& a, const CubePoint& b) { return memo.ratio(a) > memo.ratio(b); });
  for (const CubePoint& c : candidates)
    if (memo.feasible(c)) {
      return SearchResult{c, memo.ratio(c), memo.result().evaluations};
    }
  // Nothing near is feasible: GES over everything not more aggressive than the previous point.
  const Box rest{{{start.index[0], cube.size(0) - 1}, {start.index[1], cube.size(1) - 1}, {start.index[2], cube.size(2) - 1}}};
  Memo fallback(oracle);
  ges(rest, start.metric, fallback);
  SearchResult r = fallback.result();
  r.evaluations += memo.result().evaluations;
  return r;
}

}  // namespace xp::compression
