// `exp list`, `exp show`, `exp collect`: reading what exists — experiments, config groups,
// results files and sweep directories.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "compression/codec.h"
#include "core/config/compose.h"
#include "core/config/yaml_io.h"
#include "core/results/h5.h"
#include "core/results/results_file.h"
#include "core/runtime/files.h"
#include "experiments/cli/commands.h"
#include "experiments/experiment.h"
#include "serving/scheduler/policies.h"
#include "serving/sim/global_scheduler.h"

namespace xp::cli {
namespace fs = std::filesystem;

namespace {

// One section of `exp list`: a registry's entries, name and one line each.
template <class Registry, class Name>
void list_registry(const std::string& title, const Registry& entries, Name name) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& e : entries) rows.emplace_back(name(e), e.description);
  fmt::print("{}:\n", title);
  experiments::print_rows(rows);
}

}  // namespace

int list_command(const std::vector<std::string>& config_dirs) {
  list_registry("Experiments (select with `experiment: NAME` or +experiment=NAME)", experiments::registry(),
                [](const auto& e) { return e.name; });
  list_registry("\nServing schedulers (scheduler.type; configs/scheduler/ holds their settings)",
                serving::scheduler_policies(), [](const auto& p) { return p.type; });
  list_registry("\nGlobal schedulers (deployment.global_scheduler: how arrivals are spread over replicas)",
                serving::global_scheduler_types(), [](const auto& g) { return g.name; });
  list_registry("\nCheckpoint codecs (compression.method of the dynaquant experiment)", compression::codec_types(),
                [](const auto& c) { return c.name; });
  std::vector<std::pair<std::string, std::string>> rows;
  std::vector<fs::path> dirs(config_dirs.begin(), config_dirs.end());
  dirs.emplace_back("configs");
  dirs.push_back(config::builtin_config_dir());
  config::SearchPath sp(dirs);
  fmt::print("\nConfig groups (select with GROUP=OPTION):\n");
  rows.clear();
  for (const auto& g : sp.groups()) {
    auto opts = sp.options(g);
    if (!opts.empty()) rows.emplace_back(g, fmt::format("{}", fmt::join(opts, ", ")));
  }
  experiments::print_rows(rows);
  std::vector<std::string> shown;
  for (const auto& d : sp.dirs()) shown.push_back(d.string());
  fmt::print("\nSearch path: {}\n", fmt::join(shown, ", "));
  return 0;
}

namespace {

// Prints one results file; throws when a part of it cannot be read.
void show_file(const fs::path& path, results::ResultsReader& reader, int max_rows) {
  auto* r = &reader;
  fmt::print("{}  [{}]\n", path.string(), r->complete() ? "complete" : "INCOMPLETE: the run was stopped or is running");
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& [k, v] : r->attrs("/")) rows.emplace_back(k, results::attr_to_string(v));
  fmt::print("\nProvenance\n");
  experiments::print_rows(rows);
  rows.clear();
  for (const auto& [k, v] : r->attrs("/summary")) rows.emplace_back(k, results::attr_to_string(v));
  if (!rows.empty()) {
    fmt::print("\nSummary\n");
    experiments::print_rows(rows);
  }
  for (const auto& t : r->tables()) {
    results::TableData data = r->read_table(t, max_rows);
    fmt::print("\nTable {} ({} rows)\n", t, data.rows);
    std::string header, units;
    for (const auto& c : data.columns) header += fmt::format("{:>16}", c.name);
    for (const auto& c : data.columns) units += fmt::format("{:>16}", c.units.empty() ? "" : "[" + c.units + "]");
    fmt::print("{}\n{}\n", header, units);
    size_t shown = data.values.empty() ? 0 : data.values[0].size();
    for (size_t i = 0; i < shown; ++i) {
      std::string line;
      for (const auto& col : data.values) line += fmt::format("{:>16.6g}", col[i]);
      fmt::print("{}\n", line);
    }
    if (static_cast<int64_t>(shown) < data.rows) fmt::print("{:>16}\n", "...");
  }
}

}  // namespace

int show_command(const std::string& arg, int max_rows) {
  fs::path path = fs::is_directory(arg) ? fs::path(arg) / "results.h5" : fs::path(arg);
  std::string problem;
  try {
    show_file(path, *results::ResultsReader::open(path), max_rows);
    return 0;
  } catch (const std::exception& e) {
    problem = e.what();
  }
  // A running run's results.h5 lacks what its writer has not flushed yet; the copy saved with
  // its last checkpoint is whole.
  const fs::path saved = path.parent_path() / "checkpoints" / "results.h5.saved";
  std::unique_ptr<results::ResultsReader> copy;
  try {
    if (fs::exists(path)) copy = results::ResultsReader::open(saved);
  } catch (const std::exception&) {
    // no readable copy either: the first problem is the one to report
  }
  if (!copy) {
    fmt::print(stderr, "error: {}\n  hint: give a results.h5 file or a run directory (a run still being written can be "
               "read once it has checkpointed)\n", problem);
    return 2;
  }
  fmt::print("{} is being written ({}); as of the run's last checkpoint:\n\n", path.string(), problem);
  show_file(saved, *copy, max_rows);
  return 0;
}

