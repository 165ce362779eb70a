#include "core/config/yaml_io.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "core/config/error.h"

namespace xp::config {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool is_int_text(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  for (; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i])) && s[i] != '_') return false;
  return s.back() != '_';
}

bool is_float_text(std::string_view s) {
  // [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?   with at least '.' or exponent
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  size_t int_digits = 0, frac_digits = 0;
  bool dot = false, expo = false;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || (s[i] == '_' && int_digits))) {
    if (s[i] != '_') ++int_digits;
    ++i;
  }
  if (i < s.size() && s[i] == '.') {
    dot = true;
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++frac_digits, ++i;
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    expo = true;
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++exp_digits, ++i;
    if (!exp_digits) return false;
  }
  return i == s.size() && (dot || expo);
}

struct Utf8Char {
  size_t length = 0;  // 0: no valid sequence starts here
  uint32_t code = 0;
};

// The valid UTF-8 sequence starting at text[i], if any. Valid means a Unicode scalar value in its
// shortest form: an emitter replaces anything else (overlong forms, UTF-16 surrogates, above
// U+10FFFF) with U+FFFD, so a dump would not read back.
Utf8Char decode_utf8(std::string_view text, size_t i) {
  auto c = static_cast<unsigned char>(text[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (len == 0 || i + len > text.size()) return {};
  uint32_t code = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) {
    auto next = static_cast<unsigned char>(text[i + k]);
    if ((next >> 6) != 0x2) return {};
    code = (code << 6) | (next & 0x3f);
  }
  static constexpr uint32_t kSmallestOfLength[] = {0, 0, 0x80, 0x800, 0x10000};
  const bool scalar_value = code >= kSmallestOfLength[len] && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff);
  return scalar_value ? Utf8Char{len, code} : Utf8Char{};
}

// Unicode's 66 noncharacters (U+FDD0..U+FDEF and the last two code points of every plane):
// yaml-cpp's emitter writes U+FFFD for them in quoted scalars, so a dump would not read back
// (found by the config fuzzer). No config has a use for them.
void reject_noncharacter(uint32_t code, const SourceLoc& loc, std::string_view where) {
  if ((code >= 0xfdd0 && code <= 0xfdef) || (code & 0xfffe) == 0xfffe)
    throw ConfigError(fmt::format("Unicode noncharacter U+{:04X} {}", code, where), loc, {},
                      "remove it; noncharacters are reserved for programs' internal use and YAML writers replace them");
}

// yaml-cpp decodes the escapes \_ (U+00A0) and \N (U+0085) of double-quoted scalars to the
// single bytes 0xA0 and 0x85, which are not UTF-8 (found by the config fuzzer: the dump then held
// U+FFFD). The text was checked to be UTF-8 and every other escape decodes to UTF-8, so a lone
// 0xA0 or 0x85 can only come from those escapes: re-encode it.
std::string fix_decoded_escapes(std::string s, const SourceLoc& loc) {
  for (size_t i = 0; i < s.size();) {
    if (const Utf8Char ch = decode_utf8(s, i); ch.length) {
      reject_noncharacter(ch.code, loc, "in the decoded scalar");
      i += ch.length;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c != 0xa0 && c != 0x85)
      throw ConfigError(fmt::format("the scalar decodes to the invalid UTF-8 byte 0x{:02x}", c), loc, {},
                        "write the character itself instead of an escape");
    s.insert(i, 1, static_cast<char>(0xc2));
    i += 2;
  }
  return s;
}

ConfigNode from_yaml(const YAML::Node& y, const std::string& file) {
  SourceLoc loc{file, y.Mark().line + 1, y.Mark().column + 1};
  ConfigNode out;
  switch (y.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: break;
    case YAML::NodeType::Scalar: {
      // yaml-cpp tags quoted scalars "!" and plain ones "?": quoted text is always a string.
      std::string text = fix_decoded_escapes(y.Scalar(), loc);
      out = y.Tag() == "!" ? ConfigNode::string(std::move(text)) : infer_scalar(text);
      break;
    }
    case YAML::NodeType::Sequence:
      out = ConfigNode::list();
      for (const auto& e : y) out.push_back(from_yaml(e, file));
      break;
    case YAML::NodeType::Map:
      out = ConfigNode::map();
      for (const auto& kv : y) {
        const SourceLoc key_loc{file, kv.first.Mark().line + 1, kv.first.Mark().column + 1};
        if (!kv.first.IsScalar())
          throw ConfigError("map keys must be scalars", key_loc, {}, "use a plain name as the key, e.g. `name: value`");
        std::string key = fix_decoded_escapes(kv.first.Scalar(), key_loc);
        if (out.find(key))
          throw ConfigError(fmt::format("duplicate key '{}'", key), key_loc, key, "remove one of the two entries");
        out.set(key, from_yaml(kv.second, file));
      }
      break;
  }
  out.set_loc(loc);
  return out;
}

// Plain scalars that YAML 1.1 readers (PyYAML, and so OmegaConf/Hydra and most scripts that read
// .hydra/config.yaml) resolve to something other than a string, though YAML 1.2 reads them as
// strings: hex, octal and binary integers, sexagesimal numbers, dates, yes/no/on/off, floats
// without a digit before the dot, and '='.
bool yaml11_reads_as_non_string(const std::string& s) {
  static const std::regex typed(
      R"(^([-+]?0[xX][0-9a-fA-F_]+|[-+]?0[oO]?[0-7_]+|[-+]?0[bB][01_]+|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?)"
      R"(|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N)"
      R"(|[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|=)$)");
  return std::regex_match(s, typed);
}

