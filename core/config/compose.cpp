#include "core/config/compose.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/config/error.h"
#include "core/config/override.h"
#include "core/config/yaml_io.h"

#ifndef EXP_CONFIG_DIR
#define EXP_CONFIG_DIR "configs"
#endif

namespace xp::config {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Search path

SearchPath::SearchPath(std::vector<fs::path> dirs) {
  for (auto& d : dirs) {
    std::error_code ec;
    fs::path canon = fs::weakly_canonical(d, ec);
    if (ec) canon = d;
    if (std::find(dirs_.begin(), dirs_.end(), canon) == dirs_.end()) dirs_.push_back(canon);
  }
}

std::optional<fs::path> SearchPath::find(const std::string& config_path) const {
  for (const auto& d : dirs_) {
    fs::path p = d / (config_path + ".yaml");
    if (fs::is_regular_file(p)) return p;
  }
  return std::nullopt;
}

bool SearchPath::is_group(const std::string& group) const {
  if (group.empty()) return false;
  return std::any_of(dirs_.begin(), dirs_.end(), [&](const fs::path& d) { return fs::is_directory(d / group); });
}

std::vector<std::string> SearchPath::options(const std::string& group) const {
  std::set<std::string> out;
  for (const auto& d : dirs_) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d / group, ec))
      if (e.is_regular_file() && e.path().extension() == ".yaml") out.insert(e.path().stem().string());
  }
  return {out.begin(), out.end()};
}

std::vector<std::string> SearchPath::groups() const {
  std::set<std::string> out;
  for (const auto& d : dirs_) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(d, ec); it != fs::recursive_directory_iterator(); ++it)
      if (it->is_directory()) out.insert(fs::relative(it->path(), d).generic_string());
  }
  return {out.begin(), out.end()};
}

fs::path builtin_config_dir() { return fs::path(EXP_CONFIG_DIR); }

SearchPath search_path_for(const fs::path& primary) {
  fs::path abs = fs::absolute(primary).lexically_normal();
  fs::path dir = abs.parent_path();
  for (fs::path p = dir; !p.empty() && p != p.root_path(); p = p.parent_path()) {
    if (p.filename() == "configs") {
      dir = p;
      break;
    }
  }
  return SearchPath({dir, builtin_config_dir()});
}

ConfigNode ComposedConfig::job() const {
  ConfigNode j = root;
  j.erase("hydra");
  return j;
}

ConfigNode ComposedConfig::hydra() const {
  const ConfigNode* h = root.find("hydra");
  return h ? *h : ConfigNode::map();
}

// ---------------------------------------------------------------------------------------------
// Composition

namespace {

// The framework's own config, composed first (so every config may override it) at `hydra`.
constexpr const char* kHydraDefaults = R"(defaults:
  - optional hydra/launcher: local
  - optional hydra/job_logging: default
output_subdir: .hydra
verbose: false
searchpath: []
run:
  dir: results/outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}
sweep:
  dir: results/multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}
  subdir: ${hydra.job.num}
job:
  name: ???
  num: 0
  chdir: false
  env_set: {}
  override_dirname: ''
mode: RUN
checkpoint_signal: USR1
runtime:
  output_dir: ''
  choices: {}
overrides:
  task: []
sweeper:
  params: {}
)";

struct LoadedConfig {
  std::string name;      // config path without .yaml ("scheduler/vllm"), or the primary's file
  std::string group;     // its group dir ("scheduler"; "" for root-level configs)
  ConfigNode body;       // without `defaults`
  ConfigNode defaults;   // the defaults list (or null)
  std::optional<std::string> header_package;
};

std::optional<std::string> read_package_header(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t b = line.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    if (line[b] != '#') break;
    std::string rest = line.substr(b + 1);
    size_t k = rest.find("@package");
    if (k != std::string::npos) {
      std::string pkg = rest.substr(k + 8);
      size_t s = pkg.find_first_not_of(" \t"), e = pkg.find_last_not_of(" \t\r");
      return s == std::string::npos ? std::string() : pkg.substr(s, e - s + 1);
    }
  }
  return std::nullopt;
}

