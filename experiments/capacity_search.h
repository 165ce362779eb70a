// capacity_search: for each scheduler, the largest Poisson QPS that meets an SLO (docs/metrics.md:
// Metron's deadline / TBT / TPOT SLOs, Sarathi-Serve's P99 TBT + median scheduling delay), each
// probe a full simulation; also the reproduction driver for configs/reproduce/.
#pragma once
#include <memory>

#include "experiments/experiment.h"

namespace xp::experiments {

std::unique_ptr<Experiment> make_capacity_search(const config::ConfigNode& job_config);

}  // namespace xp::experiments
