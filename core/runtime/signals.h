// Preemption signals. The handlers only set a flag (async-signal-safe); long loops poll
// stop_requested() at step boundaries, checkpoint, and exit with kExitPreempted. SIGTERM is
// always handled (Slurm's time limit and preemption both send it); the "checkpoint" signal is
// SIGUSR1 by default (Lightning's choice; Slurm's --signal=B:USR1@120) and configurable.
#pragma once
#include <csignal>

namespace xp::runtime {

// Exit code of a run that stopped on a signal after saving a resumable checkpoint
// (EX_TEMPFAIL: "try again later"). 0 = done, 2 = bad config or usage, anything else = failure.
inline constexpr int kExitPreempted = 75;
inline constexpr int kExitUsage = 2;

void install_stop_handlers(int checkpoint_signal = SIGUSR1);
bool stop_requested();
int stop_signal();          // the signal that set the flag, 0 if none
void request_stop(int sig);  // what the handler does; also for tests
void clear_stop_request();

}  // namespace xp::runtime
