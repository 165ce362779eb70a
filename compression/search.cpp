#include "compression/search.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <functional>
#include <future>
#include <map>
#include <mutex>

#include <omp.h>

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

// Memoises the oracle and tracks the best feasible point seen; safe to share between threads.
// A point asked for while another thread checks it waits for that check rather than repeating
// it. Ties in ratio go to the smaller key, so the result does not depend on the order of checks.
class Memo {
 public:
  explicit Memo(const SearchOracle& o) : oracle_(o) {}
  bool feasible(const CubePoint& p) {
    const Key k = p.key();
    std::promise<bool> promise;
    std::shared_future<bool> result;
    bool mine = false;
    {
      std::lock_guard lock(mutex_);
      auto [it, fresh] = feasible_.try_emplace(k);
      if (fresh) {
        it->second = promise.get_future().share();
        mine = true;
      }
      result = it->second;
    }
    if (mine) {
      try {
        const bool f = oracle_.feasible(p);
        if (f) consider(p);
        promise.set_value(f);
      } catch (...) {
        promise.set_exception(std::current_exception());
      }
    }
    return result.get();
  }
  // The result of a finished check, nullopt when the point was never checked (call it only
  // when no check is in flight).
  std::optional<bool> known(const CubePoint& p) const {
    std::lock_guard lock(mutex_);
    auto it = feasible_.find(p.key());
    if (it == feasible_.end()) return std::nullopt;
    return it->second.get();
  }
  double ratio(const CubePoint& p) {
    const Key k = p.key();
    {
      std::lock_guard lock(mutex_);
      if (auto it = ratio_.find(k); it != ratio_.end()) return it->second;
    }
    const double r = oracle_.ratio(p);  // outside the lock: a duplicate is harmless (pure)
    std::lock_guard lock(mutex_);
    return ratio_.try_emplace(k, r).first->second;
  }
  SearchResult result() const {
    std::lock_guard lock(mutex_);
    return {best_, best_ratio_, static_cast<int>(feasible_.size())};
  }
  int parallel() const { return std::max(1, oracle_.parallel); }

 private:
  using Key = std::array<int, 4>;
  void consider(const CubePoint& p) {
    const double r = ratio(p);
    std::lock_guard lock(mutex_);
    if (!best_ || r > best_ratio_ || (r == best_ratio_ && p.key() < best_->key())) best_ = p, best_ratio_ = r;
  }
  const SearchOracle& oracle_;
  mutable std::mutex mutex_;
  std::map<Key, std::shared_future<bool>> feasible_;
  std::map<Key, double> ratio_;
  std::optional<CubePoint> best_;
  double best_ratio_ = 0.0;
};

// Runs the tasks, concurrently when the memo allows: from inside a parallel region as OpenMP
// tasks, otherwise in a parallel region of its own. The first exception is rethrown once all
// have finished (an exception must not leave an OpenMP task).
void run_all(const std::vector<std::function<void()>>& tasks, const Memo& memo) {
  if (memo.parallel() == 1 || tasks.size() < 2) {
    for (const auto& t : tasks) t();
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  auto guarded = [&](const std::function<void()>& t) {
    try {
      t();
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  auto spawn = [&] {
    for (const auto& t : tasks) {
#pragma omp task default(shared) firstprivate(t)
      guarded(t);
    }
#pragma omp taskwait
  };
  if (omp_in_parallel()) {
    spawn();
  } else {
#pragma omp parallel num_threads(memo.parallel())
#pragma omp single
    spawn();
  }
  if (error) std::rethrow_exception(error);
}

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
  std::vector<std::function<void()>> orthants;
  for (int orthant = 1; orthant < 7; ++orthant) {  // skip 0 (all lower) and 7 (all higher)
    Box sub = box;
    for (int a = 0; a < 3; ++a) {
      auto& axis = sub[static_cast<size_t>(a)];
      if (orthant & (1 << a)) axis[0] = at.index[static_cast<size_t>(a)];
      else axis[1] = below.index[static_cast<size_t>(a)];
    }
    orthants.push_back([sub, metric, &memo] { ges(sub, metric, memo); });
  }
  run_all(orthants, memo);
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
  run_all({[&] { ges(whole, PruneMetric::kMagnitude, memo); }, [&] { ges(whole, PruneMetric::kSensitivity, memo); }}, memo);
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
  // Highest ratio first, the first feasible wins. Points already checked answer at once (in the
  // steady state the previous point itself, so nothing is checked speculatively); the unknown
  // ones are checked `parallel` at a time.
  const auto batch = static_cast<size_t>(memo.parallel());
  for (size_t i = 0; i < candidates.size();) {
    if (auto known = memo.known(candidates[i])) {
      if (*known) return SearchResult{candidates[i], memo.ratio(candidates[i]), memo.result().evaluations};
      ++i;
      continue;
    }
    std::vector<std::function<void()>> checks;
    for (size_t j = i; j < candidates.size() && checks.size() < batch; ++j)
      if (!memo.known(candidates[j])) checks.push_back([&, j] { memo.feasible(candidates[j]); });
    run_all(checks, memo);
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
