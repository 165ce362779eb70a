// engine_serve: serves requests with the real engine (CPU reference) under one of the shared
// schedulers, with Metron metrics and the generated tokens in results.h5. make_model writes a
// random-weight Llama of any shape in Hugging Face's layout (config.json + model.safetensors).
#pragma once
#include <memory>

#include "experiments/experiment.h"

namespace xp::experiments {

std::unique_ptr<Experiment> make_engine_serve(const config::ConfigNode& job_config);
std::unique_ptr<Experiment> make_make_model(const config::ConfigNode& job_config);

}  // namespace xp::experiments