namespace {

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

struct JobRow {
  std::string dir;
  bool complete = false;
  std::vector<std::string> overrides;
  std::map<std::string, std::string> values;  // override keys and summary attributes
};

}  // namespace

int collect_command(const std::string& sweep_arg) {
  fs::path sweep = fs::absolute(sweep_arg).lexically_normal();
  if (!fs::is_directory(sweep)) {
    fmt::print(stderr, "error: {}: not a directory\n  hint: give a sweep directory (results/multirun/DATE/TIME)\n",
               sweep.string());
    return 2;
  }
  std::vector<fs::path> job_dirs;
  for (const auto& e : fs::directory_iterator(sweep))
    if (e.is_directory() && fs::exists(e.path() / "results.h5")) job_dirs.push_back(e.path());
  // Job numbers sort numerically (2 before 10); other names alphabetically after them.
  std::sort(job_dirs.begin(), job_dirs.end(), [](const fs::path& a, const fs::path& b) {
    auto num = [](const fs::path& p) {
      std::string s = p.filename().string();
      return !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit) ? std::stoll(s) : INT64_MAX;
    };
    return std::pair(num(a), a.filename().string()) < std::pair(num(b), b.filename().string());
  });
  if (job_dirs.empty()) {
    fmt::print(stderr, "error: no job directories with results.h5 under {}\n", sweep.string());
    return 2;
  }

  std::vector<JobRow> rows;
  std::vector<std::string> columns;  // in first-seen order
  auto add_column = [&](const std::string& c) {
    if (std::find(columns.begin(), columns.end(), c) == columns.end()) columns.push_back(c);
  };
  for (const auto& dir : job_dirs) {
    JobRow row;
    row.dir = dir.filename().string();
    if (fs::exists(dir / ".hydra" / "overrides.yaml")) {
      const std::string text = runtime::read_file(dir / ".hydra" / "overrides.yaml");
      config::ConfigNode list = config::load_yaml_string(text, (dir / ".hydra/overrides.yaml").string());
      for (const auto& e : list.elements()) {
        std::string o = e.scalar_text();
        row.overrides.push_back(o);
        size_t eq = o.find('=');
        if (eq == std::string::npos) continue;
        std::string key = o.substr(o.find_first_not_of("+~"), eq - o.find_first_not_of("+~"));
        row.values[key] = o.substr(eq + 1);
        add_column(key);
      }
    }
    try {
      auto r = results::ResultsReader::open(dir / "results.h5");
      row.complete = r->complete();
      for (const auto& [k, v] : r->attrs("/summary")) {
        row.values[k] = results::attr_to_string(v);
        add_column(k);
      }
    } catch (const std::exception&) {
      // a job that has not written results (yet): its row says incomplete
    }
    rows.push_back(std::move(row));
  }

  std::string csv = "job,complete,overrides";
  for (const auto& c : columns) csv += "," + csv_escape(c);
  csv += "\n";
  for (const auto& row : rows) {
    csv += fmt::format("{},{},{}", csv_escape(row.dir), row.complete ? "true" : "false",
                       csv_escape(fmt::format("{}", fmt::join(row.overrides, " "))));
    for (const auto& c : columns) {
      auto it = row.values.find(c);
      csv += "," + csv_escape(it == row.values.end() ? "" : it->second);
    }
    csv += "\n";
  }
  try {
    runtime::write_file_atomic(sweep / "summary.csv", csv);
  } catch (const runtime::IoError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }

  // index.h5: one external link per job to its results file's root (h5py follows them).
  fs::path tmp = sweep / "index.h5.tmp";
  try {
    results::disable_hdf5_error_printing();
    results::Handle f = results::file_handle(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                                             "create " + tmp.string());
    for (const auto& dir : job_dirs) {
      std::string target = (fs::relative(dir, sweep) / "results.h5").string();
      std::string link = "/" + dir.filename().string();
      results::h5_check(H5Lcreate_external(target.c_str(), "/", f.get(), link.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                        "link " + link);
    }
  } catch (const results::H5Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    fs::remove(tmp);
    return 1;
  }
  fs::rename(tmp, sweep / "index.h5");
  size_t complete = static_cast<size_t>(std::count_if(rows.begin(), rows.end(), [](const JobRow& r) { return r.complete; }));
  fmt::print("collected {} jobs ({} complete) into {} and {}\n", rows.size(), complete,
             (sweep / "summary.csv").string(), (sweep / "index.h5").string());
  return 0;
}

}  // namespace xp::cli
