// The experiment interface and the registry (docs/architecture.md). An experiment is built from its
// resolved config *before* any output exists — so a bad config exits 2 with nothing written —
// and then run() under a RunContext. run() returns kPreempted when ctx.should_stop() asked it
// to checkpoint and leave; `exp run --resume` continues it.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config/node.h"
#include "core/config/reader.h"
#include "core/jobs/run_context.h"

namespace xp::experiments {

using config::Range;  // every numeric config key is read with its declared range

class Experiment {
 public:
  virtual ~Experiment() = default;
  virtual jobs::RunOutcome run(jobs::RunContext& ctx) = 0;
  // Prints the result table after a finished run; the default prints the summary attributes.
  virtual void report(const jobs::RunContext& ctx) const;
  // Runs once results.h5 is closed (e.g. plotting scripts that read it).
  virtual void after_close(const std::filesystem::path& /*run_dir*/) const {}

  // Launched as several ranks (mpirun, srun): whether this experiment uses them. Rank 0 runs
  // run() and alone writes the run directory; the others run run_worker() meanwhile.
  virtual bool runs_across_processes() const { return false; }
  virtual void run_worker() {}
  // Launched as several ranks: whether every rank runs run() itself (SPMD), with a context that
  // writes only on rank 0 (RunContext::writes) — training on logical ranks. Such a run can also
  // be resumed under a launch, on any number of ranks.
  virtual bool runs_as_spmd() const { return false; }
};

// Prints `name  value` rows, aligned.
void print_rows(const std::vector<std::pair<std::string, std::string>>& rows);

struct ExperimentInfo {
  std::string name;         // the value of `experiment:` in a config
  std::string description;  // one line for `exp list`
  // Parses the resolved job config; throws config::ConfigError on anything wrong.
  std::function<std::unique_ptr<Experiment>(const config::ConfigNode& job_config)> create;
};

// Every experiment, in the order `exp list` shows them. An explicit list in registry.cpp:
// adding an experiment means adding one line there.
const std::vector<ExperimentInfo>& registry();
// The entry named `name`; throws ConfigError (with a suggestion) when there is none.
const ExperimentInfo& find_experiment(const std::string& name, const config::SourceLoc& where = {});

// A reader over the job config's top level that already accepts the keys every job has
// (`experiment`, `seed`), so an experiment's finish() rejects only truly unknown keys.
config::ConfigReader top_level_reader(const config::ConfigNode& job_config);

// Throws a ConfigError about `key` (a dotted path in the job config), pointing at the file and
// line where it was set when it was.
[[noreturn]] void reject_key(const config::ConfigNode& job_config, const std::string& key, const std::string& message,
                             const std::string& hint);

}  // namespace xp::experiments
