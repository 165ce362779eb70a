// Built where OpenMPI is absent: the launch is still detected, so that `mpirun -np 2 exp run …`
// with such a build says so instead of running two unrelated copies.
#include <stdexcept>

#include "core/dist/launch.h"

namespace xp::dist {

bool mpi_available() { return false; }

std::unique_ptr<ProcessGroup> mpi_world(Seconds) {
  throw std::runtime_error("this exp was built without MPI (install libopenmpi-dev: scripts/install_deps.sh, then rebuild)");
}

void abort_launch(int) {}

}  // namespace xp::dist
