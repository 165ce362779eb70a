// metron: Metron's client-side measurement of a live OpenAI-compatible endpoint (exp serve,
// vLLM, SGLang, TGI, llama.cpp's server, a hosted API): a workload's requests sent at their
// arrival times under bounded concurrency, every streamed token timestamped, and the same Metron
// metrics and tables the simulator and the engine write. Failed requests are counted and listed.
#pragma once
#include <memory>

#include "experiments/experiment.h"

namespace xp::experiments {

std::unique_ptr<Experiment> make_metron(const config::ConfigNode& job_config);

}  // namespace xp::experiments
