// A progress reporter for long loops. On a terminal it redraws one live bar on stderr; when
// stderr is not a TTY or the process runs under Slurm it logs a line every `log_every_s`
// seconds instead (tqdm's behaviour), so batch logs stay readable. Not thread-safe: one loop
// owns it.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace xp::runtime {

class Progress {
 public:
  Progress(std::string label, int64_t total, double log_every_s = 10.0);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void set(int64_t done);  // absolute position (resumed loops start mid-way)
  void advance(int64_t n = 1) { set(done_ + n); }
  void finish();

  // The one-line text shown for the current state, e.g. "train  42% 420/1000 [3.1 it/s]".
  std::string line() const;

 private:
  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  int64_t start_done_ = 0;
  double log_every_s_;
  bool live_;
  bool finished_ = false;
  bool started_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace xp::runtime