// Escapes in double-quoted scalars ("\0", "\x01", "\v") can put control characters into a
// string; single-quoted or plain, yaml-cpp would write them raw, which YAML text may not hold
// (found by the config fuzzer). Double-quoted, it writes them as escapes again.
bool has_control_character(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  ConfigNode typed = infer_scalar(s);
  if (!typed.is_string() || yaml11_reads_as_non_string(s)) return true;
  // A plain scalar starting with a document marker ("---" or "..." then a space or the end)
  // would be read back as the start or end of a document (found by the config fuzzer).
  const bool document_marker = (s.starts_with("---") || s.starts_with("...")) &&
                               (s.size() == 3 || std::isspace(static_cast<unsigned char>(s[3])));
  return document_marker || std::isspace(static_cast<unsigned char>(s.front())) ||
         std::isspace(static_cast<unsigned char>(s.back()));
}

// A string in the style that reads back as the same string.
void emit_string(YAML::Emitter& e, const std::string& s) {
  if (has_control_character(s)) e << YAML::DoubleQuoted;
  else if (needs_quotes(s)) e << YAML::SingleQuoted;
  e << s;
}

void emit(YAML::Emitter& e, const ConfigNode& n) {
  switch (n.kind()) {
    case ConfigNode::Kind::kNull: e << YAML::Null; break;
    case ConfigNode::Kind::kBool: e << n.as_bool(); break;
    case ConfigNode::Kind::kInt: e << n.as_int(); break;
    case ConfigNode::Kind::kFloat: {
      double v = n.as_double();
      if (std::isnan(v)) e << ".nan";
      else if (std::isinf(v)) e << (v > 0 ? ".inf" : "-.inf");
      else e << n.scalar_text();
      break;
    }
    case ConfigNode::Kind::kString:
      emit_string(e, n.as_string());
      break;
    case ConfigNode::Kind::kList:
      if (n.elements().empty()) {
        e << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        break;
      }
      e << YAML::BeginSeq;
      for (const auto& el : n.elements()) emit(e, el);
      e << YAML::EndSeq;
      break;
    case ConfigNode::Kind::kMap:
      if (n.items().empty()) {
        e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        break;
      }
      e << YAML::BeginMap;
      for (const auto& [k, v] : n.items()) {
        e << YAML::Key;
        emit_string(e, k);
        e << YAML::Value;
        emit(e, v);
      }
      e << YAML::EndMap;
      break;
  }
}

}  // namespace

ConfigNode infer_scalar(std::string_view text) {
  std::string l = lower(text);
  if (text.empty() || text == "~" || l == "null") return ConfigNode();
  if (l == "true") return ConfigNode::boolean(true);
  if (l == "false") return ConfigNode::boolean(false);
  if (l == "inf" || l == ".inf" || l == "+inf" || l == "+.inf")
    return ConfigNode::real(std::numeric_limits<double>::infinity());
  if (l == "-inf" || l == "-.inf") return ConfigNode::real(-std::numeric_limits<double>::infinity());
  if (l == "nan" || l == ".nan") return ConfigNode::real(std::numeric_limits<double>::quiet_NaN());
  if (is_int_text(text)) {
    std::string digits;
    for (char c : text)
      if (c != '_' && c != '+') digits += c;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec == std::errc() && p == digits.data() + digits.size()) return ConfigNode::integer(v);
  }
  if (is_float_text(text)) {
    std::string digits;
    for (char c : text)
      if (c != '_') digits += c;
    return ConfigNode::real(std::strtod(digits.c_str(), nullptr));
  }
  return ConfigNode::string(std::string(text));
}

void check_utf8(std::string_view text, const std::string& source_name) {
  int line = 1, column = 1;
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    const Utf8Char ch = decode_utf8(text, i);
    if (ch.length == 0)
      throw ConfigError(fmt::format("invalid UTF-8 byte 0x{:02x}", c), {source_name, line, column}, {},
                        "save the file as UTF-8 text");
    // YAML forbids C0 control characters other than tab, LF and CR (yaml-cpp stops at NUL).
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
      throw ConfigError(fmt::format("control character 0x{:02x} in config text", c), {source_name, line, column}, {},
                        "remove it; YAML text may hold tabs and newlines but no other control characters");
    reject_noncharacter(ch.code, {source_name, line, column}, "in config text");
    if (c == '\n') ++line, column = 1;
    else ++column;
    i += ch.length;
  }
}

ConfigNode load_yaml_string(const std::string& text, const std::string& source_name) {
  check_utf8(text, source_name);
  YAML::Node y;
  try {
    y = YAML::Load(text);
  } catch (const YAML::ParserException& ex) {
    throw ConfigError(fmt::format("YAML syntax error: {}", ex.msg),
                      {source_name, ex.mark.line + 1, ex.mark.column + 1}, {},
                      "check indentation, ':' after keys and matching quotes/brackets");
  }
  return from_yaml(y, source_name);
}

ConfigNode load_yaml_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot read config file", {path.string()}, {}, "check that the file exists");
  std::stringstream ss;
  ss << in.rdbuf();
  return load_yaml_string(ss.str(), path.string());
}

std::string dump_yaml(const ConfigNode& node) {
  YAML::Emitter e;
  emit(e, node);
  std::string out(e.c_str(), e.size());  // by size: an escaped string may have held a NUL
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

}  // namespace xp::config
