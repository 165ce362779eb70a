#include "core/config/reader.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "core/config/error.h"

namespace xp::config {
namespace {
const ConfigNode& empty_map() {
  static const ConfigNode m = ConfigNode::map();
  return m;
}
}  // namespace

ConfigReader::ConfigReader(const ConfigNode& node, std::string path)
    : node_(node.is_null() ? empty_map() : node), path_(std::move(path)) {
  if (!node_.is_map())
    throw ConfigError(fmt::format("expected a map of settings, found a {}", node_.kind_name()), node_.loc(),
                      path_, "write the settings as key: value pairs");
}

const ConfigNode* ConfigReader::lookup(const std::string& key) const {
  used_.insert(key);
  return node_.find(key);
}

bool ConfigReader::has(const std::string& key) const { return node_.find(key) != nullptr; }

const ConfigNode* ConfigReader::raw(const std::string& key) const { return lookup(key); }

void ConfigReader::type_error(const std::string& key, const ConfigNode& n, const char* want) const {
  std::string shown = n.is_scalar() ? fmt::format(" '{}'", n.scalar_text()) : std::string();
  throw ConfigError(fmt::format("type mismatch: expected {}, got {}{}", want, n.kind_name(), shown), n.loc(),
                    join_path(path_, key), fmt::format("set {}=<{}>", join_path(path_, key), want));
}

void ConfigReader::get(const std::string& key, bool& out) const {
  if (const ConfigNode* n = lookup(key)) {
    if (n->kind() != ConfigNode::Kind::kBool) type_error(key, *n, "bool");
    out = n->as_bool();
  }
}

bool Range::contains(double v) const {
  if (!std::isfinite(v)) return false;
  bool above = min_open ? v > min : v >= min;
  bool below = max_open ? v < max : v <= max;
  return above && below;
}

std::string Range::describe() const {
  const bool no_min = min <= -1e308, no_max = max >= 1e308;
  if (no_min && no_max) return "a finite number";
  if (no_max) return fmt::format("{} {}", min_open ? ">" : "≥", min);
  if (no_min) return fmt::format("{} {}", max_open ? "<" : "≤", max);
  return fmt::format("in {}{}, {}{}", min_open ? '(' : '[', min, max, max_open ? ')' : ']');
}

void ConfigReader::check_range(const std::string& key, const ConfigNode& n, double v, const Range& range) const {
  if (range.contains(v)) return;
  throw ConfigError(fmt::format("{} is out of range: must be {}", n.scalar_text(), range.describe()), n.loc(),
                    join_path(path_, key), fmt::format("set {} to a value {}", join_path(path_, key), range.describe()));
}

void ConfigReader::get(const std::string& key, int64_t& out, const Range& range) const {
  if (const ConfigNode* n = lookup(key)) {
    if (n->kind() != ConfigNode::Kind::kInt) type_error(key, *n, "int");
    check_range(key, *n, static_cast<double>(n->as_int()), range);
    out = n->as_int();
  }
}

void ConfigReader::get(const std::string& key, int& out, const Range& range) const {
  int64_t v = out;
  get(key, v, range);
  if (v < INT32_MIN || v > INT32_MAX) type_error(key, *node_.find(key), "32-bit int");
  out = static_cast<int>(v);
}

void ConfigReader::get(const std::string& key, uint64_t& out, const Range& range) const {
  int64_t v = static_cast<int64_t>(out);
  get(key, v, range);
  if (v < 0) type_error(key, *node_.find(key), "non-negative int");
  out = static_cast<uint64_t>(v);
}

void ConfigReader::get(const std::string& key, double& out, const Range& range) const {
  if (const ConfigNode* n = lookup(key)) {
    if (n->kind() != ConfigNode::Kind::kFloat && n->kind() != ConfigNode::Kind::kInt) type_error(key, *n, "float");
    check_range(key, *n, n->as_double(), range);
    out = n->as_double();
  }
}

void ConfigReader::get(const std::string& key, std::string& out) const {
  if (const ConfigNode* n = lookup(key)) {
    if (!n->is_scalar() || n->is_null()) type_error(key, *n, "string");
    out = n->scalar_text();
  }
}

namespace {
template <class T, class F>
void get_list(const ConfigReader& r, const ConfigNode* n, const std::string& key, std::vector<T>& out, F convert) {
  if (!n) return;
  if (!n->is_list())
    throw ConfigError(fmt::format("type mismatch: expected a list, got {}", n->kind_name()), n->loc(),
                      join_path(r.path(), key), fmt::format("write {}=[a,b,...]", join_path(r.path(), key)));
  out.clear();
  for (const auto& e : n->elements()) out.push_back(convert(e, join_path(r.path(), key)));
}
}  // namespace

void ConfigReader::get(const std::string& key, std::vector<double>& out, const Range& range) const {
  get_list(*this, lookup(key), key, out, [&](const ConfigNode& e, const std::string& p) {
    if (e.kind() != ConfigNode::Kind::kFloat && e.kind() != ConfigNode::Kind::kInt)
      throw ConfigError(fmt::format("type mismatch: list element '{}' is not a number", e.scalar_text()), e.loc(), p,
                        "write a list of numbers, e.g. [0.1, 0.2]");
    check_range(key, e, e.as_double(), range);
    return e.as_double();
  });
}

void ConfigReader::get(const std::string& key, std::vector<int64_t>& out, const Range& range) const {
  get_list(*this, lookup(key), key, out, [&](const ConfigNode& e, const std::string& p) {
    if (e.kind() != ConfigNode::Kind::kInt)
      throw ConfigError(fmt::format("type mismatch: list element '{}' is not an int", e.scalar_text()), e.loc(), p,
                        "write a list of integers, e.g. [16, 32]");
    check_range(key, e, static_cast<double>(e.as_int()), range);
    return e.as_int();
  });
}

void ConfigReader::get(const std::string& key, std::vector<std::string>& out) const {
  get_list(*this, lookup(key), key, out, [](const ConfigNode& e, const std::string& p) {
    if (!e.is_scalar())
      throw ConfigError("type mismatch: list element is not a scalar", e.loc(), p, "write a list of names, e.g. [a, b]");
    return e.scalar_text();
  });
}

void ConfigReader::get(const std::string& key, std::vector<bool>& out) const {
  get_list(*this, lookup(key), key, out, [](const ConfigNode& e, const std::string& p) {
    if (e.kind() != ConfigNode::Kind::kBool)
      throw ConfigError("type mismatch: list element is not a bool", e.loc(), p, "write a list of true/false, e.g. [false, true]");
    return e.as_bool();
  });
}

void ConfigReader::get_enum(const std::string& key, std::string& out, const std::vector<std::string>& allowed) const {
  get(key, out);
  if (std::find(allowed.begin(), allowed.end(), out) != allowed.end()) return;
  const ConfigNode* n = node_.find(key);
  std::string hint = did_you_mean(out, allowed);
  throw ConfigError(fmt::format("'{}' is not one of: {}", out, fmt::join(allowed, ", ")), n ? n->loc() : SourceLoc{},
                    join_path(path_, key), hint.empty() ? fmt::format("choose one of: {}", fmt::join(allowed, ", ")) : hint);
}

ConfigReader ConfigReader::section(const std::string& key) const {
  const ConfigNode* n = lookup(key);
  static const ConfigNode kNull;
  return ConfigReader(n ? *n : kNull, join_path(path_, key));
}

void ConfigReader::finish() const {
  std::vector<std::string> known(used_.begin(), used_.end());
  for (const auto& [k, v] : node_.items()) {
    if (used_.count(k)) continue;
    std::string hint = did_you_mean(k, known);
    throw ConfigError(fmt::format("unknown key '{}'", k), v.loc(), join_path(path_, k),
                      hint.empty() ? fmt::format("known keys here: {}", fmt::join(known, ", ")) : hint);
  }
}

}  // namespace xp::config