LoadedConfig parse_config_text(const std::string& text, const std::string& source, std::string name,
                               std::string group) {
  LoadedConfig c;
  c.name = std::move(name);
  c.group = std::move(group);
  c.header_package = read_package_header(text);
  c.body = load_yaml_string(text, source);
  if (c.body.is_null()) c.body = ConfigNode::map();
  if (!c.body.is_map())
    throw ConfigError(fmt::format("a config file must hold a map, found a {}", c.body.kind_name()),
                      c.body.loc(), {}, "write key: value pairs at the top level");
  if (const ConfigNode* d = c.body.find("defaults")) {
    c.defaults = *d;
    c.body.erase("defaults");
    if (!c.defaults.is_list() && !c.defaults.is_null())
      throw ConfigError("'defaults' must be a list", c.defaults.loc(), "defaults",
                        "write it as a YAML list: defaults: [ - group: option, - _self_ ]");
  }
  return c;
}

LoadedConfig load_config_file(const fs::path& path, std::string name, std::string group) {
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot read config file", {path.string()}, {}, "check that the file exists");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config_text(ss.str(), path.string(), std::move(name), std::move(group));
}

std::string dotted(const std::string& group) {
  std::string s = group;
  std::replace(s.begin(), s.end(), '/', '.');
  return s;
}

// A group path in an entry is relative to the containing config's group, unless it starts with '/'.
std::string absolute_group(const std::string& group, const std::string& containing_group) {
  if (!group.empty() && group[0] == '/') return group.substr(1);
  return containing_group.empty() ? group : containing_group + "/" + group;
}

struct Entry {
  bool is_self = false;
  bool is_override = false;
  bool optional = false;
  bool is_group = false;         // `group: option` (else a plain config include)
  std::string group;             // absolute group path
  std::string package;           // from @pkg, unresolved; empty = default
  std::optional<std::string> option;  // nullopt = null choice
  SourceLoc loc;
};

// Several options of one group (`db: [mysql, extras]`, `db=[mysql,extras]`) are merged in order,
// as Hydra does; such a choice travels as the text "[mysql,extras]".
std::string option_list_text(const ConfigNode& list) {
  std::vector<std::string> names;
  for (const auto& e : list.elements()) {
    if (!e.is_scalar() || e.is_null())
      throw ConfigError("a list of config options must hold names", e.loc(), {}, "e.g. db=[mysql,extras]");
    names.push_back(e.scalar_text());
  }
  return fmt::format("[{}]", fmt::join(names, ","));
}

std::vector<std::string> options_of(const std::string& choice) {
  if (!(choice.starts_with("[") && choice.ends_with("]"))) return {choice};
  std::vector<std::string> out;
  std::string inner = choice.substr(1, choice.size() - 2);
  for (size_t b = 0; b <= inner.size();) {
    size_t e = inner.find(',', b);
    if (e == std::string::npos) e = inner.size();
    if (e > b) out.push_back(inner.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

Entry parse_entry(const ConfigNode& e, const LoadedConfig& parent) {
  Entry out;
  out.loc = e.loc();
  auto bad = [&](const std::string& why) {
    return ConfigError(fmt::format("bad defaults entry in '{}': {}", parent.name, why), e.loc(), "defaults",
                       "entries look like '- group: option', '- optional group: option', "
                       "'- override group: option', '- group/config' or '- _self_'");
  };
  if (e.is_string()) {
    std::string s = e.as_string();
    if (s == "_self_") {
      out.is_self = true;
      return out;
    }
    // `- group/config` or `- config`: include one config; its package is its folder, or the
    // one after `@` (`@_here_`: the including config's).
    if (size_t at = s.find('@'); at != std::string::npos) {
      out.package = s.substr(at + 1);
      s = s.substr(0, at);
    }
    std::string abs = absolute_group(s, parent.group);
    size_t slash = abs.rfind('/');
    out.group = slash == std::string::npos ? std::string() : abs.substr(0, slash);
    out.option = slash == std::string::npos ? abs : abs.substr(slash + 1);
    return out;
  }
  if (!e.is_map() || e.size() != 1) throw bad("expected a string or a one-key map");
  const auto& [key, value] = e.items().front();
  std::istringstream words(key);
  std::vector<std::string> parts;
  for (std::string w; words >> w;) parts.push_back(w);
  if (parts.empty()) throw bad("empty key");
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] == "optional") out.optional = true;
    else if (parts[i] == "override") out.is_override = true;
    else throw bad(fmt::format("unknown keyword '{}'", parts[i]));
  }
  std::string g = parts.back();
  if (size_t at = g.find('@'); at != std::string::npos) {
    out.package = g.substr(at + 1);
    g = g.substr(0, at);
  }
  out.is_group = true;
  out.group = absolute_group(g, parent.group);
  if (value.is_null()) out.option = std::nullopt;
  else if (value.is_scalar()) out.option = value.scalar_text();
  else if (value.is_list()) out.option = option_list_text(value);
  else throw bad("the option must be a name or a list of names");
  return out;
}

