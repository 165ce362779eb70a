// Slurm submission (docs/reliability.md, "On Slurm"): a whole sweep is one job array whose tasks run
// `exp run --from-manifest <sweep>/.slurm/jobs.yaml --index $SLURM_ARRAY_TASK_ID`. Parameter
// names are submitit's (hydra/launcher=slurm), so existing launcher configs carry over. The
// sbatch text is a pure function of its inputs (golden-file tested).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace xp::jobs {

struct SlurmParams {
  int64_t timeout_min = 60;            // --time
  std::string partition;               // --partition (empty: cluster default)
  std::string qos, account, constraint, exclude, gres;
  int64_t nodes = 1;
  int64_t tasks_per_node = 1;
  int64_t cpus_per_task = 1;
  int64_t gpus_per_node = 0;
  int64_t mem_gb = 0;                  // 0: cluster default
  int64_t signal_delay_s = 120;        // the checkpoint signal this long before the time limit
  int64_t max_num_timeout = 3;         // requeues allowed after timeouts (preemptions: unlimited)
  std::string checkpoint_signal = "USR1";  // hydra.checkpoint_signal (not a launcher key): what
                                           // --signal sends, and what the job's handler saves on
  int64_t array_parallelism = 256;     // --array=0-N%P
  std::map<std::string, std::string> additional_parameters;  // any other sbatch flag
  std::vector<std::string> setup;      // shell lines run before exp
};

// Reads hydra.launcher (resolved); unknown keys are ConfigErrors, and so is a time limit no longer
// than signal_delay_s (the task would be signalled at once and requeue itself forever).
SlurmParams slurm_params_from(const config::ConfigNode& launcher);

std::string sbatch_script(const SlurmParams& p, const std::string& job_name, const std::filesystem::path& sweep_dir,
                          size_t num_jobs, const std::filesystem::path& exe, const std::filesystem::path& manifest);

// The id to requeue for this task: ARRAYID_TASKID for array tasks (requeuing SLURM_JOB_ID of
// task 0 would requeue the whole array), else SLURM_JOB_ID; empty outside Slurm.
std::string slurm_requeue_id();

// Whether a task that stopped on `stop_signal` requeues itself. Only on the checkpoint signal,
// which Slurm sends before the time limit (--signal), and at most max_num_timeout times
// (`restarts`: SLURM_RESTART_COUNT). A SIGTERM is `scancel` — stop and save, nothing more — or
// Slurm's own preemption or `scontrol requeue`, which requeue the job themselves.
enum class Requeue { kYes, kNotOnThisSignal, kTimeoutsSpent };
Requeue requeue_after_stop(int stop_signal, int checkpoint_signal, int64_t restarts, int64_t max_num_timeout);

}  // namespace xp::jobs
