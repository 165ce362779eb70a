// linear_regression: fits y = X w + noise by mini-batch SGD (a bias-free nn::Linear). Small,
// exact and fully deterministic, it exercises the whole run path: config struct, RNG streams,
// results tables, checkpoints, preemption and resume, CPU or CUDA tensors — and, on the CPU, the
// logical data-parallel world (train.logical_ranks over threads and processes, resizable).
#pragma once
#include <memory>

#include "experiments/experiment.h"

namespace xp::experiments {

std::unique_ptr<Experiment> make_linear_regression(const config::ConfigNode& job_config);

}  // namespace xp::experiments