std::string choice_key(const std::string& group, const std::string& package) {
  return package.empty() ? group : group + "@" + package;
}

class Composer {
 public:
  Composer(const ComposeRequest& req) : req_(req), sp_(req.search_path) {}

  ComposedConfig run() {
    split_overrides();
    // `override` entries anywhere in the tree change choices made elsewhere; the tree depends
    // on the choices, so repeat until the set of file overrides stops changing.
    for (int pass = 0;; ++pass) {
      begin_pass();
      compose_tree();
      if (collected_ == file_overrides_) break;
      if (pass == 8)
        throw ConfigError("the defaults lists' 'override' entries do not settle", {req_.primary.string()}, "defaults",
                          "two configs override each other's group choices; keep one `override` per group");
      file_overrides_ = collected_;
    }
    check_unused_cli_choices();
    apply_value_overrides();
    fill_hydra_runtime();
    return std::move(out_);
  }

 private:
  struct CliChoice {
    std::optional<std::string> option;
    std::string text;
    std::string package;
  };

  void split_overrides() {
    for (const auto& text : req_.overrides) {
      Override o = parse_override(text);
      if (o.is_sweep())
        throw ConfigError(fmt::format("'{}' is a sweep, but this is a single run", text), {"<command line>"},
                          o.key, "add -m (or use `exp sweep`) to run every value");
      // `group=option` picks a config; `group={...}` or `group.key=v` edits values.
      bool group = sp_.is_group(o.key) && o.key.find('.') == std::string::npos &&
                   (!o.value || o.value->is_scalar() || o.value->is_list());
      if (!group) {
        value_overrides_.push_back(std::move(o));
        continue;
      }
      std::optional<std::string> option;
      if (o.value && o.value->is_list()) option = option_list_text(*o.value);
      else if (o.value && !o.value->is_null()) option = o.value->scalar_text();
      if (o.op == Override::Op::kAdd || o.op == Override::Op::kForceAdd) {
        appended_.push_back({option, text, o.package});
        appended_groups_.push_back(o.key);
      } else if (o.op == Override::Op::kDelete) {
        deleted_.insert(choice_key(o.key, o.package));  // `~db` leaves `db@backup` alone
      } else {
        cli_choices_[choice_key(o.key, o.package)] = {option, text, o.package};
      }
    }
  }

  void begin_pass() {
    out_ = ComposedConfig{};
    out_.root = ConfigNode::map();
    collected_.clear();
    used_cli_.clear();
    seen_choices_.clear();
  }

  void compose_tree() {
    LoadedConfig hydra = parse_config_text(kHydraDefaults, "<exp built-in hydra config>", "hydra/config", "");
    process(hydra, "hydra", "<root>", 0);
    if (!req_.primary.empty()) {
      LoadedConfig primary = load_config_file(req_.primary, req_.primary.stem().string(), primary_group());
      // `+group=option` on the command line appends to the primary config's defaults list.
      if (!appended_.empty()) {
        if (primary.defaults.is_null()) primary.defaults = ConfigNode::list();
        for (size_t i = 0; i < appended_.size(); ++i) {
          ConfigNode e = ConfigNode::map();
          std::string key = "/" + appended_groups_[i] +
                            (appended_[i].package.empty() ? "" : "@" + appended_[i].package);
          e.set(key, appended_[i].option ? ConfigNode::string(*appended_[i].option) : ConfigNode());
          e.set_loc({"<command line>"});
          primary.defaults.push_back(e);
        }
      }
      process(primary, "", "<root>", 0);
    }
  }

