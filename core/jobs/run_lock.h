// RunLock: one process at a time in a run directory. Two `exp run --resume DIR` at once would
// both restore results.h5 from the last checkpoint and write over each other, and HDF5's own
// file locking is off on most cluster file systems (and in our Slurm scripts), so the run
// directory carries its own lock: an flock(2) on DIR/.exp.lock held for the whole run, released
// by the kernel when the process ends however it ends. The file records the holder's pid and
// host, so a refused second run can say who holds it.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

namespace xp::jobs {

class RunLock {
 public:
  // Takes the lock or returns nullopt with `holder` set to "pid N on host H" (what the file
  // says). Throws std::runtime_error when the lock file cannot be opened at all.
  static std::optional<RunLock> try_acquire(const std::filesystem::path& run_dir, std::string* holder);
  ~RunLock();
  RunLock(RunLock&& o) noexcept;
  RunLock& operator=(RunLock&&) = delete;
  RunLock(const RunLock&) = delete;

 private:
  explicit RunLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace xp::jobs
