// The command-line override grammar (docs/configs.md, Hydra's):
//   key=value  +key=value  ++key=value  ~key  ~key=value  group=option  group@pkg=option
// Values are typed (null, int, float, bool, quoted string, [list], {dict}, ${interp}) and may be
// sweeps: comma lists `a,b`, `range(0,10,2)`, `choice(a,b)`, `glob(*,exclude=x*)`; and Hydra's other
// functions, nested: sort(), shuffle(), tag(), and the casts str(), int(), float(), bool().
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace xp::config {

struct Override {
  enum class Op { kSet, kAdd, kForceAdd, kDelete };
  Op op = Op::kSet;
  std::string key;      // dotted key or group path ("hydra/launcher")
  std::string package;  // the part after '@', empty if none
  std::string text;     // the override as typed, for messages and overrides.yaml

  // The value. For a plain value, `value` holds it. For a sweep, `sweep` holds each element
  // as override text ("1", "'a b'") and `value` is unset; glob sweeps keep their patterns.
  std::optional<ConfigNode> value;
  std::vector<std::string> sweep;
  bool is_glob = false;
  std::vector<std::string> glob_include, glob_exclude;

  bool is_sweep() const { return !sweep.empty() || is_glob; }
  // The value text as typed after '=' (empty for `~key`).
  std::string value_text;
};

// Parses one override; throws ConfigError pointing at the column of the problem.
Override parse_override(const std::string& text);

// Parses an override value alone ("[1,2]", "'x'", "3"); used by sweep expansion and tests.
ConfigNode parse_override_value(const std::string& text);

}  // namespace xp::config
