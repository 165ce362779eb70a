// dynaquant: fault-tolerant training with compressed checkpoints (docs/dynaquant.md) —
// an MLP on Fashion-MNIST (or digits) checkpointed every half epoch through DynaQuant or a
// baseline, with evenly spaced failures that each restore from the latest compressed checkpoint.
#pragma once
#include <memory>

#include "experiments/experiment.h"

namespace xp::experiments {
std::unique_ptr<Experiment> make_dynaquant(const config::ConfigNode& job_config);
}
