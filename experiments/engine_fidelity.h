// engine_profile: writes the engine's own operator profile (Vidur layout) for a model.
// engine_fidelity: Vidur's fidelity check on this engine — profile it, find its capacity in the
// simulator, then serve the same requests at fractions of that capacity on the engine and in
// the simulator, and report the error of P50/P95 TTFT, TBT and normalized latency.
#pragma once
#include <memory>

#include "experiments/experiment.h"

namespace xp::experiments {

std::unique_ptr<Experiment> make_engine_profile(const config::ConfigNode& job_config);
std::unique_ptr<Experiment> make_engine_fidelity(const config::ConfigNode& job_config);

}  // namespace xp::experiments
