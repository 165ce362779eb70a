#include "core/runtime/signals.h"

#include <atomic>

namespace xp::runtime {
namespace {

// lock-free atomics are async-signal-safe; a plain sig_atomic_t would do for the flag alone.
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig, std::memory_order_relaxed); }

}  // namespace

void install_stop_handlers(int checkpoint_signal) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  if (checkpoint_signal != SIGTERM) sigaction(checkpoint_signal, &sa, nullptr);
}

bool stop_requested() { return g_stop_signal.load(std::memory_order_relaxed) != 0; }
int stop_signal() { return g_stop_signal.load(std::memory_order_relaxed); }
void request_stop(int sig) { g_stop_signal.store(sig, std::memory_order_relaxed); }
void clear_stop_request() { g_stop_signal.store(0, std::memory_order_relaxed); }

}  // namespace xp::runtime
