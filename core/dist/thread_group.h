// The in-process backend: each rank is a thread holding its own ProcessGroup handle onto a shared
// state. Exact and fast, for tests and for tensor parallelism without a launcher; a rank that
// throws aborts the world, so its peers' collectives throw instead of waiting out the timeout.
#pragma once
#include <functional>
#include <memory>

#include "core/dist/process_group.h"

namespace xp::dist {

// Runs fn(group) on `size` threads, rank r on thread r (rank 0 on the calling thread), and
// returns when all have; rethrows rank 0's exception if it threw, else the first other's.
void run_threads(int size, Seconds timeout, const std::function<void(ProcessGroup&)>& fn);

}  // namespace xp::dist
