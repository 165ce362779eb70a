// binarized_topology: train a {0,1}-weight topology (or a comparison row: float MLP, edge-popup) on
// Fashion-MNIST or the digits set and measure what docs/binarized_topology.md asks for — accuracy,
// active weights per layer, the constant-weight sweep, the learned invert parameters, NOR agreement
// and the Boolean circuit's accuracy.
#pragma once
#include <memory>

#include "experiments/experiment.h"

namespace xp::experiments {
std::unique_ptr<Experiment> make_binarized_topology(const config::ConfigNode& job_config);
}
