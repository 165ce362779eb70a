#include "core/jobs/run_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace xp::jobs {

std::optional<RunLock> RunLock::try_acquire(const std::filesystem::path& run_dir, std::string* holder) {
  std::filesystem::path path = run_dir / ".exp.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open the run lock {}: {}", path.string(), std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[256] = {};
    ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    if (holder) *holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "another process";
    while (holder && !holder->empty() && (holder->back() == '\n' || holder->back() == '\0')) holder->pop_back();
    return std::nullopt;
  }
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  std::string who = fmt::format("pid {} on host {}\n", ::getpid(), host);
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) < 0) {
    // The lock is held either way; only the note about who holds it is missing.
  }
  return RunLock(fd);
}

RunLock::RunLock(RunLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

}  // namespace xp::jobs