  // A primary config inside a group folder (configs/experiment/x.yaml) resolves relative
  // defaults entries against that group, as it would when selected with +experiment=x.
  std::string primary_group() const {
    if (sp_.dirs().empty()) return "";
    std::error_code ec;
    fs::path p = fs::weakly_canonical(req_.primary, ec).parent_path();
    fs::path rel = p.lexically_relative(sp_.dirs().front());
    if (rel.empty() || rel == "." || rel.string().starts_with("..")) return "";
    return rel.generic_string();
  }

  std::optional<std::string> effective_choice(const Entry& e, const std::string& key) {
    if (auto it = cli_choices_.find(key); it != cli_choices_.end()) {
      used_cli_.insert(key);
      return it->second.option;
    }
    if (auto it = file_overrides_.find(key); it != file_overrides_.end()) return it->second;
    return e.option;
  }

  // Interpolated options (`- combo: ${server}_${db}`) read other groups' choices.
  std::string interpolate_option(const std::string& option, const SourceLoc& loc) {
    std::string out;
    for (size_t i = 0; i < option.size(); ++i) {
      if (option.compare(i, 2, "${") == 0) {
        size_t end = option.find('}', i);
        std::string ref = option.substr(i + 2, end - i - 2);
        auto it = std::find_if(out_.choices.begin(), out_.choices.end(),
                               [&](const auto& c) { return c.first == ref; });
        if (end == std::string::npos || it == out_.choices.end())
          throw ConfigError(fmt::format("defaults entry '{}' refers to group '{}', which has no choice yet",
                                        option, ref),
                            loc, "defaults", "list that group earlier in the defaults list");
        out += it->second;
        i = end;
      } else {
        out += option[i];
      }
    }
    return out;
  }

  static std::string package_of(const LoadedConfig& c, const std::string& entry_pkg,
                                const std::string& default_pkg, const std::string& parent_pkg) {
    auto global = [](const std::string& p) -> std::optional<std::string> {
      if (p == "_global_") return std::string();
      if (p.starts_with("_global_.")) return p.substr(9);
      return std::nullopt;
    };
    if (!entry_pkg.empty()) {
      if (auto g = global(entry_pkg)) return *g;
      if (entry_pkg == "_here_") return parent_pkg;  // Hydra's: where the including config is
      return join_path(parent_pkg, entry_pkg);
    }
    if (c.header_package) {
      if (auto g = global(*c.header_package)) return *g;
      if (*c.header_package == "_group_") return dotted(c.group);
      return *c.header_package;
    }
    return default_pkg;
  }

  void merge_at(const std::string& package, const ConfigNode& body) {
    ConfigNode& dst = package.empty() ? out_.root : out_.root.ensure_path(package);
    if (dst.is_null()) dst = ConfigNode::map();
    merge_into(dst, body);
  }

  void process(const LoadedConfig& cfg, const std::string& package, const std::string& parent, int depth) {
    if (depth > 32)
      throw ConfigError(fmt::format("defaults lists nest too deeply at '{}'", cfg.name), {cfg.name}, "defaults",
                        "a config probably includes itself, directly or through another config");
    std::vector<Entry> entries;
    bool has_self = false;
    if (cfg.defaults.is_list()) {
      for (const auto& e : cfg.defaults.elements()) {
        entries.push_back(parse_entry(e, cfg));
        has_self = has_self || entries.back().is_self;
      }
    }
    if (!has_self) {
      Entry self;
      self.is_self = true;
      entries.push_back(self);  // _self_ omitted: this file's keys merge last
    }

    for (const Entry& e : entries) {
      if (e.is_self) {
        merge_at(package, cfg.body);
        out_.defaults.push_back({cfg.name, package, parent, depth});
        continue;
      }
      std::string key = choice_key(e.group, e.package);
      if (e.is_override) {
        collected_[key] = e.option;
        continue;
      }
      if (deleted_.count(key)) continue;
      std::optional<std::string> option = e.is_group ? effective_choice(e, key) : e.option;
      if (!option) {
        record_choice(key, "null");
        continue;
      }
      std::string choice = interpolate_option(*option, e.loc);
      for (const std::string& opt : options_of(choice)) {
        std::string config_path = e.group.empty() ? opt : e.group + "/" + opt;
        auto path = sp_.find(config_path);
        if (!path) {
          if (e.optional) continue;
          throw missing_option(e, key, opt);
        }
        if (e.is_group) record_choice(key, choice);  // once; before the option's own defaults
        LoadedConfig child = load_config_file(*path, config_path, e.group);
        std::string pkg = package_of(child, e.package, dotted(e.group), package);
        process(child, pkg, cfg.name, depth + 1);
      }
    }
  }

