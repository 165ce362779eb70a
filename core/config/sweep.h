// Multirun expansion (docs/configs.md): comma lists, range(), choice() and glob() over a
// group's options form the cartesian product of jobs, the last override varying fastest
// (Hydra's basic sweeper). Sweeps written under `hydra.sweeper.params` in config count too;
// the command line wins for the same key.
#pragma once
#include <string>
#include <vector>

#include "core/config/compose.h"
#include "core/config/node.h"

namespace xp::config {

inline constexpr size_t kMaxSweepJobs = 100000;
// Every job's override list is held in memory: at most this many override strings in all.
inline constexpr size_t kMaxSweepOverrides = 500000;

// Each job's override list, in job-number order. Non-sweep overrides appear in every job.
std::vector<std::vector<std::string>> expand_sweep(const std::vector<std::string>& overrides,
                                                   const SearchPath& search_path,
                                                   const ConfigNode& sweeper_params = ConfigNode());

// True when any override is a sweep (so `exp run` without -m can refuse it).
bool has_sweep(const std::vector<std::string>& overrides);

}  // namespace xp::config
