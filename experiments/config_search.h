// config_search (Vidur-Search, docs/serving_simulator.md): for one model, device and GPU budget, every
// TP × PP × scheduler (each of the config's `schedulers`, × chunk sizes for those that chunk
// prompts) × batch-cap point gets a capacity
// search; results are capacity, QPS per dollar and the Pareto frontier, in one HDF5 file and
// search.csv. Points run in parallel on a thread pool (simulations share nothing mutable).
#pragma once
#include <memory>

#include "experiments/experiment.h"

namespace xp::experiments {

std::unique_ptr<Experiment> make_config_search(const config::ConfigNode& job_config);

}  // namespace xp::experiments
