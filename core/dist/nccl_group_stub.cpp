// Built without CUDA or without nccl.h.
#include <stdexcept>

#include "core/dist/nccl_group.h"

namespace xp::dist {

bool nccl_available() { return false; }

std::unique_ptr<ProcessGroup> nccl_group(ProcessGroup&, int, Seconds) {
  throw std::runtime_error("this exp was built without NCCL (it needs the CUDA toolkit's nccl.h at build time)");
}

}  // namespace xp::dist
