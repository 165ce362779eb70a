#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/config/error.h"
#include "experiments/experiment.h"
#include "experiments/linear_regression.h"

namespace xp::experiments {

const std::vector<ExperimentInfo>& registry() {
  static const std::vector<ExperimentInfo> all = {
      {"linear_regression", "mini-batch SGD on synthetic linear data, on the tensor core (CPU or CUDA)",
       make_linear_regression},
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

config::ConfigReader top_level_reader(const config::ConfigNode& job_config) {
  config::ConfigReader r(job_config, "");
  r.raw("experiment");
  r.raw("seed");
  return r;
}

}  // namespace xp::experiments
