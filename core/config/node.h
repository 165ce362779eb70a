// ConfigNode: the value-semantic config tree every composition step works on (yaml-cpp
// only parses and emits; its Nodes have reference semantics). Maps keep key
// order, so dumps are deterministic. Every node remembers where it came from (file, line,
// column, or the command-line override) so errors can point at it. Plain value type: copy it
// freely; not synchronised.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xp::config {

struct SourceLoc {
  std::string file;  // config file path, "<command line>", or empty when unknown
  int line = 0;      // 1-based; 0 = unknown
  int column = 0;    // 1-based; 0 = unknown
  std::string str() const;  // "file:line:col", "file", or ""
};

class ConfigNode {
 public:
  enum class Kind { kNull, kBool, kInt, kFloat, kString, kList, kMap };
  using Map = std::vector<std::pair<std::string, ConfigNode>>;
  using List = std::vector<ConfigNode>;

  ConfigNode() = default;  // null
  static ConfigNode boolean(bool v);
  static ConfigNode integer(int64_t v);
  static ConfigNode real(double v);
  static ConfigNode string(std::string v);
  static ConfigNode list();
  static ConfigNode map();

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_map() const { return kind_ == Kind::kMap; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_scalar() const { return !is_map() && !is_list(); }
  bool is_string() const { return kind_ == Kind::kString; }
  // "???": a mandatory value nobody has set yet.
  bool is_missing() const { return kind_ == Kind::kString && str_ == "???"; }
  // A string holding an unescaped "${...}", resolved lazily by resolve().
  bool is_interpolation() const;

  bool as_bool() const { return bool_; }
  int64_t as_int() const { return int_; }
  double as_double() const { return kind_ == Kind::kInt ? static_cast<double>(int_) : real_; }
  const std::string& as_string() const { return str_; }

  // Map access (the node must be a map; find on a non-map returns nullptr).
  const ConfigNode* find(std::string_view key) const;
  ConfigNode* find(std::string_view key);
  ConfigNode& set(std::string key, ConfigNode value);  // replaces in place or appends
  bool erase(std::string_view key);
  const Map& items() const { return map_; }
  Map& items() { return map_; }

  // List access.
  const List& elements() const { return list_; }
  List& elements() { return list_; }
  void push_back(ConfigNode v) { list_.push_back(std::move(v)); }

  size_t size() const { return is_map() ? map_.size() : list_.size(); }

  // Dotted paths ("a.b.0.c"; list elements by index). Empty path = this node.
  const ConfigNode* at_path(std::string_view path) const;
  ConfigNode* at_path(std::string_view path);
  // Creates missing intermediate maps; a null on the way becomes a map.
  ConfigNode& ensure_path(std::string_view path);
  bool erase_path(std::string_view path);

  // The scalar as written on a command line or in a summary ("null", "true", "3", "0.5", "x").
  std::string scalar_text() const;
  std::string_view kind_name() const;

  const SourceLoc& loc() const { return loc_; }
  void set_loc(SourceLoc loc) { loc_ = std::move(loc); }
  void set_loc_recursive(const SourceLoc& loc);

  // Structural equality (locations ignored).
  bool operator==(const ConfigNode& other) const;

 private:
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  int64_t int_ = 0;
  double real_ = 0.0;
  std::string str_;
  List list_;
  Map map_;
  SourceLoc loc_;
};

// Merges src into dst: maps merge key by key recursively; anything else replaces (lists are
// assigned, not concatenated — Hydra's rule).
void merge_into(ConfigNode& dst, const ConfigNode& src);

// Every leaf key path in the tree ("a.b", "a.c.0"), maps and lists included as prefixes.
std::vector<std::string> all_paths(const ConfigNode& root);

// Splits "a.b.c" into {"a","b","c"}; "" gives {}.
std::vector<std::string> split_path(std::string_view path);
std::string join_path(const std::string& parent, const std::string& key);

}  // namespace xp::config
