// The NCCL backend: one GPU per rank, the group bootstrapped over another ProcessGroup (rank 0
// makes NCCL's unique id and broadcasts it — over MPI for a launch, over threads in one process).
// Its operations take host bytes like every ProcessGroup, staged through device buffers: the
// group behaves exactly as the CPU backends do (the shared checks run on it). NCCL itself is
// opened when the first group is made (it is not linked: 200 MB). Built where CUDA and nccl.h
// exist; elsewhere nccl_available() is false and nccl_group() throws.
#pragma once
#include <memory>

#include "core/dist/process_group.h"

namespace xp::dist {

bool nccl_available();  // built with NCCL, and a GPU is visible

// A group of `bootstrap`'s ranks, rank r on GPU `device`; NCCL's operations are polled against
// `timeout` (NCCL cannot say which ranks are missing, so the error names the group; the
// communicator is aborted).
std::unique_ptr<ProcessGroup> nccl_group(ProcessGroup& bootstrap, int device, Seconds timeout);

}  // namespace xp::dist
