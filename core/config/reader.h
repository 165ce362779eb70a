// ConfigReader: builds a component's plain config struct from a resolved ConfigNode and
// rejects keys the struct does not know (with a "did you mean"). Usage:
//
//   struct TrainConfig {
//     int64_t steps = 100;     // SGD steps
//     double lr = 0.1;         // learning rate
//     static TrainConfig from(const ConfigReader& r) {
//       TrainConfig c;
//       r.get("steps", c.steps); r.get("lr", c.lr);
//       r.finish();            // unknown keys -> ConfigError
//       return c;
//     }
//   };
//
// Type mismatches name the key path and where the value was set. Not thread-safe.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace xp::config {

class ConfigReader {
 public:
  // `node` must be a map or null (null = all defaults). `path` is its dotted key, for messages.
  ConfigReader(const ConfigNode& node, std::string path);

  bool has(const std::string& key) const;
  // Each overwrites `out` only when the key is present; the caller's default stays otherwise.
  void get(const std::string& key, bool& out) const;
  void get(const std::string& key, int64_t& out) const;
  void get(const std::string& key, int& out) const;
  void get(const std::string& key, uint64_t& out) const;
  void get(const std::string& key, double& out) const;
  void get(const std::string& key, std::string& out) const;
  void get(const std::string& key, std::vector<double>& out) const;
  void get(const std::string& key, std::vector<int64_t>& out) const;
  void get(const std::string& key, std::vector<std::string>& out) const;
  // A string that must be one of `allowed`.
  void get_enum(const std::string& key, std::string& out, const std::vector<std::string>& allowed) const;

  ConfigReader section(const std::string& key) const;  // a nested struct's reader
  const ConfigNode* raw(const std::string& key) const;  // marks the key used

  // Throws ConfigError for every key never asked for.
  void finish() const;

  const std::string& path() const { return path_; }

 private:
  const ConfigNode* lookup(const std::string& key) const;
  [[noreturn]] void type_error(const std::string& key, const ConfigNode& n, const char* want) const;

  const ConfigNode& node_;
  std::string path_;
  mutable std::set<std::string> used_;
};

}  // namespace xp::config
