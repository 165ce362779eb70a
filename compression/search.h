// DynaQuant's configuration search (docs/dynaquant.md): the configuration cube of
// (bins, prune fraction, protect fraction) per prune metric, each axis indexed 0…n−1 from most
// aggressive to least so that quality rises along it, and the objective "maximum compression
// ratio subject to a quality drop ≤ ε". Three searches over an oracle that tells a point's
// ratio (cheap: an entropy estimate) and feasibility (expensive: a quality evaluation):
//   exhaustive_search     every point (the reference)
//   guided_search         GES: binary search of the box diagonal for the first feasible point,
//                         then recursion into the mixed orthants around it (the all-lower orthant
//                         is infeasible, the all-higher one dominated); exact when feasibility and
//                         ratio are monotone along every axis; per metric, the better kept
//   neighbourhood_search  steady state: the previous point switches metric when it is infeasible
//                         and the other metric's is feasible; then points at most `radius` steps
//                         away and never more aggressive than it, highest ratio first, the first
//                         feasible wins; when none is, GES over the box of points not more
//                         aggressive (precision only ever increases during training)
// Feasibility results are memoised; `evaluations` counts distinct feasibility checks. With
// oracle.parallel > 1 independent checks run concurrently (OpenMP threads; `feasible` and `ratio`
// must then be thread-safe): GES explores both metrics and the orthants around its crossing at
// once — the same points, so the same result and count as one at a time — and the
// neighbourhood search checks its unknown candidates `parallel` at a time, highest ratio first
// (a batch may check a few points the sequential order would have skipped; the same choice).
#pragma once
#include <array>
#include <functional>
#include <optional>
#include <vector>

#include "compression/quantizer.h"

namespace xp::compression {

struct CubePoint {
  std::array<int, 3> index{};  // bins, prune, protect axes
  PruneMetric metric = PruneMetric::kMagnitude;
  bool operator==(const CubePoint&) const = default;
  // A total order, for maps keyed by point.
  std::array<int, 4> key() const { return {index[0], index[1], index[2], static_cast<int>(metric)}; }
};

struct ConfigCube {
  std::vector<int> bins{4, 6, 8, 12, 16, 32};                     // most aggressive first
  std::vector<double> prune{0.5, 0.4, 0.3, 0.2, 0.1, 0.0};
  std::vector<double> protect{0.0005, 0.005, 0.01};
  int size(int axis) const;
  // `base` with the point's knobs set.
  QuantConfig config_at(const CubePoint& p, QuantConfig base) const;
};

struct SearchOracle {
  std::function<double(const CubePoint&)> ratio;    // higher = better compression
  std::function<bool(const CubePoint&)> feasible;   // quality drop ≤ ε
  int parallel = 1;                                 // feasibility checks at once
};

struct SearchResult {
  std::optional<CubePoint> best;  // none feasible: nullopt
  double ratio = 0.0;
  int evaluations = 0;            // distinct feasibility checks
};

SearchResult exhaustive_search(const ConfigCube& cube, const SearchOracle& oracle);
SearchResult guided_search(const ConfigCube& cube, const SearchOracle& oracle);
SearchResult neighbourhood_search(const ConfigCube& cube, const SearchOracle& oracle, const CubePoint& previous,
                                  int radius = 1);

}  // namespace xp::compression
