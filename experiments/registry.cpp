#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/config/error.h"
#include "experiments/experiment.h"
#include "experiments/linear_regression.h"
#include "experiments/binarized_topology.h"
#include "experiments/capacity_search.h"
#include "experiments/config_search.h"
#include "experiments/dynaquant.h"
#include "experiments/engine_fidelity.h"
#include "experiments/engine_serve.h"
#include "experiments/metron_client.h"
#include "experiments/serving_sim.h"

namespace xp::experiments {

const std::vector<ExperimentInfo>& registry() {
  static const std::vector<ExperimentInfo> all = {
      {"linear_regression", "mini-batch SGD on synthetic linear data: logical ranks on CPU threads and processes, or CUDA",
       make_linear_regression},
      {"serving_sim", "discrete-event LLM serving simulation: schedulers x model x hardware x workload (Vidur-class)",
       make_serving_sim},
      {"capacity_search", "largest QPS each scheduler sustains under an SLO (Metron / Sarathi-Serve capacity search)",
       make_capacity_search},
      {"config_search", "Vidur-Search: capacity and QPS per dollar over TP x PP x scheduler x batch cap for a GPU budget",
       make_config_search},
      {"engine_serve", "serve requests with the real engine (CPU Llama) under a shared scheduler, with Metron metrics",
       make_engine_serve},
      {"metron", "Metron's client: measure a live OpenAI-compatible endpoint (exp serve, vLLM, ...) under a workload",
       make_metron},
      {"make_model", "write a random-weight Llama of any shape as config.json + model.safetensors", make_make_model},
      {"engine_profile", "measure the engine's own operators into Vidur-layout mlp.csv and attention.csv",
       make_engine_profile},
      {"engine_fidelity", "serve one workload on the engine and in the simulator (engine's profile); report the errors",
       make_engine_fidelity},
      {"binarized_topology", "train a {0,1}-weight topology (or float MLP / edge-popup) and measure sparsity, "
       "constant-weight accuracy and NOR behaviour", make_binarized_topology},
      {"dynaquant", "fault-tolerant training with DynaQuant-compressed checkpoints (or a baseline) and restores",
       make_dynaquant},
  };
  return all;
}

const ExperimentInfo& find_experiment(const std::string& name, const config::SourceLoc& where) {
  std::vector<std::string> names;
  for (const auto& e : registry()) {
    if (e.name == name) return e;
    names.push_back(e.name);
  }
  std::string hint = config::did_you_mean(name, names);
  throw config::ConfigError(fmt::format("no experiment named '{}'", name), where, "experiment",
                            hint.empty() ? fmt::format("registered experiments: {}", fmt::join(names, ", ")) : hint);
}

void print_rows(const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t w = 0;
  for (const auto& [k, v] : rows) w = std::max(w, k.size());
  for (const auto& [k, v] : rows) fmt::print("  {:<{}}  {}\n", k, w, v);
}

void Experiment::report(const jobs::RunContext& ctx) const {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& [k, v] : ctx.summary()) rows.emplace_back(k, results::attr_to_string(v));
  print_rows(rows);
}

config::ConfigReader top_level_reader(const config::ConfigNode& job_config) {
  config::ConfigReader r(job_config, "");
  r.raw("experiment");
  r.raw("seed");
  return r;
}

void reject_key(const config::ConfigNode& job_config, const std::string& key, const std::string& message,
                const std::string& hint) {
  const config::ConfigNode* n = job_config.at_path(key);
  throw config::ConfigError(message, n ? n->loc() : config::SourceLoc{}, key, hint);
}

}  // namespace xp::experiments
