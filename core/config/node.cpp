#include "core/config/node.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace xp::config {

std::string SourceLoc::str() const {
  if (file.empty()) return {};
  if (line == 0) return file;
  if (column == 0) return fmt::format("{}:{}", file, line);
  return fmt::format("{}:{}:{}", file, line, column);
}

ConfigNode ConfigNode::boolean(bool v) {
  ConfigNode n;
  n.kind_ = Kind::kBool;
  n.bool_ = v;
  return n;
}
ConfigNode ConfigNode::integer(int64_t v) {
  ConfigNode n;
  n.kind_ = Kind::kInt;
  n.int_ = v;
  return n;
}
ConfigNode ConfigNode::real(double v) {
  ConfigNode n;
  n.kind_ = Kind::kFloat;
  n.real_ = v;
  return n;
}
ConfigNode ConfigNode::string(std::string v) {
  ConfigNode n;
  n.kind_ = Kind::kString;
  n.str_ = std::move(v);
  return n;
}
ConfigNode ConfigNode::list() {
  ConfigNode n;
  n.kind_ = Kind::kList;
  return n;
}
ConfigNode ConfigNode::map() {
  ConfigNode n;
  n.kind_ = Kind::kMap;
  return n;
}

bool ConfigNode::is_interpolation() const {
  if (kind_ != Kind::kString) return false;
  for (size_t i = 0; i + 1 < str_.size(); ++i) {
    if (str_[i] == '\\') {
      ++i;
      continue;
    }
    if (str_[i] == '$' && str_[i + 1] == '{') return true;
  }
  return false;
}

const ConfigNode* ConfigNode::find(std::string_view key) const {
  if (kind_ != Kind::kMap) return nullptr;
  for (const auto& [k, v] : map_)
    if (k == key) return &v;
  return nullptr;
}
ConfigNode* ConfigNode::find(std::string_view key) {
  return const_cast<ConfigNode*>(std::as_const(*this).find(key));
}

ConfigNode& ConfigNode::set(std::string key, ConfigNode value) {
  if (kind_ != Kind::kMap) *this = map();
  if (ConfigNode* existing = find(key)) {
    *existing = std::move(value);
    return *existing;
  }
  map_.emplace_back(std::move(key), std::move(value));
  return map_.back().second;
}

bool ConfigNode::erase(std::string_view key) {
  return std::erase_if(map_, [&](const auto& kv) { return kv.first == key; }) > 0;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  if (path.empty()) return parts;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    parts.emplace_back(path.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

namespace {
std::optional<size_t> parse_index(const std::string& s) {
  size_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}
}  // namespace

const ConfigNode* ConfigNode::at_path(std::string_view path) const {
  const ConfigNode* cur = this;
  for (const auto& part : split_path(path)) {
    if (cur->is_map()) {
      cur = cur->find(part);
    } else if (cur->is_list()) {
      auto idx = parse_index(part);
      cur = idx && *idx < cur->list_.size() ? &cur->list_[*idx] : nullptr;
    } else {
      return nullptr;
    }
    if (!cur) return nullptr;
  }
  return cur;
}
ConfigNode* ConfigNode::at_path(std::string_view path) {
  return const_cast<ConfigNode*>(std::as_const(*this).at_path(path));
}

ConfigNode& ConfigNode::ensure_path(std::string_view path) {
  ConfigNode* cur = this;
  for (const auto& part : split_path(path)) {
    if (cur->is_list()) {
      if (auto idx = parse_index(part); idx && *idx < cur->list_.size()) {
        cur = &cur->list_[*idx];
        continue;
      }
    }
    if (!cur->is_map()) *cur = map();
    ConfigNode* next = cur->find(part);
    cur = next ? next : &cur->set(part, ConfigNode());
  }
  return *cur;
}

bool ConfigNode::erase_path(std::string_view path) {
  auto parts = split_path(path);
  if (parts.empty()) return false;
  std::string last = parts.back();
  parts.pop_back();
  std::string parent;
  for (const auto& p : parts) parent = join_path(parent, p);
  ConfigNode* node = at_path(parent);
  if (!node) return false;
  if (node->is_list()) {
    auto idx = parse_index(last);
    if (!idx || *idx >= node->list_.size()) return false;
    node->list_.erase(node->list_.begin() + static_cast<std::ptrdiff_t>(*idx));
    return true;
  }
  return node->erase(last);
}

std::string ConfigNode::scalar_text() const {
  switch (kind_) {
    case Kind::kNull: return "null";
    case Kind::kBool: return bool_ ? "true" : "false";
    case Kind::kInt: return std::to_string(int_);
    case Kind::kFloat: {
      if (std::isnan(real_)) return "nan";
      if (std::isinf(real_)) return real_ > 0 ? "inf" : "-inf";
      std::string s = fmt::format("{}", real_);
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // keep it a float
      return s;
    }
    case Kind::kString: return str_;
    case Kind::kList: return fmt::format("<list of {}>", list_.size());
    case Kind::kMap: return fmt::format("<map of {}>", map_.size());
  }
  return {};
}

std::string_view ConfigNode::kind_name() const {
  switch (kind_) {
    case Kind::kNull: return "null";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "string";
    case Kind::kList: return "list";
    case Kind::kMap: return "map";
  }
  return "?";
}

void ConfigNode::set_loc_recursive(const SourceLoc& loc) {
  loc_ = loc;
  for (auto& v : list_) v.set_loc_recursive(loc);
  for (auto& [k, v] : map_) v.set_loc_recursive(loc);
}

bool ConfigNode::operator==(const ConfigNode& o) const {
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kNull: return true;
    case Kind::kBool: return bool_ == o.bool_;
    case Kind::kInt: return int_ == o.int_;
    case Kind::kFloat: return real_ == o.real_ || (std::isnan(real_) && std::isnan(o.real_));
    case Kind::kString: return str_ == o.str_;
    case Kind::kList: return list_ == o.list_;
    case Kind::kMap: return map_ == o.map_;
  }
  return false;
}

void merge_into(ConfigNode& dst, const ConfigNode& src) {
  if (dst.is_map() && src.is_map()) {
    for (const auto& [k, v] : src.items()) {
      if (ConfigNode* existing = dst.find(k))
        merge_into(*existing, v);
      else
        dst.set(k, v);
    }
    return;
  }
  dst = src;
}

namespace {
void collect_paths(const ConfigNode& n, const std::string& prefix, std::vector<std::string>& out) {
  if (n.is_map()) {
    for (const auto& [k, v] : n.items()) {
      std::string p = join_path(prefix, k);
      out.push_back(p);
      collect_paths(v, p, out);
    }
  } else if (n.is_list()) {
    for (size_t i = 0; i < n.elements().size(); ++i) {
      std::string p = join_path(prefix, std::to_string(i));
      out.push_back(p);
      collect_paths(n.elements()[i], p, out);
    }
  }
}
}  // namespace

std::vector<std::string> all_paths(const ConfigNode& root) {
  std::vector<std::string> out;
  collect_paths(root, "", out);
  return out;
}

}  // namespace xp::config
