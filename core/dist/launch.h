// How this process was started: alone, or as one rank of an MPI job (mpirun / mpiexec, or srun
// on Slurm). `exp run` asks once; only rank 0 of a launch writes the run directory.
#pragma once
#include <memory>
#include <string>

#include "core/dist/process_group.h"

namespace xp::dist {

struct LaunchInfo {
  int rank = 0;           // from the launcher's environment, before MPI starts
  int size = 1;
  int local_size = 1;     // ranks on this node (they share its cores)
  std::string launcher;   // "mpirun", "srun" or "" (not launched as a job of several ranks)
};

// Reads OMPI_COMM_WORLD_RANK/SIZE (mpirun), PMI_RANK/PMI_SIZE (other MPI launchers) or
// SLURM_PROCID with SLURM_STEP_NUM_TASKS (srun; a batch script alone is not a launch of several).
LaunchInfo detect_launch();

// The launch's world, started on first use (every rank must ask, as for any collective), with a
// generous timeout for start-up (ranks load their shards at their own pace); nullptr when this
// process was not launched as one of several ranks. Split it for work with a tighter timeout.
ProcessGroup* launched_world();

// Whether this build has the MPI backend.
bool mpi_available();

// The launch's world: MPI_COMM_WORLD as a process group (MPI is started on the first call and
// finalized at exit). Throws when this build has no MPI.
std::unique_ptr<ProcessGroup> mpi_world(Seconds timeout);

// Ends every rank of the MPI job with `code` (MPI_Abort), after a rank found it cannot go on and
// its peers may be waiting for it; returns only where MPI is not running.
void abort_launch(int code);

}  // namespace xp::dist