  void record_choice(const std::string& key, const std::string& option) {
    if (seen_choices_.insert(key).second) out_.choices.emplace_back(key, option);
  }

  ConfigError missing_option(const Entry& e, const std::string& key, const std::string& opt) {
    auto options = sp_.options(e.group);
    std::string hint = did_you_mean(opt, options);
    std::string avail = fmt::format("available options for '{}': {}", e.group, fmt::join(options, ", "));
    SourceLoc loc = e.loc;
    if (auto it = cli_choices_.find(key); it != cli_choices_.end() && it->second.option == opt)
      loc = {"<command line>"};
    if (e.group.empty())
      return ConfigError(fmt::format("no config '{}.yaml'", opt), loc, "defaults",
                         fmt::format("searched: {}", search_dirs()));
    if (!sp_.is_group(e.group))
      return ConfigError(fmt::format("no config group '{}' (looking for '{}/{}.yaml')", e.group, e.group, opt),
                         loc, e.group, fmt::format("searched: {}", search_dirs()));
    return ConfigError(fmt::format("no option '{}' in config group '{}'", opt, e.group), loc, e.group,
                       hint.empty() ? avail : hint + " (" + avail + ")");
  }

  std::string search_dirs() const {
    std::vector<std::string> d;
    for (const auto& p : sp_.dirs()) d.push_back(p.string());
    return fmt::format("{}", fmt::join(d, ", "));
  }

  void check_unused_cli_choices() {
    for (const auto& [key, c] : cli_choices_) {
      if (used_cli_.count(key)) continue;
      throw ConfigError(fmt::format("could not override '{}': no defaults list selects an option from it", key),
                        {"<command line>"}, key,
                        fmt::format("to add it to the defaults list, write +{}", c.text));
    }
  }

  ConfigError unknown_key(const Override& o) {
    std::vector<std::string> candidates = all_paths(out_.root);
    for (const auto& g : sp_.groups()) candidates.push_back(g);
    std::string hint = did_you_mean(o.key, candidates);
    return ConfigError(fmt::format("cannot override '{}': no such key in the config", o.key),
                       {"<command line>"}, o.key,
                       (hint.empty() ? std::string() : hint + " ") +
                           fmt::format("To add a new key write +{}", o.text));
  }

  void apply_value_overrides() {
    for (const Override& o : value_overrides_) {
      ConfigNode value = o.value ? *o.value : ConfigNode();
      value.set_loc_recursive({"<command line>", 0, 0});
      ConfigNode* existing = out_.root.at_path(o.key);
      switch (o.op) {
        case Override::Op::kSet:
          if (!existing) throw unknown_key(o);
          assign(*existing, value);
          break;
        case Override::Op::kAdd:
          if (existing)
            throw ConfigError(fmt::format("cannot add '{}': the key already exists", o.key), {"<command line>"},
                              o.key, fmt::format("to change it write {}={} (or ++{}={})", o.key, o.value_text,
                                                 o.key, o.value_text));
          out_.root.ensure_path(o.key) = value;
          break;
        case Override::Op::kForceAdd:
          assign(out_.root.ensure_path(o.key), value);
          break;
        case Override::Op::kDelete:
          if (!existing) throw unknown_key(o);
          if (o.value && !(*existing == *o.value))
            throw ConfigError(fmt::format("cannot delete '{}': its value is '{}', not '{}'", o.key,
                                          existing->scalar_text(), o.value->scalar_text()),
                              {"<command line>"}, o.key, fmt::format("write ~{} to delete it whatever its value", o.key));
          out_.root.erase_path(o.key);
          break;
      }
    }
  }

