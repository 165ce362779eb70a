#include "core/jobs/slurm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "core/config/error.h"
#include "core/config/reader.h"

namespace xp::jobs {

SlurmParams slurm_params_from(const config::ConfigNode& launcher) {
  SlurmParams p;
  config::ConfigReader r(launcher, "hydra.launcher");
  r.raw("name");
  r.get("timeout_min", p.timeout_min, config::Range::at_least(1));
  r.get("partition", p.partition);
  r.get("qos", p.qos);
  r.get("account", p.account);
  r.get("constraint", p.constraint);
  r.get("exclude", p.exclude);
  r.get("gres", p.gres);
  r.get("nodes", p.nodes, config::Range::at_least(1));
  r.get("tasks_per_node", p.tasks_per_node, config::Range::at_least(1));
  r.get("cpus_per_task", p.cpus_per_task, config::Range::at_least(1));
  r.get("gpus_per_node", p.gpus_per_node, config::Range::non_negative());
  r.get("mem_gb", p.mem_gb, config::Range::non_negative());
  r.get("signal_delay_s", p.signal_delay_s, config::Range::non_negative());
  r.get("max_num_timeout", p.max_num_timeout, config::Range::non_negative());
  r.get("array_parallelism", p.array_parallelism, config::Range::at_least(1));
  r.get("setup", p.setup);
  if (const config::ConfigNode* extra = r.raw("additional_parameters"); extra && extra->is_map())
    for (const auto& [k, v] : extra->items()) p.additional_parameters[k] = v.scalar_text();
  r.finish();
  if (p.timeout_min * 60 <= p.signal_delay_s) {
    const config::ConfigNode* at = launcher.find("signal_delay_s");
    throw config::ConfigError(
        fmt::format("the time limit ({} min) is not longer than signal_delay_s ({} s): every task would be signalled "
                    "at once, checkpoint and requeue without end", p.timeout_min, p.signal_delay_s),
        at ? at->loc() : config::SourceLoc{}, "hydra.launcher.signal_delay_s",
        fmt::format("raise hydra.launcher.timeout_min above {} or lower signal_delay_s", (p.signal_delay_s + 59) / 60));
  }
  return p;
}

std::string sbatch_script(const SlurmParams& p, const std::string& job_name, const std::filesystem::path& sweep_dir,
                          size_t num_jobs, const std::filesystem::path& exe, const std::filesystem::path& manifest) {
  // Sorted "--key=value" lines, as submitit writes them.
  std::map<std::string, std::string> flags;
  flags["job-name"] = job_name;
  int64_t par = std::min<int64_t>(static_cast<int64_t>(num_jobs), p.array_parallelism);
  flags["array"] = fmt::format("0-{}%{}", num_jobs - 1, par);
  flags["output"] = (sweep_dir / ".slurm" / "%A_%a.out").string();
  flags["error"] = (sweep_dir / ".slurm" / "%A_%a.err").string();
  flags["open-mode"] = "append";  // logs survive requeue
  flags["time"] = std::to_string(p.timeout_min);
  flags["signal"] = fmt::format("B:{}@{}", p.checkpoint_signal, p.signal_delay_s);
  flags["nodes"] = std::to_string(p.nodes);
  flags["ntasks-per-node"] = std::to_string(p.tasks_per_node);
  flags["cpus-per-task"] = std::to_string(p.cpus_per_task);
  if (p.gpus_per_node > 0) flags["gpus-per-node"] = std::to_string(p.gpus_per_node);
  if (p.mem_gb > 0) flags["mem"] = fmt::format("{}GB", p.mem_gb);
  for (auto [k, v] : {std::pair{"partition", p.partition}, {"qos", p.qos}, {"account", p.account},
                      {"constraint", p.constraint}, {"exclude", p.exclude}, {"gres", p.gres}})
    if (!v.empty()) flags[k] = v;
  for (const auto& [k, v] : p.additional_parameters) flags[k] = v;

  std::string s = "#!/bin/bash\n";
  for (const auto& [k, v] : flags) s += fmt::format("#SBATCH --{}={}\n", k, v);
  s += "#SBATCH --requeue\n";
  s += "# Each file has one writer, so HDF5 file locks (which NFS/Lustre often refuse) are not needed.\n";
  s += "export HDF5_USE_FILE_LOCKING=FALSE\n";
  for (const auto& line : p.setup) s += line + "\n";
  // exec: exp (or srun) becomes the batch shell, so the B: signal reaches it directly. Several
  // tasks are the processes of one srun launch (a training run spreads its logical ranks over
  // them); srun passes the signal on to them, and the cluster's MpiDefault — or SLURM_MPI_TYPE
  // exported by a `setup` line — chooses how OpenMPI finds its peers.
  const bool launch = p.nodes * p.tasks_per_node > 1;
  s += fmt::format("exec {}{} run --from-manifest {} --index \"$SLURM_ARRAY_TASK_ID\"\n", launch ? "srun " : "",
                   exe.string(), manifest.string());
  return s;
}

std::string slurm_requeue_id() {
  const char* array = std::getenv("SLURM_ARRAY_JOB_ID");
  const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
  if (array && task && *array && *task) return fmt::format("{}_{}", array, task);
  const char* job = std::getenv("SLURM_JOB_ID");
  return job ? job : "";
}

Requeue requeue_after_stop(int stop_signal, int checkpoint_signal, int64_t restarts, int64_t max_num_timeout) {
  if (stop_signal != checkpoint_signal) return Requeue::kNotOnThisSignal;
  return restarts < max_num_timeout ? Requeue::kYes : Requeue::kTimeoutsSpent;
}

}  // namespace xp::jobs
