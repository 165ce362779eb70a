// The `exp` verbs. Each returns the process exit code: 0 done, 2 bad config or usage
// (nothing written), 75 preempted after a checkpoint (resume with --resume), 1 failure.
#pragma once
#include <string>
#include <vector>

namespace xp::cli {

struct RunOptions {
  std::string config;                    // primary config file (may be empty)
  std::vector<std::string> overrides;    // command-line overrides
  bool multirun = false;                 // -m / `exp sweep`
  std::string cfg;                       // --cfg job|hydra|all: print instead of running
  bool resolve = false;                  // --resolve with --cfg
  std::string package;                   // -p: print only this subtree
  std::string info;                      // --info defaults
  bool check = false;                    // --check: build the experiment from the config, run nothing
  std::string resume_dir;                // --resume RUN_DIR
  int jobs = 1;                          // --jobs: local sweep processes at a time
  std::vector<std::string> config_dirs;  // -cd: extra search dirs (searched first)
  std::string config_path;               // -cp
  std::string config_name;               // -cn
  std::string manifest;                  // --from-manifest (Slurm array tasks)
  int index = -1;                        // --index
  int workers = 0;                       // --workers with --resume: train.workers for the rest of the run
};

int run_command(const RunOptions& options);
// `exp serve`: configs/serve.yaml (or `config_file`) with `overrides`; serves until SIGTERM/SIGINT.
int serve_command(const std::string& config_file, const std::vector<std::string>& overrides);
int list_command(const std::vector<std::string>& config_dirs);
int show_command(const std::string& path, int rows);
int collect_command(const std::string& sweep_dir);

// One-shot DynaQuant of an existing checkpoint (no delta, a fixed configuration).
struct CompressOptions {
  std::string input;   // compress: a .safetensors file, an index.json or a folder; decompress: a .dqck
  std::string output;  // compress: the .dqck; decompress: the .safetensors
  int bins = 16;
  double prune_fraction = 0.0;
  double protect_fraction = 0.005;
};
int compress_command(const CompressOptions& options);
int decompress_command(const CompressOptions& options);

}  // namespace xp::cli