  static void assign(ConfigNode& dst, const ConfigNode& value) {
    if (dst.is_map() && value.is_map()) merge_into(dst, value);  // dicts merge, lists assign
    else dst = value;
  }

  void fill_hydra_runtime() {
    ConfigNode& h = out_.root.ensure_path("hydra");
    std::string name = req_.job_name.empty() ? (req_.primary.empty() ? "exp" : req_.primary.stem().string())
                                             : req_.job_name;
    if (h.at_path("job.name") && h.at_path("job.name")->is_missing()) h.ensure_path("job.name") = ConfigNode::string(name);
    ConfigNode choices = ConfigNode::map();
    for (const auto& [k, v] : out_.choices) choices.set(k, ConfigNode::string(v));
    h.ensure_path("runtime.choices") = choices;
    // Hydra's rule: the framework's own overrides are not the task's (and would make
    // `hydra.sweep.subdir=${hydra.job.override_dirname}` refer to itself).
    std::vector<std::string> sorted = task_overrides(req_.overrides);
    ConfigNode task = ConfigNode::list();
    for (const auto& o : sorted) task.push_back(ConfigNode::string(o));
    h.ensure_path("overrides.task") = task;
    std::sort(sorted.begin(), sorted.end());
    h.ensure_path("job.override_dirname") = ConfigNode::string(fmt::format("{}", fmt::join(sorted, ",")));
    out_.overrides = req_.overrides;
  }

  const ComposeRequest& req_;
  const SearchPath& sp_;
  ComposedConfig out_;
  std::vector<Override> value_overrides_;
  std::map<std::string, CliChoice> cli_choices_;
  std::vector<CliChoice> appended_;
  std::vector<std::string> appended_groups_;
  std::set<std::string> deleted_;
  std::map<std::string, std::optional<std::string>> file_overrides_, collected_;
  std::set<std::string> used_cli_, seen_choices_;
};

}  // namespace

// hydra.searchpath adds config folders after the primary config's. It is read, as Hydra reads
// it, before composing: from the primary config file and from the command line (the last
// override of it wins), so that the folders it names can supply the defaults themselves.
ComposedConfig compose(const ComposeRequest& request) {
  ConfigNode entries = ConfigNode::list();
  if (!request.primary.empty() && fs::is_regular_file(request.primary)) {
    ConfigNode primary = load_config_file(request.primary, "", "").body;
    if (const ConfigNode* sp = primary.at_path("hydra.searchpath"); sp && sp->is_list()) entries = *sp;
  }
  for (const auto& text : request.overrides) {
    Override o = parse_override(text);
    if (o.key == "hydra.searchpath" && o.value && o.value->is_list()) entries = *o.value;
  }
  if (entries.elements().empty()) return Composer(request).run();
  std::vector<fs::path> dirs = request.search_path.dirs();
  size_t at = dirs.empty() ? 0 : 1;
  for (const auto& e : entries.elements()) {
    std::string entry = e.scalar_text();
    if (entry.starts_with("pkg://"))
      throw ConfigError(fmt::format("search path entry '{}' names a Python package", entry), e.loc(), "hydra.searchpath",
                        "exp has no Python packages to search: give a folder as file://DIR");
    if (entry.starts_with("file://")) entry = entry.substr(7);
    if (!fs::is_directory(entry))
      throw ConfigError(fmt::format("search path entry '{}' is not a folder", e.scalar_text()), e.loc(), "hydra.searchpath",
                        "give an existing folder of configs as file://DIR");
    dirs.insert(dirs.begin() + static_cast<std::ptrdiff_t>(at++), fs::path(entry));
  }
  ComposeRequest with_path = request;
  with_path.search_path = SearchPath(dirs);
  return Composer(with_path).run();
}

std::vector<std::string> task_overrides(const std::vector<std::string>& overrides) {
  std::vector<std::string> out;
  for (const auto& o : overrides) {
    const size_t start = o.find_first_not_of("+~");
    const std::string key = start == std::string::npos ? o : o.substr(start);
    if (!key.starts_with("hydra.") && !key.starts_with("hydra/")) out.push_back(o);
  }
  return out;
}

}  // namespace xp::config
