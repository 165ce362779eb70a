#include "core/config/override.h"

#include <fmt/format.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>

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
    else out = typed_primitive(primitive_text(/*stop_at_colon=*/false));
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

  // Hydra's grammar: an integer has no leading zero (010 is the string '010', as a zip code or
  // an id would be), and an empty value is the empty string.
  static ConfigNode typed_primitive(const std::string& t) {
    const size_t digits = t.find_first_not_of("+-");
    if (digits != std::string::npos && t.size() > digits + 1 && t[digits] == '0' &&
        t.find_first_not_of("0123456789_", digits) == std::string::npos)
      return ConfigNode::string(t);
    return infer_scalar(t);
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


// The override functions of Hydra's grammar, nested as Hydra allows: sweeps (range, choice),
// their order (sort, shuffle), sweeper tags (tag; kept for sweepers that sample, ignored by this
// one), and casts (str, int, float, bool) of a value, a list, a dict or each value of a sweep.
struct Evaluated {
  bool is_sweep = false;
  std::vector<std::string> sweep;  // each value as override text
  ConfigNode value;
};

const std::vector<std::string> kFunctions = {"range", "choice", "sort", "shuffle", "tag", "str",
                                             "int", "float", "bool", "interval", "glob"};

// The function name when `t` is one whole call `name(...)`, else "".
std::string call_of(const std::string& t) {
  size_t paren = t.find('(');
  if (paren == std::string::npos || !t.ends_with(")")) return "";
  std::string name = t.substr(0, paren);
  if (std::find(kFunctions.begin(), kFunctions.end(), name) == kFunctions.end()) return "";
  int depth = 0;  // the parenthesis opened after the name must close at the very end
  for (size_t i = paren; i < t.size(); ++i) {
    if (t[i] == '(') ++depth;
    if (t[i] == ')' && --depth == 0 && i + 1 != t.size()) return "";
  }
  return name;
}

// Override text for a value: what parses back to it.
std::string override_text(const ConfigNode& n) {
  switch (n.kind()) {
    case ConfigNode::Kind::kString: {
      std::string out = "'";
      for (char c : n.as_string()) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
      }
      return out + "'";
    }
    case ConfigNode::Kind::kList: {
      std::vector<std::string> parts;
      for (const auto& e : n.elements()) parts.push_back(override_text(e));
      return fmt::format("[{}]", fmt::join(parts, ","));
    }
    case ConfigNode::Kind::kMap: {
      std::vector<std::string> parts;
      for (const auto& [k, v] : n.items()) parts.push_back(fmt::format("{}:{}", k, override_text(v)));
      return fmt::format("{{{}}}", fmt::join(parts, ","));
    }
    default: return n.scalar_text();
  }
}

ConfigNode cast_to(const std::string& type, const ConfigNode& v, const std::string& whole) {
  auto bad = [&] {
    return ConfigError(fmt::format("cannot cast '{}' to {} in override '{}'", override_text(v), type, whole),
                       {"<command line>"}, {}, "str() casts anything; int(), float() and bool() need a value of that meaning");
  };
  if (v.is_list()) {
    ConfigNode out = ConfigNode::list();
    for (const auto& e : v.elements()) out.push_back(cast_to(type, e, whole));
    return out;
  }
  if (v.is_map()) {
    ConfigNode out = ConfigNode::map();
    for (const auto& [k, e] : v.items()) out.set(k, cast_to(type, e, whole));
    return out;
  }
  if (type == "str") return ConfigNode::string(v.scalar_text());
  ConfigNode typed = v.is_string() ? infer_scalar(v.as_string()) : v;
  const bool number = typed.kind() == ConfigNode::Kind::kInt || typed.kind() == ConfigNode::Kind::kFloat;
  if (type == "int") {
    if (typed.kind() == ConfigNode::Kind::kBool) return ConfigNode::integer(typed.as_bool() ? 1 : 0);
    if (!number || !std::isfinite(typed.as_double())) throw bad();
    return ConfigNode::integer(static_cast<int64_t>(typed.as_double()));  // truncates, as Python's int()
  }
  if (type == "float") {
    if (typed.kind() == ConfigNode::Kind::kBool) return ConfigNode::real(typed.as_bool() ? 1.0 : 0.0);
    if (!number) throw bad();
    return ConfigNode::real(typed.as_double());
  }
  // bool
  if (typed.kind() == ConfigNode::Kind::kBool) return typed;
  if (!number) throw bad();
  return ConfigNode::boolean(typed.as_double() != 0.0);
}

// Sorts values of one kind: numbers by value, strings by text.
void sort_values(std::vector<ConfigNode>& v, bool reverse, const std::string& whole) {
  auto is_number = [](const ConfigNode& n) {
    return n.kind() == ConfigNode::Kind::kInt || n.kind() == ConfigNode::Kind::kFloat;
  };
  const bool numbers = std::all_of(v.begin(), v.end(), is_number);
  if (!numbers && !std::all_of(v.begin(), v.end(), [](const ConfigNode& n) { return n.is_string(); }))
    throw ConfigError(fmt::format("sort() needs all numbers or all strings in override '{}'", whole), {"<command line>"}, {},
                      "cast them first, e.g. sort(str(...))");
  std::stable_sort(v.begin(), v.end(), [&](const ConfigNode& a, const ConfigNode& b) {
    return numbers ? a.as_double() < b.as_double() : a.as_string() < b.as_string();
  });
  if (reverse) std::reverse(v.begin(), v.end());
}

