#include "core/config/override.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>

#include "core/config/error.h"
#include "core/config/yaml_io.h"

namespace xp::config {
namespace {

std::string trim(const std::string& t) {
  size_t b = t.find_first_not_of(" \t"), e = t.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : t.substr(b, e - b + 1);
}

// Recursive-descent parser over one override's value text. `offset` is where the value starts
// in the whole override, so error columns point into what the user typed.
class ValueParser {
 public:
  ValueParser(const std::string& text, const std::string& whole, size_t offset)
      : s_(text), whole_(whole), offset_(offset) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError(fmt::format("cannot parse override '{}': {}", whole_, what),
                      {"<command line>", 1, static_cast<int>(offset_ + pos_ + 1)}, {},
                      "quote values containing , [ ] { } ( ) = : with '...' or escape them with \\");
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  size_t pos() const { return pos_; }
  bool consume(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void skip_ws() {
    while (!at_end() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }

  // element := quoted | [list] | {dict} | primitive
  ConfigNode element() {
    skip_ws();
    ConfigNode out;
    if (peek() == '\'' || peek() == '"') out = ConfigNode::string(quoted());
    else if (peek() == '[') out = list();
    else if (peek() == '{') out = dict();
    else out = infer_scalar(primitive_text(/*stop_at_colon=*/false));
    skip_ws();
    return out;
  }

  // Top-level elements separated by commas, each with the text it was written as.
  std::vector<std::pair<std::string, ConfigNode>> elements() {
    std::vector<std::pair<std::string, ConfigNode>> out;
    while (true) {
      size_t begin = pos_;
      ConfigNode v = element();
      out.emplace_back(trim(s_.substr(begin, pos_ - begin)), std::move(v));
      if (at_end()) return out;
      if (!consume(',')) fail(fmt::format("unexpected '{}'", peek()));
    }
  }

 private:
  std::string quoted() {
    char q = s_[pos_++];
    std::string out;
    while (!at_end() && s_[pos_] != q) {
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size() && (s_[pos_ + 1] == q || s_[pos_ + 1] == '\\')) ++pos_;
      out += s_[pos_++];
    }
    if (at_end()) fail(fmt::format("unterminated quoted string (missing {})", q));
    ++pos_;
    return out;
  }

  // Unquoted text up to a structural character. `\,`-style escapes keep the character;
  // interpolations ${...} are copied whole, commas and braces included.
  std::string primitive_text(bool stop_at_colon) {
    std::string out;
    while (!at_end()) {
      char c = s_[pos_];
      if (c == '\\' && pos_ + 1 < s_.size() &&
          std::string_view("\\,:=[]{}()'\" ").find(s_[pos_ + 1]) != std::string_view::npos) {
        out += s_[pos_ + 1];
        pos_ += 2;
        continue;
      }
      if (c == '$' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '{') {
        size_t depth = 1, start = pos_;
        pos_ += 2;
        for (; !at_end() && depth > 0; ++pos_) {
          if (s_[pos_] == '{') ++depth;
          if (s_[pos_] == '}') --depth;
        }
        if (depth) fail("unterminated interpolation '${'");
        out += s_.substr(start, pos_ - start);
        continue;
      }
      if (std::string_view(",[]{}()'\"=").find(c) != std::string_view::npos || (stop_at_colon && c == ':'))
        break;
      out += c;
      ++pos_;
    }
    return trim(out);  // Hydra drops surrounding whitespace of unquoted values
  }

  ConfigNode list() {
    ++pos_;
    ConfigNode out = ConfigNode::list();
    skip_ws();
    if (consume(']')) return out;
    while (true) {
      out.push_back(element());
      if (consume(',')) continue;
      if (consume(']')) return out;
      fail("expected ',' or ']' in list");
    }
  }

  ConfigNode dict() {
    ++pos_;
    ConfigNode out = ConfigNode::map();
    skip_ws();
    if (consume('}')) return out;
    while (true) {
      skip_ws();
      std::string key = (peek() == '\'' || peek() == '"') ? quoted() : primitive_text(/*stop_at_colon=*/true);
      skip_ws();
      if (key.empty() || !consume(':')) fail("expected 'key: value' in dict");
      out.set(key, element());
      if (consume(',')) continue;
      if (consume('}')) return out;
      fail("expected ',' or '}' in dict");
    }
  }

  const std::string& s_;
  const std::string& whole_;
  size_t offset_;
  size_t pos_ = 0;
};

bool is_key_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' || c == '-';
}

// Splits function arguments at commas outside quotes and brackets.
std::vector<std::string> split_args(const std::string& s) {
  std::vector<std::string> out;
  int depth = 0;
  char quote = 0;
  std::string cur;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '[' || c == '{' || c == '(') {
      ++depth;
    } else if (c == ']' || c == '}' || c == ')') {
      --depth;
    } else if (c == ',' && depth == 0) {
      out.push_back(trim(cur));
      cur.clear();
      continue;
    } else if (c == '\\' && i + 1 < s.size()) {
      cur += c;
      c = s[++i];
    }
    cur += c;
  }
  if (!trim(cur).empty() || !out.empty()) out.push_back(trim(cur));
  return out;
}

