// What end-to-end tests read back from a run directory's results.h5.
#pragma once
#include <filesystem>
#include <vector>

#include "core/results/results_file.h"

namespace xp::testing {

// Results a reader can open and that say they are complete (a file cut short may not open).
inline bool run_complete(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file)) return false;
  try {
    return results::ResultsReader::open(file)->complete();
  } catch (const std::exception&) {
    return false;
  }
}

// An engine run's /engine/outputs as one list: every row's request id, then every token.
inline std::vector<double> engine_outputs(const std::filesystem::path& run_dir) {
  if (!std::filesystem::exists(run_dir / "results.h5")) return {};
  auto t = results::ResultsReader::open(run_dir / "results.h5")->read_table("/engine/outputs");
  std::vector<double> out = t.values[0];
  out.insert(out.end(), t.values[2].begin(), t.values[2].end());
  return out;
}

}  // namespace xp::testing