Evaluated evaluate(const std::string& text, const std::string& whole);

// The values a function's arguments stand for: one argument that is a sweep or a list gives its
// elements (`sort(choice(3,1))`, `sort([3,1])`); several arguments are a sweep of them.
Evaluated arguments_as_values(const std::vector<std::string>& args, const std::string& whole) {
  if (args.size() == 1) return evaluate(args[0], whole);
  Evaluated e;
  e.is_sweep = true;
  for (const auto& a : args) {
    Evaluated one = evaluate(a, whole);
    if (one.is_sweep) throw ConfigError(fmt::format("a sweep inside a list of values in override '{}'", whole),
                                        {"<command line>"}, {}, "write choice(a,b) or a,b alone");
    e.sweep.push_back(call_of(trim(a)).empty() ? trim(a) : override_text(one.value));  // as typed, when it can be
  }
  return e;
}

Evaluated evaluate(const std::string& raw, const std::string& whole) {
  const std::string text = trim(raw);
  const std::string fn = call_of(text);
  Evaluated out;
  if (fn.empty()) {
    ValueParser p(text, whole, 0);
    auto items = p.elements();
    if (items.size() == 1) {
      out.value = std::move(items.front().second);
      return out;
    }
    out.is_sweep = true;
    for (auto& [src, v] : items) out.sweep.push_back(src);
    return out;
  }
  std::vector<std::string> args = split_args(text.substr(fn.size() + 1, text.size() - fn.size() - 2));
  auto no_args = [&] {
    return ConfigError(fmt::format("{}() needs at least one value in override '{}'", fn, whole), {"<command line>"}, {},
                       fmt::format("e.g. {}(1,2)", fn));
  };
  if (fn == "glob")
    throw ConfigError(fmt::format("glob() must be the whole value in override '{}'", whole), {"<command line>"}, {},
                      "write group=glob(*,exclude=x)");
  if (fn == "interval")
    throw ConfigError(fmt::format("interval() in override '{}' is for sweepers that sample (Optuna, Ax, Nevergrad)", whole),
                      {"<command line>"}, {}, "exp's sweeper enumerates values: use range(start,stop,step) or choice(...)");
  if (fn == "range") {
    out.is_sweep = true;
    out.sweep = expand_range(args, whole);
    return out;
  }
  if (fn == "choice") {
    if (args.empty()) throw no_args();
    Evaluated all = arguments_as_values(args, whole);
    out.is_sweep = true;
    out.sweep = all.is_sweep ? all.sweep : std::vector<std::string>{override_text(all.value)};
    return out;
  }
  if (fn == "tag") {  // tag(t1, ..., value): the tags are for sweepers that use them
    if (args.empty()) throw no_args();
    return evaluate(args.back(), whole);
  }
  bool reverse = false;
  if (fn == "sort" && !args.empty() && args.back().starts_with("reverse=")) {
    ConfigNode r = parse_override_value(args.back().substr(8));
    if (r.kind() != ConfigNode::Kind::kBool)
      throw ConfigError(fmt::format("sort(reverse=...) takes true or false in override '{}'", whole), {"<command line>"});
    reverse = r.as_bool();
    args.pop_back();
  }
  if (args.empty()) throw no_args();
  Evaluated in = arguments_as_values(args, whole);
  if (fn == "str" || fn == "int" || fn == "float" || fn == "bool") {
    if (!in.is_sweep) {
      out.value = cast_to(fn, in.value, whole);
      return out;
    }
    out.is_sweep = true;
    for (const auto& item : in.sweep) out.sweep.push_back(override_text(cast_to(fn, parse_override_value(item), whole)));
    return out;
  }
  // sort / shuffle over a sweep's values or a list's elements
  std::vector<ConfigNode> values;
  if (in.is_sweep)
    for (const auto& item : in.sweep) values.push_back(parse_override_value(item));
  else if (in.value.is_list())
    values = in.value.elements();
  else
    values = {in.value};
  if (fn == "sort") {
    sort_values(values, reverse, whole);
  } else {  // shuffle: Hydra's is unseeded; so is this one (the sweep manifest records the order run)
    std::mt19937_64 rng(std::random_device{}());
    std::shuffle(values.begin(), values.end(), rng);
  }
  if (!in.is_sweep && in.value.is_list()) {
    out.value = ConfigNode::list();
    for (auto& v : values) out.value.push_back(std::move(v));
    return out;
  }
  out.is_sweep = true;
  for (const auto& v : values) out.sweep.push_back(override_text(v));
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

  if (value.empty()) {  // `key=` sets the empty string, as in Hydra
    o.value = ConfigNode::string("");
    return o;
  }
  if (value.starts_with("glob(") && value.ends_with(")")) {
    o.is_glob = true;
    for (const auto& a : split_args(value.substr(5, value.size() - 6))) {
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
    return o;
  }
  if (!call_of(value).empty()) {
    Evaluated v = evaluate(value, text);
    if (v.is_sweep && v.sweep.empty())
      fail_at(value_offset, "the sweep produced no values",
              "check the bounds: range(start, stop, step) stops before `stop`, and a negative step counts down");
    if (v.is_sweep) o.sweep = std::move(v.sweep);
    else o.value = std::move(v.value);
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