// range(start, stop[, step]) like Python's, on ints or floats (Hydra: range(0,10,3.3) gives
// 0.0, 3.3, 6.6, 9.9).
std::vector<std::string> expand_range(const std::vector<std::string>& args, const std::string& whole) {
  auto bad = [&](const std::string& why) -> ConfigError {
    return ConfigError(fmt::format("bad range() in override '{}': {}", whole, why), {"<command line>"}, {},
                       "write range(stop), range(start,stop) or range(start,stop,step)");
  };
  if (args.empty() || args.size() > 3) throw bad("expected 1 to 3 arguments");
  std::vector<ConfigNode> v;
  bool all_int = true;
  for (const auto& a : args) {
    ConfigNode n = infer_scalar(a);
    if (n.kind() != ConfigNode::Kind::kInt && n.kind() != ConfigNode::Kind::kFloat)
      throw bad(fmt::format("'{}' is not a number", a));
    all_int = all_int && n.kind() == ConfigNode::Kind::kInt;
    v.push_back(n);
  }
  double start = 0, stop, step = 1;
  if (v.size() == 1) stop = v[0].as_double();
  else start = v[0].as_double(), stop = v[1].as_double();
  if (v.size() == 3) step = v[2].as_double();
  if (step == 0) throw bad("step must not be 0");
  std::vector<std::string> out;
  for (int64_t i = 0;; ++i) {
    double x = start + static_cast<double>(i) * step;
    if ((step > 0 && x >= stop) || (step < 0 && x <= stop)) break;
    if (out.size() > 100000) throw bad("more than 100000 values");
    if (all_int) {
      out.push_back(std::to_string(static_cast<int64_t>(x)));
    } else {
      double rounded = std::round(x * 1e12) / 1e12;  // 3*3.3 prints 9.9, not 9.899999999999999
      out.push_back(ConfigNode::real(rounded).scalar_text());
    }
  }
  return out;
}

}  // namespace

ConfigNode parse_override_value(const std::string& text) {
  ValueParser p(text, text, 0);
  ConfigNode v = p.element();
  if (!p.at_end()) p.fail(fmt::format("unexpected '{}'", p.peek()));
  return v;
}

Override parse_override(const std::string& text) {
  check_utf8(text, "<command line>");
  Override o;
  o.text = text;
  auto fail_at = [&](size_t col, const std::string& what, const std::string& hint) {
    throw ConfigError(fmt::format("cannot parse override '{}': {}", text, what),
                      {"<command line>", 1, static_cast<int>(col + 1)}, {}, hint);
  };
  size_t i = 0;
  if (text.starts_with("++")) o.op = Override::Op::kForceAdd, i = 2;
  else if (text.starts_with("+")) o.op = Override::Op::kAdd, i = 1;
  else if (text.starts_with("~")) o.op = Override::Op::kDelete, i = 1;

  size_t key_start = i;
  while (i < text.size() && is_key_char(text[i])) ++i;
  o.key = text.substr(key_start, i - key_start);
  if (o.key.empty())
    fail_at(key_start, "missing key", "overrides look like key=value, +key=value, ~key or group=option");
  if (i < text.size() && text[i] == '@') {
    size_t pkg_start = ++i;
    while (i < text.size() && is_key_char(text[i])) ++i;
    o.package = text.substr(pkg_start, i - pkg_start);
  }
  if (i == text.size()) {
    if (o.op != Override::Op::kDelete)
      fail_at(i, "missing '=VALUE'", fmt::format("write {}=VALUE (or ~{} to delete the key)", text, o.key));
    return o;
  }
  if (text[i] != '=')
    fail_at(i, fmt::format("unexpected character '{}' in key", text[i]),
            "keys use letters, digits, '_', '-', '.', and '/' between config group names");
  o.value_text = text.substr(i + 1);
  size_t value_offset = i + 1;
  std::string value = trim(o.value_text);

  for (std::string fn : {"range", "choice", "glob"}) {
    if (!value.starts_with(fn + "(") || !value.ends_with(")")) continue;
    std::vector<std::string> args = split_args(value.substr(fn.size() + 1, value.size() - fn.size() - 2));
    if (fn == "range") {
      o.sweep = expand_range(args, text);
    } else if (fn == "choice") {
      if (args.empty()) fail_at(value_offset, "choice() needs at least one value", "write choice(a,b,...)");
      o.sweep = args;
    } else {
      o.is_glob = true;
      for (const auto& a : args) {
        if (a.starts_with("exclude=")) {
          ConfigNode ex = parse_override_value(a.substr(8));
          if (ex.is_list())
            for (const auto& e : ex.elements()) o.glob_exclude.push_back(e.scalar_text());
          else
            o.glob_exclude.push_back(ex.scalar_text());
        } else {
          o.glob_include.push_back(a);
        }
      }
      if (o.glob_include.empty()) o.glob_include.push_back("*");
    }
    if (o.sweep.empty() && !o.is_glob)
      fail_at(value_offset, fmt::format("{}() produced no values", fn),
              "check the bounds: range(start, stop, step) stops before `stop`, and a negative step counts down");
    return o;
  }

  ValueParser p(o.value_text, text, value_offset);
  auto items = p.elements();
  if (items.size() > 1) {
    for (auto& [src, v] : items) o.sweep.push_back(src);
  } else {
    o.value = std::move(items.front().second);
  }
  return o;
}

}  // namespace xp::config
