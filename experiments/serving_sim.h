// serving_sim: simulates LLM serving for one model, device and deployment under one workload,
// with one scheduler (`scheduler:`) or several side by side (`schedulers: {name: {...}}`),
// writing Metron/Vidur metrics per scheduler and printing a comparison table.
#pragma once
#include <memory>

#include "experiments/experiment.h"

namespace xp::experiments {

std::unique_ptr<Experiment> make_serving_sim(const config::ConfigNode& job_config);

}  // namespace xp::experiments
