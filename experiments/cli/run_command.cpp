// `exp run`: compose, resolve, build the experiment, set up the run directory, run, report.
// Multirun expands sweeps and runs each job as a child `exp run` (local launcher) or submits
// one Slurm array (hydra/launcher=slurm) whose tasks come back through --from-manifest.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <sys/wait.h>

#include <csignal>
#include <filesystem>
#include <map>

#include "core/config/compose.h"
#include "core/config/error.h"
#include "core/config/override.h"
#include "core/config/reader.h"
#include "core/config/resolve.h"
#include "core/config/sweep.h"
#include "core/config/yaml_io.h"
#include "core/jobs/process.h"
#include "core/jobs/run_context.h"
#include "core/jobs/run_lock.h"
#include "core/jobs/slurm.h"
#include "core/results/results_file.h"
#include "core/runtime/files.h"
#include "core/runtime/logging.h"
#include "core/runtime/signals.h"
#include "experiments/cli/commands.h"
#include "experiments/experiment.h"

namespace xp::cli {
namespace fs = std::filesystem;
using config::ConfigError;
using config::ConfigNode;

namespace {

config::ComposeRequest make_request(const RunOptions& o) {
  config::ComposeRequest req;
  fs::path primary;
  if (!o.config.empty()) {
    primary = o.config;
  } else if (!o.config_name.empty()) {
    std::string name = o.config_name.ends_with(".yaml") ? o.config_name : o.config_name + ".yaml";
    primary = fs::path(o.config_path.empty() ? "configs" : o.config_path) / name;
  } else if (fs::exists("configs/config.yaml")) {
    primary = "configs/config.yaml";
  }
  if (!primary.empty() && !fs::is_regular_file(primary))
    throw ConfigError("config file not found", {primary.string()}, {},
                      "give the path of a YAML file, e.g. exp run configs/quickstart.yaml");
  std::vector<fs::path> dirs(o.config_dirs.begin(), o.config_dirs.end());
  if (!o.config_path.empty()) dirs.emplace_back(o.config_path);
  config::SearchPath base = primary.empty() ? config::SearchPath({fs::path("configs"), config::builtin_config_dir()})
                                            : config::search_path_for(primary);
  for (const auto& d : base.dirs()) dirs.push_back(d);
  req.search_path = config::SearchPath(dirs);
  req.primary = primary;
  req.overrides = o.overrides;
  return req;
}

std::string resolved_text(const ConfigNode& root, const std::string& path) {
  ConfigNode n = config::resolve_at(root, path);
  return n.scalar_text();
}

fs::path output_dir_of(const ConfigNode& root) {
  fs::path dir = resolved_text(root, "hydra.mode") == "MULTIRUN"
                     ? fs::path(resolved_text(root, "hydra.sweep.dir")) / resolved_text(root, "hydra.sweep.subdir")
                     : fs::path(resolved_text(root, "hydra.run.dir"));
  return fs::absolute(dir).lexically_normal();
}

// Overrides of the framework itself (hydra.*) are not the task's: Hydra keeps them apart.
std::vector<std::string> task_overrides(const std::vector<std::string>& all) {
  std::vector<std::string> out;
  for (const auto& o : all) {
    std::string key = o.substr(o.find_first_not_of("+~"));
    if (!key.starts_with("hydra.") && !key.starts_with("hydra/")) out.push_back(o);
  }
  return out;
}

ConfigNode string_list(const std::vector<std::string>& v) {
  ConfigNode l = ConfigNode::list();
  for (const auto& s : v) l.push_back(ConfigNode::string(s));
  return l;
}

void write_or_throw(const fs::path& p, const std::string& text) {
  Status s = runtime::write_file_atomic(p, text);
  if (!s.is_ok()) throw std::runtime_error(s.message());
}

// One process at a time in a run directory (see RunLock); a second is refused with exit 2.
jobs::RunLock lock_run_dir(const fs::path& dir) {
  fs::create_directories(dir);
  std::string holder;
  auto lock = jobs::RunLock::try_acquire(dir, &holder);
  if (!lock)
    throw ConfigError(fmt::format("the run directory {} is in use by {}", dir.string(), holder), {}, "hydra.run.dir",
                      "wait for that run to end, or stop it (kill -TERM PID) and then resume it with --resume");
  return std::move(*lock);
}

// Runs the experiment under a RunContext and reports; the config is already valid.
int execute(experiments::Experiment& exp, jobs::RunSpec spec, const std::string& job_name) {
  fs::create_directories(spec.output_dir);
  runtime::log_to_file(spec.output_dir / (job_name + ".log"));
  auto log = runtime::logger();
  ConfigNode signal = spec.hydra.find("checkpoint_signal") ? *spec.hydra.find("checkpoint_signal") : ConfigNode();
  runtime::install_stop_handlers(signal.scalar_text() == "USR2" ? SIGUSR2 : SIGUSR1);
  fs::path dir = spec.output_dir;
  auto ctx = std::make_unique<jobs::RunContext>(std::move(spec));
  log->info("{} {} -> {}", ctx->resuming() ? "resuming" : "running", job_name, dir.string());
  jobs::RunOutcome outcome = exp.run(*ctx);
  ctx->finish(outcome);
  if (outcome == jobs::RunOutcome::kPreempted) {
    if (ctx->has_checkpoint())
      log->warn("stopped by signal {}; checkpoint saved. Resume with: exp run --resume {}", runtime::stop_signal(),
                dir.string());
    else  // e.g. a simulation stopped mid-run: it keeps no checkpoint, and must not claim one
      log->warn("stopped by signal {}; this run keeps no checkpoint, so `exp run --resume {}` starts it again "
                "from the beginning", runtime::stop_signal(), dir.string());
    std::string requeue = jobs::slurm_requeue_id();
    if (!requeue.empty() && std::getenv("EXP_SLURM_MANIFEST")) {
      auto r = jobs::capture_process({"scontrol", "requeue", requeue});
      if (r.is_ok()) log->info("requeued Slurm job {}", requeue);
      else log->error("could not requeue {}: {}", requeue, r.status().message());
    }
    runtime::stop_logging_to_file();
    return runtime::kExitPreempted;
  }
  fmt::print("\n{} ({})\n", job_name, dir.string());
  exp.report(*ctx);
  fmt::print("results: {}\n", (dir / "results.h5").string());
  ctx.reset();  // closes results.h5
  exp.after_close(dir);
  runtime::stop_logging_to_file();
  return 0;
}

int run_single(const RunOptions& o) {
  config::ComposedConfig composed = config::compose(make_request(o));
  ConfigNode& root = composed.root;
  fs::path out = output_dir_of(root);
  root.ensure_path("hydra.runtime.output_dir") = ConfigNode::string(out.string());
  std::vector<std::string> task = task_overrides(o.overrides);
  root.ensure_path("hydra.overrides.task") = string_list(task);
  ConfigNode resolved = config::resolve(root);  // every ??? and interpolation checked here

  ConfigNode job = resolved;
  job.erase("hydra");
  const ConfigNode* name = job.find("experiment");
  if (!name || !name->is_string())
    throw ConfigError("the config selects no experiment", {}, "experiment",
                      "add `experiment: NAME` (see `exp list`) or +experiment=NAME");
  const auto& info = experiments::find_experiment(name->as_string(), name->loc());
  auto exp = info.create(job);
  if (o.check) {
    fmt::print("{}: the config is valid ({})\n", o.config.empty() ? o.config_name : o.config, info.name);
    return 0;
  }

  jobs::RunLock lock = lock_run_dir(out);
  bool resume = false;
  if (fs::exists(out / "results.h5")) {
    // A requeued Slurm task comes back to its own directory: continue where it stopped.
    if (!o.manifest.empty()) {
      resume = true;
    } else {
      throw ConfigError(fmt::format("the run directory {} already holds results", out.string()), {},
                        "hydra.run.dir", fmt::format("resume it with `exp run --resume {}` or choose another hydra.run.dir", out.string()));
    }
  }
  fs::create_directories(out / ".hydra");
  ConfigNode hydra_file = ConfigNode::map();
  hydra_file.set("hydra", *resolved.find("hydra"));
  write_or_throw(out / ".hydra" / "config.yaml", config::dump_yaml(composed.job()));
  write_or_throw(out / ".hydra" / "hydra.yaml", config::dump_yaml(hydra_file));
  write_or_throw(out / ".hydra" / "overrides.yaml", config::dump_yaml(string_list(task)));

  jobs::RunSpec spec;
  spec.config = job;
  spec.config_unresolved = composed.job();
  spec.hydra = *resolved.find("hydra");
  spec.output_dir = out;
  spec.overrides = task;
  spec.experiment = info.name;
  spec.resume = resume;
  return execute(*exp, std::move(spec), resolved_text(resolved, "hydra.job.name"));
}

int run_resume(const RunOptions& o) {
  fs::path dir = fs::absolute(o.resume_dir).lexically_normal();
  if (!fs::is_directory(dir))
    throw ConfigError(fmt::format("cannot resume {}: no such directory", dir.string()), {}, {},
                      "--resume takes a run directory made by `exp run`");
  jobs::RunLock lock = lock_run_dir(dir);
  ConfigNode job;
  {
    auto reader = results::ResultsReader::open(dir / "results.h5");  // closed before RunContext reopens it
    if (!reader.is_ok())
      throw ConfigError(fmt::format("cannot resume {}: {}", dir.string(), reader.status().message()), {}, {},
                        "--resume takes a run directory made by `exp run`");
    if (reader->complete()) {
      fmt::print("{} finished already: nothing to resume\n", dir.string());
      return 0;
    }
    // The resolved config stored at the start is exactly what this run was.
    job = config::load_yaml_string(reader->text("/config").value_or(""), (dir / "results.h5:/config").string());
  }
  ConfigNode unresolved = config::load_yaml_file(dir / ".hydra" / "config.yaml");
  ConfigNode hydra_file = config::load_yaml_file(dir / ".hydra" / "hydra.yaml");
  ConfigNode overrides = config::load_yaml_file(dir / ".hydra" / "overrides.yaml");
  const ConfigNode* name = job.find("experiment");
  const auto& info = experiments::find_experiment(name ? name->scalar_text() : "", {});
  auto exp = info.create(job);
  jobs::RunSpec spec;
  spec.config = job;
  spec.config_unresolved = unresolved;
  spec.hydra = hydra_file.find("hydra") ? *hydra_file.find("hydra") : ConfigNode::map();
  spec.output_dir = dir;
  if (overrides.is_list())
    for (const auto& e : overrides.elements()) spec.overrides.push_back(e.scalar_text());
  spec.experiment = info.name;
  spec.resume = true;
  const ConfigNode* job_name = spec.hydra.at_path("job.name");
  return execute(*exp, std::move(spec), job_name ? job_name->scalar_text() : "run");
}

// --- multirun ---------------------------------------------------------------------------------

struct Sweep {
  config::ComposeRequest request;
  ConfigNode base;  // composed with the non-sweep overrides, hydra included, unresolved
  std::vector<std::vector<std::string>> jobs;
  fs::path dir;
};

Sweep plan_sweep(const RunOptions& o) {
  Sweep s;
  s.request = make_request(o);
  std::vector<std::string> fixed;
  for (const auto& ov : o.overrides)
    if (!config::parse_override(ov).is_sweep()) fixed.push_back(ov);
  config::ComposeRequest base_req = s.request;
  base_req.overrides = fixed;
  s.base = config::compose(base_req).root;
  ConfigNode params = config::resolve_at(s.base, "hydra.sweeper.params");
  s.jobs = config::expand_sweep(o.overrides, s.request.search_path, params);
  s.dir = fs::absolute(resolved_text(s.base, "hydra.sweep.dir")).lexically_normal();
  // Every job must compose before anything runs: a typo in job 7 should not surface after 6 ran.
  for (const auto& job : s.jobs) {
    config::ComposeRequest r = s.request;
    r.overrides = job;
    config::resolve(config::compose(r).job());
  }
  return s;
}

std::vector<std::string> child_args(const RunOptions& o, const Sweep& s, size_t i) {
  std::vector<std::string> a = {jobs::self_executable().string(), "run"};
  for (const auto& d : o.config_dirs) a.insert(a.end(), {"-cd", d});
  if (!s.request.primary.empty()) a.push_back(fs::absolute(s.request.primary).string());
  for (const auto& ov : s.jobs[i]) a.push_back(ov);
  a.push_back("hydra.mode=MULTIRUN");
  a.push_back(fmt::format("hydra.job.num={}", i));
  a.push_back(fmt::format("hydra.sweep.dir={}", s.dir.string()));
  return a;
}

int run_local_sweep(const RunOptions& o, const Sweep& s) {
  auto log = runtime::logger();
  runtime::install_stop_handlers();
  std::map<pid_t, size_t> running;
  std::vector<int> codes(s.jobs.size(), -1);
  size_t next = 0;
  int parallel = std::max(1, o.jobs);
  while (next < s.jobs.size() || !running.empty()) {
    while (next < s.jobs.size() && static_cast<int>(running.size()) < parallel && !runtime::stop_requested()) {
      log->info("#{} : {}", next, fmt::join(task_overrides(s.jobs[next]), " "));
      running[jobs::spawn_process(child_args(o, s, next))] = next;
      ++next;
    }
    if (running.empty()) break;
    int status = 0;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR && runtime::stop_requested())
        for (auto& [p, i] : running) kill(p, SIGTERM);  // pass the preemption on to every job
      continue;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    codes[it->second] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    running.erase(it);
  }
  size_t ok = static_cast<size_t>(std::count(codes.begin(), codes.end(), 0));
  size_t preempted = static_cast<size_t>(std::count(codes.begin(), codes.end(), runtime::kExitPreempted));
  fmt::print("\nsweep {}: {} of {} jobs finished", s.dir.string(), ok, s.jobs.size());
  if (preempted) fmt::print(", {} preempted (resume each with exp run --resume DIR)", preempted);
  fmt::print("\nsummarise it with: exp collect {}\n", s.dir.string());
  if (ok == s.jobs.size()) return 0;
  return preempted + ok == s.jobs.size() ? runtime::kExitPreempted : 1;
}

int run_slurm_sweep(const RunOptions& o, const Sweep& s) {
  ConfigNode launcher = config::resolve_at(s.base, "hydra.launcher");
  jobs::SlurmParams params = jobs::slurm_params_from(launcher);
  fs::path slurm_dir = s.dir / ".slurm";
  fs::create_directories(slurm_dir);
  ConfigNode manifest = ConfigNode::map();
  manifest.set("config", ConfigNode::string(s.request.primary.empty() ? "" : fs::absolute(s.request.primary).string()));
  manifest.set("config_dirs", string_list(o.config_dirs));
  manifest.set("sweep_dir", ConfigNode::string(s.dir.string()));
  ConfigNode jobs_node = ConfigNode::list();
  for (const auto& j : s.jobs) jobs_node.push_back(string_list(j));
  manifest.set("jobs", jobs_node);
  write_or_throw(slurm_dir / "jobs.yaml", config::dump_yaml(manifest));
  std::string script = jobs::sbatch_script(params, resolved_text(s.base, "hydra.job.name"), s.dir, s.jobs.size(),
                                           jobs::self_executable(), slurm_dir / "jobs.yaml");
  write_or_throw(slurm_dir / "submit.sh", script);
  auto out = jobs::capture_process({"sbatch", "--parsable", (slurm_dir / "submit.sh").string()});
  if (!out.is_ok()) {
    fmt::print(stderr, "error: sbatch failed: {}\n  the script is {}\n", out.status().message(),
               (slurm_dir / "submit.sh").string());
    return 1;
  }
  std::string id = out.value().substr(0, out.value().find_first_of("\n;"));
  fmt::print("submitted {} jobs as Slurm array {} ({})\n", s.jobs.size(), id, (slurm_dir / "submit.sh").string());
  return 0;
}

int run_multirun(const RunOptions& o) {
  Sweep s = plan_sweep(o);
  fs::create_directories(s.dir);
  write_or_throw(s.dir / "multirun.yaml", config::dump_yaml(s.base));
  std::string launcher = resolved_text(s.base, "hydra.launcher.name");
  if (launcher == "slurm") return run_slurm_sweep(o, s);
  return run_local_sweep(o, s);
}

int run_from_manifest(const RunOptions& o) {
  ConfigNode m = config::load_yaml_file(o.manifest);
  const ConfigNode* jobs_node = m.find("jobs");
  if (!jobs_node || o.index < 0 || static_cast<size_t>(o.index) >= jobs_node->size())
    throw ConfigError(fmt::format("no job {} in the manifest", o.index), {o.manifest}, "jobs",
                      "--index must be a SLURM_ARRAY_TASK_ID of this sweep");
  RunOptions child = o;
  child.config = m.find("config") ? m.find("config")->scalar_text() : "";
  child.config_dirs.clear();
  if (const ConfigNode* d = m.find("config_dirs"); d && d->is_list())
    for (const auto& e : d->elements()) child.config_dirs.push_back(e.scalar_text());
  child.overrides.clear();
  for (const auto& e : jobs_node->elements()[static_cast<size_t>(o.index)].elements())
    child.overrides.push_back(e.scalar_text());
  child.overrides.push_back("hydra.mode=MULTIRUN");
  child.overrides.push_back(fmt::format("hydra.job.num={}", o.index));
  child.overrides.push_back(fmt::format("hydra.sweep.dir={}", m.find("sweep_dir")->scalar_text()));
  setenv("EXP_SLURM_MANIFEST", o.manifest.c_str(), 1);
  return run_single(child);
}

void print_defaults(const config::ComposedConfig& c) {
  std::vector<std::pair<std::string, std::string>> rows;
  fmt::print("Defaults tree (merge order; later rows override earlier ones)\n");
  fmt::print("{:<40} {:<24} {}\n", "config", "package", "parent");
  for (const auto& e : c.defaults)
    fmt::print("{:<40} {:<24} {}\n", std::string(static_cast<size_t>(e.depth) * 2, ' ') + e.config_path,
               e.package.empty() ? "_global_" : e.package, e.parent);
  fmt::print("\nChoices\n");
  for (const auto& [g, opt] : c.choices) fmt::print("  {} = {}\n", g, opt);
}

int print_config(const RunOptions& o) {
  config::ComposedConfig c = config::compose(make_request(o));
  if (!o.info.empty()) {
    if (o.info != "defaults")
      throw ConfigError(fmt::format("unknown --info '{}'", o.info), {}, {}, "supported: --info defaults");
    print_defaults(c);
    return 0;
  }
  ConfigNode root = c.root;
  root.ensure_path("hydra.runtime.output_dir") = ConfigNode::string(output_dir_of(root).string());
  ConfigNode src = o.resolve ? config::resolve(root) : root;
  ConfigNode shown;
  if (o.cfg == "job") {
    shown = src;
    shown.erase("hydra");
  } else if (o.cfg == "hydra") {
    shown = ConfigNode::map();
    shown.set("hydra", *src.find("hydra"));
  } else if (o.cfg == "all") {
    shown = src;
  } else {
    throw ConfigError(fmt::format("unknown --cfg '{}'", o.cfg), {}, {}, "use --cfg job, hydra or all");
  }
  if (!o.package.empty()) {
    const ConfigNode* sub = shown.at_path(o.package);
    if (!sub) throw ConfigError(fmt::format("no package '{}' in the config", o.package), {}, o.package,
                                config::did_you_mean(o.package, config::all_paths(shown)));
    ConfigNode subtree = *sub;  // copy first: `sub` points into `shown`
    shown = std::move(subtree);
  }
  fmt::print("{}", config::dump_yaml(shown));
  return 0;
}

}  // namespace

int run_command(const RunOptions& o) {
  try {
    if (!o.manifest.empty()) return run_from_manifest(o);
    if (!o.resume_dir.empty()) return run_resume(o);
    if (!o.cfg.empty() || !o.info.empty()) return print_config(o);
    if (o.multirun) return run_multirun(o);
    if (config::has_sweep(o.overrides))
      throw ConfigError(fmt::format("{} is a sweep, but this is a single run", fmt::join(o.overrides, " ")),
                        {"<command line>"}, {}, "add -m (or use `exp sweep`) to run every combination");
    return run_single(o);
  } catch (const ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return runtime::kExitUsage;
  }
}

}  // namespace xp::cli
