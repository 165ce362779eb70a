// Slurm submission (conventions.md §3): a whole sweep is one job array whose tasks run
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
  int64_t signal_delay_s = 120;        // USR1 this long before the time limit
  int64_t max_num_timeout = 0;         // requeues allowed after timeouts (preemptions: unlimited)
  int64_t array_parallelism = 256;     // --array=0-N%P
  std::map<std::string, std::string> additional_parameters;  // any other sbatch flag
  std::vector<std::string> setup;      // shell lines run before exp
};

// Reads hydra.launcher (resolved); unknown keys are ConfigErrors.
SlurmParams slurm_params_from(const config::ConfigNode& launcher);

std::string sbatch_script(const SlurmParams& p, const std::string& job_name, const std::filesystem::path& sweep_dir,
                          size_t num_jobs, const std::filesystem::path& exe, const std::filesystem::path& manifest);

// The id to requeue for this task: ARRAYID_TASKID for array tasks (requeuing SLURM_JOB_ID of
// task 0 would requeue the whole array), else SLURM_JOB_ID; empty outside Slurm.
std::string slurm_requeue_id();

}  // namespace xp::jobs
