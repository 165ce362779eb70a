// RunContext: what an experiment gets from the framework for one job — its resolved config,
// output directory, results file, logger, reproducible RNG streams, checkpoint store and the
// stop flag set by SIGTERM/SIGUSR1 (docs/architecture.md).
//
// Checkpoint/resume contract: an experiment saves at a step boundary with save_checkpoint()
// (its own payload; the context adds the row count of every results table and flushes the
// file). On `exp run --resume DIR`, restore() returns the payload of the newest valid
// checkpoint and every table opened through table() is cut back to the rows it had then, so
// the finished results.h5 is identical to an uninterrupted run's.
//
// In a launch of several processes (RunSpec::processes) every process runs the experiment with
// its own context; only process 0's writes (tables, summary, checkpoints, results.h5).
//
// Owned by the driver (the `exp` CLI); experiments borrow it for run(). Not thread-safe.
#pragma once
#include <spdlog/spdlog.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config/node.h"
#include "core/dist/process_group.h"
#include "core/jobs/bytes.h"
#include "core/jobs/checkpoint_store.h"
#include "core/results/results_file.h"
#include "core/runtime/rng.h"

namespace xp::jobs {

enum class RunOutcome { kDone, kPreempted };

struct RunSpec {
  config::ConfigNode config;             // resolved job config (no `hydra` subtree)
  config::ConfigNode config_unresolved;  // as composed, for /config_unresolved
  config::ConfigNode hydra;              // resolved `hydra` subtree
  std::filesystem::path output_dir;
  std::vector<std::string> overrides;
  std::string experiment;                // registered experiment name
  bool resume = false;                   // reopen results.h5 and restore the latest checkpoint
  // The processes of a launch (mpirun, srun) running this job together, SPMD; null: alone.
  // Process 0 writes the run directory; the others run the same code with a context that writes
  // nothing and restores what process 0 restores.
  dist::ProcessGroup* processes = nullptr;
};

class RunContext {
 public:
  // Creates (or, when resuming, reopens) results.h5 in spec.output_dir and writes provenance.
  // Throws std::runtime_error naming the file on I/O failure.
  explicit RunContext(RunSpec spec);
  ~RunContext();
  RunContext(const RunContext&) = delete;
  RunContext& operator=(const RunContext&) = delete;

  const config::ConfigNode& config() const { return spec_.config; }
  // The launch's processes (null: alone), for loops that exchange data every step.
  dist::ProcessGroup* processes() const { return spec_.processes; }
  // Whether this process writes the run directory (process 0 of a launch, or alone).
  bool writes() const { return !spec_.processes || spec_.processes->rank() == 0; }
  const config::ConfigNode& hydra() const { return spec_.hydra; }
  const std::filesystem::path& output_dir() const { return spec_.output_dir; }
  uint64_t seed() const { return seed_; }
  bool resuming() const { return spec_.resume; }
  // Stream `id` of this run's seed: the same (seed, id) draws the same numbers in any run.
  runtime::RngStream rng(uint64_t stream_id) const { return runtime::RngStream(seed_, stream_id); }
  spdlog::logger& log() const;

  results::ResultsWriter& results() { return *results_; }
  // Opens a results table; on resume it is cut back to the checkpointed row count.
  results::Table& table(const std::string& group_path, const std::vector<results::ColumnSpec>& columns);
  void set_summary(const std::string& name, const results::AttrValue& value);
  const std::vector<std::pair<std::string, results::AttrValue>>& summary() const { return summary_; }

  bool should_stop() const;

  void save_checkpoint(uint64_t step, const ByteWriter& payload);
  // Whether a resume continues from a checkpoint (one saved now, or restored and still valid)
  // rather than starting over: what the CLI tells the user when a run stops on a signal.
  bool has_checkpoint() const { return has_checkpoint_; }
  // The payload saved by the newest valid checkpoint (nullopt: start from the beginning); in a
  // launch, process 0's, on every process (a collective: every process calls it).
  std::optional<std::vector<std::byte>> restore();

  // Records the end time; for kDone also marks results.h5 complete (written last).
  void finish(RunOutcome outcome);

 private:
  std::optional<std::vector<std::byte>> restore_here();

  RunSpec spec_;
  uint64_t seed_ = 0;
  std::unique_ptr<results::ResultsWriter> results_;  // null on the processes that do not write
  std::map<std::string, std::unique_ptr<results::Table>> discarded_;  // their tables
  CheckpointStore checkpoints_;
  std::map<std::string, int64_t> restored_rows_;
  bool has_checkpoint_ = false;
  std::vector<std::pair<std::string, results::AttrValue>> summary_;
};

}  // namespace xp::jobs
