// What the codecs share (private to compression/codecs/): the search over a level grid and
// the grid the quantizing baselines search.
#pragma once
#include <cstddef>
#include <vector>

namespace xp::compression {

// The first grid value (ascending = rising quality) whose encoding is feasible, assuming
// feasibility is monotone along the grid; the last value when none is.
template <class Feasible>
int smallest_feasible(const std::vector<int>& grid, Feasible feasible) {
  size_t lo = 0, hi = grid.size() - 1;
  if (!feasible(grid[hi])) return grid[hi];
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (feasible(grid[mid])) hi = mid;
    else lo = mid + 1;
  }
  return grid[lo];
}

// The level counts the quantizing baselines search, fewest first: DynaQuant's own bin range
// (search.h: 4 to 32) and below it, then up to 8 bits, so a baseline can match or beat it.
inline const std::vector<int> kBaselineLevels = {2, 4, 6, 8, 12, 16, 32, 64, 128, 256};

}  // namespace xp::compression
