#include "core/runtime/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "core/runtime/logging.h"

namespace xp::runtime {

Progress::Progress(std::string label, int64_t total, double log_every_s)
    : label_(std::move(label)), total_(total), log_every_s_(log_every_s) {
  live_ = isatty(STDERR_FILENO) && std::getenv("SLURM_JOB_ID") == nullptr;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

std::string Progress::line() const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(done_ - start_done_) / elapsed : 0.0;
  double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 0.0;
  constexpr int kWidth = 30;
  int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  return fmt::format("{} [{}] {:3.0f}% {}/{} [{:.1f} it/s]", label_, bar, 100.0 * frac, done_, total_,
                     rate);
}

void Progress::set(int64_t done) {
  auto now = std::chrono::steady_clock::now();
  if (!started_) {  // rate counts from the first position reported, which is mid-way on resume
    started_ = true;
    start_done_ = done;
    start_ = now;
  }
  done_ = done;
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (live_) {
    if (since >= 0.1 || done_ >= total_) {
      std::fprintf(stderr, "\r%s", line().c_str());
      std::fflush(stderr);
      last_draw_ = now;
    }
  } else if (since >= log_every_s_) {
    logger()->info("{}", line());
    last_draw_ = now;
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (live_) {
    std::fprintf(stderr, "\r%s\n", line().c_str());
  } else if (done_ > 0) {
    logger()->info("{}", line());
  }
}

}  // namespace xp::runtime
