#include "core/dist/launch.h"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace xp::dist {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return std::stoi(v);
  } catch (const std::exception&) {
    return fallback;
  }
}

}  // namespace

LaunchInfo detect_launch() {
  LaunchInfo l;
  if (int n = env_int("OMPI_COMM_WORLD_SIZE", 0); n > 0) {
    l = {env_int("OMPI_COMM_WORLD_RANK", 0), n, env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1), "mpirun"};
  } else if (int m = env_int("PMI_SIZE", 0); m > 0) {
    l = {env_int("PMI_RANK", 0), m, env_int("MPI_LOCALNRANKS", 1), "mpirun"};
  } else if (int s = env_int("SLURM_STEP_NUM_TASKS", 0); s > 1 && std::getenv("SLURM_PROCID")) {
    // SLURM_STEP_TASKS_PER_NODE reads "2(x4)" or "3,2": the first node's count is a fair guess.
    l = {env_int("SLURM_PROCID", 0), s, env_int("SLURM_STEP_TASKS_PER_NODE", 1), "srun"};
  }
  if (l.size <= 1) l = {};
  l.local_size = std::max(1, l.local_size);
  return l;
}

ProcessGroup* launched_world() {
  static std::unique_ptr<ProcessGroup> world = detect_launch().size > 1 ? mpi_world(Seconds(600)) : nullptr;
  return world.get();
}

}  // namespace xp::dist
