// Running the `exp` binary from end-to-end tests, as a user would: in a scratch directory, with
// the repository's configs; and stopping a run with SIGTERM once it has written a checkpoint.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"

extern char** environ;

namespace xp::testing {

inline const std::string kExp = std::string(EXP_BINARY_DIR) + "/exp";
inline const std::string kConfigs = std::string(EXP_SOURCE_DIR) + "/configs";

struct Ran {
  int rc;
  std::string out, err;
};

// Runs `exp ARGS` in `dir`; `env` is prepended as shell assignments.
inline Ran run_exp(const TempDir& dir, const std::string& args, const std::string& env = "") {
  std::string cmd = "cd " + dir.path().string() + " && " + env + " " + kExp + " " + args + " > out.txt 2> err.txt";
  int status = std::system(cmd.c_str());
  return {WEXITSTATUS(status), dir.read("out.txt"), dir.read("err.txt")};
}

// Starts `exp ARGS...` in the background, stderr to `err_file` (and stdout to `out_file` when
// given); returns its pid, -1 if it could not start.
inline pid_t spawn_exp(std::vector<std::string> args, const std::filesystem::path& err_file,
                       const std::filesystem::path& out_file = {}) {
  args.insert(args.begin(), kExp);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (!out_file.empty()) posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  if (posix_spawn(&pid, kExp.c_str(), &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Whether `file` exists — or, for a checkpoint (.ckpt), a later one in its directory (names are
// zero-padded positions, so later sorts after): a run keeps only its last two checkpoints, and a
// fast one deletes this one before a 5 ms poll under load may see it.
inline bool reached(const std::filesystem::path& file) {
  if (file.extension() != ".ckpt") return std::filesystem::exists(file);
  std::error_code ec;
  for (std::filesystem::directory_iterator it(file.parent_path(), ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".ckpt" && it->path().filename() >= file.filename()) return true;
  return false;
}

// Starts `exp ARGS...` (stderr to `err_file`), waits until `checkpoint` is reached (at most 60 s),
// sends `signal` and returns the exit status (75 = stopped after saving a checkpoint; 0 = it
// finished before it could be stopped; -1 = killed by the signal, as SIGKILL does).
inline int run_exp_until_checkpoint(std::vector<std::string> args, const std::filesystem::path& err_file,
                                    const std::filesystem::path& checkpoint, int signal = SIGTERM) {
  pid_t pid = spawn_exp(std::move(args), err_file);
  if (pid < 0) return -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!reached(checkpoint) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, signal);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace xp::testing
