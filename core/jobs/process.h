// Child processes for the launchers: the local launcher runs sweep jobs as `exp` children (so
// each job has its own signal handlers, HDF5 state and log), and the Slurm launcher calls
// sbatch/scontrol, found on PATH, so tests can put fakes first on PATH.
#pragma once
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/runtime/files.h"

namespace xp::jobs {

pid_t spawn_process(const std::vector<std::string>& argv);  // throws std::runtime_error
// Blocks until `pid` exits: its exit code, or 128 + signal number when a signal killed it.
int wait_process(pid_t pid);
// Runs argv to completion and returns its stdout (stderr passes through); throws
// runtime::IoError when it cannot run or exits non-zero.
std::string capture_process(const std::vector<std::string>& argv);
std::filesystem::path self_executable();

}  // namespace xp::jobs
