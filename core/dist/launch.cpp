#include "core/dist/launch.h"

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
    l = {env_int("OMPI_COMM_WORLD_RANK", 0), n, "mpirun"};
  } else if (int m = env_int("PMI_SIZE", 0); m > 0) {
    l = {env_int("PMI_RANK", 0), m, "mpirun"};
  } else if (int s = env_int("SLURM_STEP_NUM_TASKS", 0); s > 1 && std::getenv("SLURM_PROCID")) {
    l = {env_int("SLURM_PROCID", 0), s, "srun"};
  }
  if (l.size <= 1) l = {};
  return l;
}

}  // namespace xp::dist
