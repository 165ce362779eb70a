#include "core/config/resolve.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "core/config/error.h"

namespace xp::config {
namespace {

std::tm process_start_time() {
  static const std::tm tm = [] {
    std::time_t t = std::time(nullptr);
    std::tm out{};
    localtime_r(&t, &out);
    return out;
  }();
  return tm;
}

std::string parent_path(const std::string& path) {
  size_t dot = path.rfind('.');
  return dot == std::string::npos ? std::string() : path.substr(0, dot);
}

class Resolver {
 public:
  explicit Resolver(const ConfigNode& root) : root_(root) {}

  ConfigNode node(const ConfigNode& n, const std::string& path) {
    if (n.is_map()) {
      ConfigNode out = ConfigNode::map();
      out.set_loc(n.loc());
      for (const auto& [k, v] : n.items()) out.set(k, node(v, join_path(path, k)));
      return out;
    }
    if (n.is_list()) {
      ConfigNode out = ConfigNode::list();
      out.set_loc(n.loc());
      for (size_t i = 0; i < n.elements().size(); ++i)
        out.push_back(node(n.elements()[i], join_path(path, std::to_string(i))));
      return out;
    }
    if (n.is_missing())
      throw ConfigError("missing mandatory value (\?\?\?)", n.loc(), path,
                        fmt::format("set it in a config file or on the command line: {}=VALUE", path));
    // Escaped "\${" also goes through interpolate(), which turns it into a literal "${".
    if (n.is_interpolation() || (n.is_string() && n.as_string().find("\\${") != std::string::npos))
      return interpolate(n, path);
    return n;
  }

 private:
  // Splits "a${x}b${y}" into literal and expression parts; `\${` stays literal.
  struct Part {
    bool is_expr;
    std::string text;
  };
  std::vector<Part> split(const std::string& s, const ConfigNode& n, const std::string& path) {
    std::vector<Part> parts;
    std::string lit;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\\' && i + 2 < s.size() && s[i + 1] == '$' && s[i + 2] == '{') {
        lit += "${";
        i += 2;
        continue;
      }
      if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
        size_t depth = 0, j = i;
        for (; j < s.size(); ++j) {
          if (s[j] == '{') ++depth;
          if (s[j] == '}' && --depth == 0) break;
        }
        if (j == s.size())
          throw ConfigError(fmt::format("unterminated interpolation in '{}'", s), n.loc(), path,
                            "close it with '}'");
        if (!lit.empty()) parts.push_back({false, std::move(lit)}), lit.clear();
        parts.push_back({true, s.substr(i + 2, j - i - 2)});
        i = j;
        continue;
      }
      lit += s[i];
    }
    if (!lit.empty()) parts.push_back({false, lit});
    return parts;
  }

  ConfigNode interpolate(const ConfigNode& n, const std::string& path) {
    for (const auto& p : stack_)
      if (p == path) {
        std::string chain;
        for (const auto& q : stack_) chain += q + " -> ";
        throw ConfigError("interpolation cycle: " + chain + path, n.loc(), path,
                          "break the cycle by giving one of these keys a plain value");
      }
    stack_.push_back(path);
    auto parts = split(n.as_string(), n, path);
    ConfigNode out;
    if (parts.size() == 1 && parts[0].is_expr) {
      out = expression(parts[0].text, n, path);
    } else {
      std::string text;
      for (const auto& p : parts) {
        if (!p.is_expr) {
          text += p.text;
          continue;
        }
        ConfigNode v = expression(p.text, n, path);
        if (!v.is_scalar())
          throw ConfigError(fmt::format("'${{{}}}' is a {} and cannot be placed inside a string", p.text,
                                        v.kind_name()),
                            n.loc(), path, "interpolate a scalar key instead");
        text += v.scalar_text();
      }
      out = ConfigNode::string(text);
    }
    stack_.pop_back();
    out.set_loc(n.loc());
    return out;
  }

