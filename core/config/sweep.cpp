#include "core/config/sweep.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>

#include <algorithm>

#include "core/config/error.h"
#include "core/config/override.h"

namespace xp::config {
namespace {

std::string prefix_of(const Override& o) {
  switch (o.op) {
    case Override::Op::kAdd: return "+";
    case Override::Op::kForceAdd: return "++";
    case Override::Op::kDelete: return "~";
    case Override::Op::kSet: return "";
  }
  return "";
}

std::vector<std::string> glob_options(const Override& o, const SearchPath& sp) {
  if (!sp.is_group(o.key))
    throw ConfigError(fmt::format("glob() needs a config group, but '{}' is not one", o.key), {"<command line>"},
                      o.key, "glob() selects options of a group, e.g. scheduler=glob(*)");
  std::vector<std::string> out;
  for (const auto& opt : sp.options(o.key)) {
    auto matches = [&](const std::vector<std::string>& pats) {
      return std::any_of(pats.begin(), pats.end(),
                         [&](const std::string& p) { return fnmatch(p.c_str(), opt.c_str(), 0) == 0; });
    };
    if (matches(o.glob_include) && !matches(o.glob_exclude)) out.push_back(opt);
  }
  if (out.empty())
    throw ConfigError(fmt::format("glob() in '{}' matches no option of group '{}'", o.text, o.key),
                      {"<command line>"}, o.key,
                      fmt::format("options are: {}", fmt::join(sp.options(o.key), ", ")));
  return out;
}

}  // namespace

bool has_sweep(const std::vector<std::string>& overrides) {
  return std::any_of(overrides.begin(), overrides.end(),
                     [](const std::string& t) { return parse_override(t).is_sweep(); });
}

std::vector<std::vector<std::string>> expand_sweep(const std::vector<std::string>& overrides,
                                                   const SearchPath& search_path,
                                                   const ConfigNode& sweeper_params) {
  // Each dimension is the list of override strings one argument expands to.
  std::vector<std::vector<std::string>> dims;
  std::vector<std::string> cli_keys;
  auto add = [&](const Override& o) {
    std::string head = prefix_of(o) + o.key + (o.package.empty() ? "" : "@" + o.package) + "=";
    if (!o.is_sweep()) {
      dims.push_back({o.text});
      return;
    }
    std::vector<std::string> items = o.is_glob ? glob_options(o, search_path) : o.sweep;
    std::vector<std::string> dim;
    for (const auto& item : items) dim.push_back(head + item);
    dims.push_back(std::move(dim));
  };
  for (const auto& text : overrides) {
    Override o = parse_override(text);
    cli_keys.push_back(o.key);
    add(o);
  }
  if (sweeper_params.is_map()) {
    for (const auto& [key, value] : sweeper_params.items()) {
      if (std::find(cli_keys.begin(), cli_keys.end(), key) != cli_keys.end()) continue;
      add(parse_override(key + "=" + value.scalar_text()));
    }
  }

  // Guard against products nobody means (range(1000) x range(1000) x ...) before allocating.
  double total = 1;
  for (const auto& dim : dims) total *= static_cast<double>(dim.size());
  if (total > static_cast<double>(kMaxSweepJobs))
    throw ConfigError(fmt::format("the sweep has {:.0f} jobs, more than the limit of {}", total, kMaxSweepJobs),
                      {"<command line>"}, {}, "sweep fewer values, or split the sweep into several runs");
  if (total * static_cast<double>(dims.size()) > static_cast<double>(kMaxSweepOverrides))
    throw ConfigError(fmt::format("the sweep has {:.0f} jobs of {} overrides each, more than {} overrides in all", total,
                                  dims.size(), kMaxSweepOverrides),
                      {"<command line>"}, {}, "sweep fewer values, or split the sweep into several runs");
  std::vector<std::vector<std::string>> jobs = {{}};
  for (const auto& dim : dims) {
    std::vector<std::vector<std::string>> next;
    next.reserve(jobs.size() * dim.size());
    for (const auto& job : jobs)
      for (const auto& item : dim) {
        next.push_back(job);
        next.back().push_back(item);
      }
    jobs = std::move(next);
  }
  return jobs;
}

}  // namespace xp::config
