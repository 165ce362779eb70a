// ConfigReader: builds a component's plain config struct from a resolved ConfigNode and
// rejects keys the struct does not know (with a "did you mean"). Usage:
//
//   struct TrainConfig {
//     int64_t steps = 100;     // SGD steps
//     double lr = 0.1;         // learning rate
//     static TrainConfig from(const ConfigReader& r) {
//       TrainConfig c;
//       r.get("steps", c.steps, Range::at_least(1)); r.get("lr", c.lr, Range::positive());
//       r.finish();            // unknown keys -> ConfigError
//       return c;
//     }
//   };
//
// Every number is read with its declared Range (the numeric overloads without one are deleted,
// so a new key cannot forget it); NaN and ±inf are never accepted. Type mismatches and values
// out of range name the key path and where the value was set. Not thread-safe.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace xp::config {

// The values a numeric key accepts: an interval whose ends are closed unless marked open.
struct Range {
  double min = -1e308, max = 1e308;
  bool min_open = false, max_open = false;

  static Range between(double lo, double hi) { return {lo, hi}; }
  static Range at_least(double lo) { return {lo, 1e308}; }
  static Range positive() { return {0.0, 1e308, true}; }
  static Range non_negative() { return at_least(0.0); }
  static Range fraction() { return between(0.0, 1.0); }  // shares and probabilities
  static Range any() { return {}; }                        // any finite number
  Range open_above() const { Range r = *this; r.max_open = true; return r; }
  Range open_below() const { Range r = *this; r.min_open = true; return r; }

  bool contains(double v) const;
  std::string describe() const;  // "in [0, 1)", "> 0", "≥ 1", "a finite number"
};

class ConfigReader {
 public:
  // `node` must be a map or null (null = all defaults). `path` is its dotted key, for messages.
  ConfigReader(const ConfigNode& node, std::string path);

  bool has(const std::string& key) const;
  // Each overwrites `out` only when the key is present; the caller's default stays otherwise.
  void get(const std::string& key, bool& out) const;
  void get(const std::string& key, int64_t& out, const Range& range) const;
  void get(const std::string& key, int& out, const Range& range) const;
  void get(const std::string& key, uint64_t& out, const Range& range) const;
  void get(const std::string& key, double& out, const Range& range) const;
  void get(const std::string& key, std::string& out) const;
  void get(const std::string& key, std::vector<double>& out, const Range& range) const;  // each element
  void get(const std::string& key, std::vector<int64_t>& out, const Range& range) const;
  void get(const std::string& key, std::vector<std::string>& out) const;
  void get(const std::string& key, std::vector<bool>& out) const;
  // A number without a declared range does not compile.
  void get(const std::string& key, int64_t& out) const = delete;
  void get(const std::string& key, int& out) const = delete;
  void get(const std::string& key, uint64_t& out) const = delete;
  void get(const std::string& key, double& out) const = delete;
  void get(const std::string& key, std::vector<double>& out) const = delete;
  void get(const std::string& key, std::vector<int64_t>& out) const = delete;
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
  void check_range(const std::string& key, const ConfigNode& n, double v, const Range& range) const;

  const ConfigNode& node_;
  std::string path_;
  mutable std::set<std::string> used_;
};

}  // namespace xp::config