  // Resolves nested ${...} inside a resolver's arguments.
  std::string expand_nested(const std::string& body, const ConfigNode& n, const std::string& path) {
    if (body.find("${") == std::string::npos) return body;
    std::string text;
    for (const auto& p : split(body, n, path)) {
      if (!p.is_expr) text += p.text;
      else text += expression(p.text, n, path).scalar_text();
    }
    return text;
  }

  ConfigNode expression(const std::string& raw, const ConfigNode& n, const std::string& path) {
    std::string body = raw;
    size_t colon = std::string::npos;
    for (size_t i = 0, depth = 0; i < body.size(); ++i) {
      if (body[i] == '{') ++depth;
      if (body[i] == '}') --depth;
      if (body[i] == ':' && depth == 0) {
        colon = i;
        break;
      }
    }
    if (colon == std::string::npos) return reference(body, n, path);

    std::string name = body.substr(0, colon);
    std::string args = expand_nested(body.substr(colon + 1), n, path);
    if (name == "oc.env") {
      size_t comma = args.find(',');
      std::string var = args.substr(0, comma);
      if (const char* v = std::getenv(var.c_str())) return ConfigNode::string(v);
      if (comma == std::string::npos)
        throw ConfigError(fmt::format("environment variable '{}' is not set", var), n.loc(), path,
                          fmt::format("export {}=... or give a default: ${{oc.env:{},DEFAULT}}", var, var));
      std::string def = args.substr(comma + 1);
      size_t b = def.find_first_not_of(' ');
      return ConfigNode::string(b == std::string::npos ? std::string() : def.substr(b));
    }
    if (name == "now") {
      std::tm tm = process_start_time();
      try {
        return ConfigNode::string(fmt::format(fmt::runtime("{:" + args + "}"), tm));
      } catch (const fmt::format_error& e) {
        throw ConfigError(fmt::format("bad time format '{}' in '${{{}}}': {}", args, raw, e.what()), n.loc(), path,
                          "use strftime fields, e.g. ${now:%Y-%m-%d_%H-%M-%S}");
      }
    }
    if (name == "hydra") return reference("hydra." + args, n, path);
    static const std::vector<std::string> kResolvers = {"oc.env", "now", "hydra"};
    throw ConfigError(fmt::format("unknown resolver '{}' in '${{{}}}'", name, raw), n.loc(), path,
                      did_you_mean(name, kResolvers).empty()
                          ? "known resolvers: oc.env, now, hydra"
                          : did_you_mean(name, kResolvers));
  }

  ConfigNode reference(const std::string& ref, const ConfigNode& n, const std::string& path) {
    std::string target;
    if (!ref.empty() && ref[0] == '.') {
      size_t dots = ref.find_first_not_of('.');
      if (dots == std::string::npos) dots = ref.size();
      std::string base = parent_path(path);  // the container of the interpolating node
      for (size_t i = 1; i < dots; ++i) base = parent_path(base);
      target = join_path(base, ref.substr(dots));
    } else {
      target = ref;
    }
    const ConfigNode* t = root_.at_path(target);
    if (!t) {
      std::string hint = did_you_mean(target, all_paths(root_));
      throw ConfigError(fmt::format("interpolation '${{{}}}' refers to '{}', which does not exist", ref, target),
                        n.loc(), path, hint.empty() ? "check the key's spelling and nesting" : hint);
    }
    return node(*t, target);
  }

  const ConfigNode& root_;
  std::vector<std::string> stack_;
};

}  // namespace

ConfigNode resolve(const ConfigNode& root) { return Resolver(root).node(root, ""); }

ConfigNode resolve_at(const ConfigNode& root, const std::string& path) {
  const ConfigNode* n = root.at_path(path);
  if (!n) throw ConfigError(fmt::format("no key '{}' in the config", path), {}, path);
  return Resolver(root).node(*n, path);
}

}  // namespace xp::config
