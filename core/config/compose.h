// Hydra-like composition (docs/configs.md): a search path of config directories,
// config groups (sub-folders), `defaults:` lists with `_self_`, `override`, `optional`,
// `group@pkg`, `# @package` headers (`_global_`, `_group_`), and command-line overrides.
// The result is one unresolved tree that holds the job's config plus a `hydra` subtree
// (run/sweep dirs, job name, launcher, choices); resolve() it to read values.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config/node.h"

namespace xp::config {

// Ordered config directories: the user's (derived from the primary config's location) first,
// then the repository's built-in configs/ (hydra/launcher options and shared groups).
class SearchPath {
 public:
  SearchPath() = default;
  explicit SearchPath(std::vector<std::filesystem::path> dirs);
  const std::vector<std::filesystem::path>& dirs() const { return dirs_; }

  // "scheduler/vllm" -> the first <dir>/scheduler/vllm.yaml that exists.
  std::optional<std::filesystem::path> find(const std::string& config_path) const;
  bool is_group(const std::string& group) const;
  std::vector<std::string> options(const std::string& group) const;  // sorted, unique
  std::vector<std::string> groups() const;                           // every group, nested too

 private:
  std::vector<std::filesystem::path> dirs_;
};

// The built-in configs/ directory of this source tree (compiled in).
std::filesystem::path builtin_config_dir();
// The search path for a primary config file: its nearest ancestor directory named `configs`
// (else its own directory), then builtin_config_dir().
SearchPath search_path_for(const std::filesystem::path& primary_config);

// One config of the defaults tree, recorded when its own keys (its `_self_`) merge, so the
// list is in merge order: a later row overrides an earlier one.
struct DefaultsEntry {
  std::string config_path;  // "scheduler/vllm"; the primary config's stem; "hydra/config"
  std::string package;      // where its keys landed ("" = root)
  std::string parent;       // the config whose defaults list named it ("<root>" for top level)
  int depth = 0;
};

struct ComposeRequest {
  SearchPath search_path;
  std::filesystem::path primary;        // primary config file; empty = no primary
  std::vector<std::string> overrides;   // command-line overrides, no sweeps
  std::string job_name;                 // default: the primary config's stem
};

struct ComposedConfig {
  ConfigNode root;                      // job config + `hydra` subtree, unresolved
  std::vector<DefaultsEntry> defaults;  // in merge order, for --info defaults
  std::vector<std::pair<std::string, std::string>> choices;  // group -> option ("null" if none)
  std::vector<std::string> overrides;

  ConfigNode job() const;    // root without `hydra`
  ConfigNode hydra() const;  // the `hydra` subtree
};

// Throws ConfigError (file:line:col, key, hint) on anything a person must fix.
ComposedConfig compose(const ComposeRequest& request);

// The overrides that are the task's: those of the framework itself (hydra.*, hydra/...) are kept
// apart, as Hydra keeps them (hydra.overrides.task, hydra.job.override_dirname).
std::vector<std::string> task_overrides(const std::vector<std::string>& overrides);

}  // namespace xp::config
