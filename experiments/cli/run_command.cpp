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
#include "core/dist/launch.h"
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

using config::task_overrides;

// Two runs started in the same second would share the default, time-stamped run directory
// (results/outputs/DATE/TIME): the second takes TIME_1 (then _2, …), claimed by an atomic mkdir,
// and its config records the directory it got. A directory given without a time stamp is left
// as it is (a second run there is refused).
fs::path claim_run_dir(const ConfigNode& composed, ConfigNode& resolved, const fs::path& out) {
  const ConfigNode* dir = composed.at_path("hydra.run.dir");
  if (resolved_text(resolved, "hydra.mode") == "MULTIRUN" || !dir || dir->scalar_text().find("${now:") == std::string::npos)
    return out;
  fs::create_directories(out.parent_path());
  fs::path claimed = out;
  for (int n = 1; !fs::create_directory(claimed); ++n) claimed = fs::path(fmt::format("{}_{}", out.string(), n));
  if (claimed != out) {
    resolved.ensure_path("hydra.run.dir") = ConfigNode::string(claimed.string());
    resolved.ensure_path("hydra.runtime.output_dir") = ConfigNode::string(claimed.string());
  }
  return claimed;
}

ConfigNode string_list(const std::vector<std::string>& v) {
  ConfigNode l = ConfigNode::list();
  for (const auto& s : v) l.push_back(ConfigNode::string(s));
  return l;
}

// A sweep's jobs are written down before any runs (SWEEP_DIR/.sweep/jobs.yaml): every job, local
// or a Slurm array task, runs from that manifest by index, and `exp run --resume SWEEP_DIR` or
// the same sweep command again runs the jobs that have not finished, leaving finished ones be.
fs::path manifest_path(const fs::path& sweep_dir) { return sweep_dir / ".sweep" / "jobs.yaml"; }

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

// The job's side of the `hydra` config: logging (hydra/job_logging, hydra.verbose), environment
// variables (hydra.job.env_set) and the working directory (hydra.job.chdir).
void apply_job_settings(const ConfigNode& hydra, const fs::path& dir, const std::string& job_name) {
  const ConfigNode* file = hydra.at_path("job_logging.file");
  if (!file || file->kind() != ConfigNode::Kind::kBool || file->as_bool())
    runtime::log_to_file(dir / (job_name + ".log"));
  if (const ConfigNode* level = hydra.at_path("job_logging.console_level"))
    runtime::set_console_level(spdlog::level::from_str(level->scalar_text()));
  // hydra.verbose: true, or a logger name or list of names; exp has one logger, "exp".
  if (const ConfigNode* v = hydra.find("verbose"); v && !v->is_null() && !(v->kind() == ConfigNode::Kind::kBool && !v->as_bool())) {
    runtime::logger()->set_level(spdlog::level::debug);
    runtime::set_console_level(spdlog::level::debug);
  }
  if (const ConfigNode* env = hydra.at_path("job.env_set"); env && env->is_map())
    for (const auto& [k, v] : env->items()) setenv(k.c_str(), v.scalar_text().c_str(), 1);
  if (const ConfigNode* chdir = hydra.at_path("job.chdir"); chdir && chdir->kind() == ConfigNode::Kind::kBool && chdir->as_bool())
    fs::current_path(dir);
}

// A Slurm array task stopped by a signal: requeue it when the signal was the time limit's
// (jobs::requeue_after_stop says when).
void requeue_if_timed_out(const ConfigNode& hydra, int checkpoint_signal, spdlog::logger& log) {
  const std::string id = jobs::slurm_requeue_id();
  if (id.empty() || !std::getenv("EXP_SLURM_MANIFEST")) return;
  const ConfigNode* max = hydra.at_path("launcher.max_num_timeout");
  const char* restarts = std::getenv("SLURM_RESTART_COUNT");
  switch (jobs::requeue_after_stop(runtime::stop_signal(), checkpoint_signal, restarts ? std::atoll(restarts) : 0,
                                   max && max->kind() == ConfigNode::Kind::kInt ? max->as_int() : 3)) {
    case jobs::Requeue::kNotOnThisSignal:
      log.info("stopped by signal {}, not the time limit's: not requeued (`exp run --resume` or Slurm continues it)",
               runtime::stop_signal());
      return;
    case jobs::Requeue::kTimeoutsSpent:
      log.warn("time limit reached {} times (hydra.launcher.max_num_timeout): not requeued; resume with --resume",
               restarts ? restarts : "0");
      return;
    case jobs::Requeue::kYes:
      break;
  }
  try {
    jobs::capture_process({"scontrol", "requeue", id});
    log.info("requeued Slurm job {}", id);
  } catch (const runtime::IoError& e) {
    log.error("could not requeue {}: {}", id, e.what());
  }
}

// Runs the experiment under a RunContext and reports; the config is already valid.
int execute(experiments::Experiment& exp, jobs::RunSpec spec, const std::string& job_name) {
  // The stop handlers come before the log file: whoever sees the log (a test, a wrapper script)
  // may signal the run at once.
  ConfigNode signal = spec.hydra.find("checkpoint_signal") ? *spec.hydra.find("checkpoint_signal") : ConfigNode();
  const int checkpoint_signal = signal.scalar_text() == "USR2" ? SIGUSR2 : SIGUSR1;
  runtime::install_stop_handlers(checkpoint_signal);
  const ConfigNode hydra = spec.hydra;
  const bool writes = !spec.processes || spec.processes->rank() == 0;
  if (!writes) {  // another process of a launch: the same run, nothing written, nothing printed
    runtime::set_console_level(spdlog::level::warn);
    jobs::RunContext ctx(std::move(spec));
    const jobs::RunOutcome outcome = exp.run(ctx);
    return outcome == jobs::RunOutcome::kPreempted ? runtime::kExitPreempted : 0;
  }
  fs::create_directories(spec.output_dir);
  apply_job_settings(spec.hydra, spec.output_dir, job_name);
  auto log = runtime::logger();
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
    requeue_if_timed_out(hydra, checkpoint_signal, *log);
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

// Whether `file` is results a run finished (a file cut short by a kill is not).
bool finished(const fs::path& file) {
  try {
    return results::ResultsReader::open(file)->complete();
  } catch (const std::exception&) {
    return false;
  }
}

// hydra.output_subdir: where the run's composed config goes (.hydra). `exp run --resume` reads
// it back, so it cannot be switched off (Hydra's null).
fs::path hydra_subdir(const ConfigNode& resolved) {
  const ConfigNode* sub = resolved.at_path("hydra.output_subdir");
  if (!sub || sub->is_null() || sub->scalar_text().empty() || fs::path(sub->scalar_text()).is_absolute() ||
      sub->scalar_text().find("..") != std::string::npos)
    throw ConfigError("hydra.output_subdir must name a folder inside the run directory", sub ? sub->loc() : config::SourceLoc{},
                      "hydra.output_subdir",
                      "exp keeps the composed config there for `exp run --resume`, so it cannot be null; the default is .hydra");
  return sub->scalar_text();
}

// The folder a run wrote its composed config to (.hydra unless hydra.output_subdir moved it).
fs::path find_hydra_subdir(const fs::path& dir) {
  if (fs::exists(dir / ".hydra" / "hydra.yaml")) return dir / ".hydra";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && fs::exists(e.path() / "hydra.yaml") && fs::exists(e.path() / "overrides.yaml")) return e.path();
  return dir / ".hydra";
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
  if (const dist::LaunchInfo launch = dist::detect_launch(); launch.size > 1) {
    if (!exp->runs_across_processes() && !exp->runs_as_spmd())
      throw ConfigError(fmt::format("{} started {} ranks, but {} runs in one process", launch.launcher, launch.size, info.name),
                        {}, {}, "run it without mpirun/srun (engine_serve and binarized_topology use them)");
    if (exp->runs_as_spmd() && launch.rank != 0) {  // the same run; rank 0 writes the run directory
      if (!o.manifest.empty() && finished(out / "results.h5")) return 0;  // rank 0 says so and stops too
      jobs::RunSpec spec;
      spec.config = job;
      spec.hydra = *resolved.find("hydra");
      spec.output_dir = out;
      spec.experiment = info.name;
      spec.processes = dist::launched_world();
      return execute(*exp, std::move(spec), resolved_text(resolved, "hydra.job.name"));
    }
    if (launch.rank != 0) {  // a worker: rank 0 writes the run directory
      exp->run_worker();
      return 0;
    }
  }

  if (o.manifest.empty()) out = claim_run_dir(root, resolved, out);
  const fs::path subdir = out / hydra_subdir(resolved);
  jobs::RunLock lock = lock_run_dir(out);
  bool resume = false;
  if (fs::exists(out / "results.h5")) {
    // A sweep job run again (a requeued Slurm task, a resumed or repeated sweep) comes back to
    // its own directory: a finished job is left as it is, a stopped one continues.
    if (!o.manifest.empty()) {
      if (finished(out / "results.h5")) {
        fmt::print("{} finished already: nothing to do\n", out.string());
        return 0;
      }
      resume = true;
    } else {
      throw ConfigError(fmt::format("the run directory {} already holds results", out.string()), {},
                        "hydra.run.dir", fmt::format("resume it with `exp run --resume {}` or choose another hydra.run.dir", out.string()));
    }
  }
  fs::create_directories(subdir);
  ConfigNode hydra_file = ConfigNode::map();
  hydra_file.set("hydra", *resolved.find("hydra"));
  // Not fsynced: results.h5 keeps its own copy of the config, and a journal flush here was most
  // of a one-request simulation's time.
  constexpr auto kill_safe = runtime::Durability::survive_kill;
  runtime::write_file_atomic(subdir / "config.yaml", config::dump_yaml(composed.job()), kill_safe);
  runtime::write_file_atomic(subdir / "hydra.yaml", config::dump_yaml(hydra_file), kill_safe);
  runtime::write_file_atomic(subdir / "overrides.yaml", config::dump_yaml(string_list(task)), kill_safe);

  jobs::RunSpec spec;
  spec.config = job;
  spec.config_unresolved = composed.job();
  spec.hydra = *resolved.find("hydra");
  spec.output_dir = out;
  spec.overrides = task;
  spec.experiment = info.name;
  spec.resume = resume;
  if (exp->runs_as_spmd() && dist::detect_launch().size > 1) spec.processes = dist::launched_world();
  return execute(*exp, std::move(spec), resolved_text(resolved, "hydra.job.name"));
}

int resume_sweep(const RunOptions& o, const fs::path& dir);

int run_resume(const RunOptions& o) {
  fs::path dir = fs::absolute(o.resume_dir).lexically_normal();
  if (!fs::exists(dir / "results.h5") && fs::exists(manifest_path(dir))) return resume_sweep(o, dir);
  if (!fs::is_directory(dir))
    throw ConfigError(fmt::format("cannot resume {}: no such directory", dir.string()), {}, {},
                      "--resume takes a run directory made by `exp run`");
  // In a launch (a training run resumed on several ranks) rank 0 holds the lock and writes.
  const dist::LaunchInfo launch = dist::detect_launch();
  std::optional<jobs::RunLock> lock;
  if (launch.rank == 0) lock.emplace(lock_run_dir(dir));
  const fs::path subdir = find_hydra_subdir(dir);
  if (!fs::exists(subdir / "hydra.yaml"))
    throw ConfigError(fmt::format("cannot resume {}: it holds no composed config (.hydra)", dir.string()), {}, {},
                      "--resume takes a run directory made by `exp run`");
  ConfigNode unresolved = config::load_yaml_file(subdir / "config.yaml");
  ConfigNode hydra_file = config::load_yaml_file(subdir / "hydra.yaml");
  ConfigNode overrides = config::load_yaml_file(subdir / "overrides.yaml");
  // The resolved config stored at the start is exactly what this run was: read from results.h5,
  // or from the copy saved with the last checkpoint when a kill cut results.h5 short; a run
  // killed before both were written resolves .hydra's config again.
  std::optional<ConfigNode> job;
  for (const fs::path& file : {dir / "results.h5", dir / "checkpoints" / "results.h5.saved"}) {
    try {
      if (file.filename() == "results.h5" && finished(file)) {
        if (launch.rank == 0) fmt::print("{} finished already: nothing to resume\n", dir.string());
        return 0;
      }
      auto reader = results::ResultsReader::open(file);  // closed before RunContext reopens it
      if (auto text = reader->text("/config")) {
        job = config::load_yaml_string(*text, (file.string() + ":/config"));
        break;
      }
    } catch (const std::exception&) {
      // unreadable: try the next source
    }
  }
  if (!job) {
    ConfigNode root = unresolved;
    root.set("hydra", hydra_file.find("hydra") ? *hydra_file.find("hydra") : ConfigNode::map());
    job = config::resolve(root);
    job->erase("hydra");
  }
  if (o.workers != 0) {
    // Resizing: the worker count never changes a training run's results, so the run continues
    // on another count as the same run (docs/parallelism.md).
    ConfigNode* workers = job->at_path("train.workers");
    if (!workers)
      throw ConfigError(fmt::format("cannot resume {} on {} workers: its experiment has no train.workers", dir.string(), o.workers),
                        {}, "--workers", "--workers applies to training experiments (binarized_topology, dynaquant)");
    if (o.workers < 0)
      throw ConfigError(fmt::format("--workers must be positive, got {}", o.workers), {}, "--workers", "e.g. --workers 2");
    *workers = ConfigNode::integer(o.workers);
  }
  const ConfigNode* name = job->find("experiment");
  const auto& info = experiments::find_experiment(name ? name->scalar_text() : "", {});
  auto exp = info.create(*job);
  if (launch.size > 1 && !exp->runs_as_spmd())
    throw ConfigError(fmt::format("{} started {} ranks, but a {} run resumes in one process", launch.launcher, launch.size, info.name),
                      {"<command line>"}, {}, "resume it without mpirun/srun (an engine run restarts whole)");
  jobs::RunSpec spec;
  if (launch.size > 1) spec.processes = dist::launched_world();
  spec.config = *job;
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
  // Every job must compose, resolve and pass its experiment's config checks before anything runs
  // or is submitted: a typo in job 7 should not surface after 6 ran, nor in every task of an array.
  for (const auto& job : s.jobs) {
    config::ComposeRequest r = s.request;
    r.overrides = job;
    ConfigNode resolved = config::resolve(config::compose(r).job());
    if (const ConfigNode* name = resolved.find("experiment"); name && name->is_string())
      experiments::find_experiment(name->as_string(), name->loc()).create(resolved);
  }
  return s;
}

void write_manifest(const RunOptions& o, const Sweep& s, const std::string& launcher) {
  ConfigNode manifest = ConfigNode::map();
  manifest.set("launcher", ConfigNode::string(launcher));
  manifest.set("config", ConfigNode::string(s.request.primary.empty() ? "" : fs::absolute(s.request.primary).string()));
  manifest.set("config_dirs", string_list(o.config_dirs));
  manifest.set("sweep_dir", ConfigNode::string(s.dir.string()));
  ConfigNode jobs_node = ConfigNode::list();
  for (const auto& j : s.jobs) jobs_node.push_back(string_list(j));
  manifest.set("jobs", jobs_node);
  fs::create_directories(manifest_path(s.dir).parent_path());
  runtime::write_file_atomic(manifest_path(s.dir), config::dump_yaml(manifest));
}

// Runs every job of a manifest as a child `exp run --from-manifest M --index I`, `parallel` at
// a time. A SIGTERM/SIGINT to the sweep is passed on to the running jobs (each checkpoints and
// stops), no further job starts, and the sweep exits 75 so that it can be resumed.
int run_local_jobs(const fs::path& manifest, const std::vector<std::vector<std::string>>& job_overrides, const fs::path& sweep_dir,
                   int parallel) {
  auto log = runtime::logger();
  jobs::RunLock lock = lock_run_dir(sweep_dir);  // one sweep process at a time
  const size_t num_jobs = job_overrides.size();
  runtime::install_stop_handlers();
  std::map<pid_t, size_t> running;
  std::vector<int> codes(num_jobs, -1);
  size_t next = 0;
  bool forwarded = false;
  parallel = std::max(1, parallel);
  while (next < num_jobs || !running.empty()) {
    while (next < num_jobs && static_cast<int>(running.size()) < parallel && !runtime::stop_requested()) {
      log->info("#{} : {}", next, fmt::join(task_overrides(job_overrides[next]), " "));
      running[jobs::spawn_process({jobs::self_executable().string(), "run", "--from-manifest", manifest.string(),
                                   "--index", std::to_string(next)})] = next;
      ++next;
    }
    if (runtime::stop_requested() && !forwarded) {
      log->warn("sweep stopped by signal {}: stopping {} running job(s)", runtime::stop_signal(), running.size());
      for (auto& [p, i] : running) kill(p, SIGTERM);  // pass the preemption on to every job
      forwarded = true;
    }
    if (running.empty()) break;
    // Polled, not a blocking waitpid: the stop handler restarts interrupted calls (SA_RESTART).
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      usleep(20000);
      continue;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    codes[it->second] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    running.erase(it);
  }
  auto count = [&](int code) { return static_cast<size_t>(std::count(codes.begin(), codes.end(), code)); };
  size_t ok = count(0), preempted = count(runtime::kExitPreempted), not_started = count(-1);
  size_t failed = num_jobs - ok - preempted - not_started;
  fmt::print("\nsweep {}: {} of {} jobs finished", sweep_dir.string(), ok, num_jobs);
  if (preempted) fmt::print(", {} stopped after a checkpoint", preempted);
  if (not_started) fmt::print(", {} not started", not_started);
  if (failed) fmt::print(", {} failed", failed);
  if (ok < num_jobs) fmt::print("\nrun the unfinished ones with: exp run --resume {}", sweep_dir.string());
  fmt::print("\nsummarise it with: exp collect {}\n", sweep_dir.string());
  if (failed) return 1;
  return ok == num_jobs ? 0 : runtime::kExitPreempted;
}

int run_slurm_sweep(const Sweep& s) {
  ConfigNode launcher = config::resolve_at(s.base, "hydra.launcher");
  jobs::SlurmParams params = jobs::slurm_params_from(launcher);
  params.checkpoint_signal = resolved_text(s.base, "hydra.checkpoint_signal") == "USR2" ? "USR2" : "USR1";
  fs::path slurm_dir = s.dir / ".slurm";
  fs::create_directories(slurm_dir);
  std::string script = jobs::sbatch_script(params, resolved_text(s.base, "hydra.job.name"), s.dir, s.jobs.size(),
                                           jobs::self_executable(), manifest_path(s.dir));
  runtime::write_file_atomic(slurm_dir / "submit.sh", script);
  std::string out;
  try {
    out = jobs::capture_process({"sbatch", "--parsable", (slurm_dir / "submit.sh").string()});
  } catch (const runtime::IoError& e) {
    fmt::print(stderr, "error: sbatch failed: {}\n  the script is {}\n", e.what(), (slurm_dir / "submit.sh").string());
    return 1;
  }
  std::string id = out.substr(0, out.find_first_of("\n;"));
  fmt::print("submitted {} jobs as Slurm array {} ({})\n", s.jobs.size(), id, (slurm_dir / "submit.sh").string());
  return 0;
}

// multirun.yaml: the composed config as Hydra writes it, with the sweep's axes recorded under
// hydra.sweeper.params (key -> values as typed) and every override under hydra.overrides.task.
ConfigNode multirun_record(const RunOptions& o, const Sweep& s) {
  ConfigNode record = s.base;
  ConfigNode& params = record.ensure_path("hydra.sweeper.params");
  if (!params.is_map()) params = ConfigNode::map();
  for (const auto& text : o.overrides) {
    config::Override ov = config::parse_override(text);
    if (!ov.is_sweep()) continue;
    std::string key = text.substr(0, text.find('='));
    params.set(key, ConfigNode::string(ov.value_text));
  }
  record.ensure_path("hydra.overrides.task") = string_list(task_overrides(o.overrides));
  return record;
}

int run_multirun(const RunOptions& o) {
  Sweep s = plan_sweep(o);
  fs::create_directories(s.dir);
  runtime::write_file_atomic(s.dir / "multirun.yaml", config::dump_yaml(multirun_record(o, s)));
  std::string launcher = resolved_text(s.base, "hydra.launcher.name");
  write_manifest(o, s, launcher == "slurm" ? "slurm" : "local");
  if (launcher == "slurm") return run_slurm_sweep(s);
  return run_local_jobs(manifest_path(s.dir), s.jobs, s.dir, o.jobs);
}

// `exp run --resume SWEEP_DIR`: the sweep's jobs again, from its manifest, on this machine.
int resume_sweep(const RunOptions& o, const fs::path& dir) {
  ConfigNode m = config::load_yaml_file(manifest_path(dir));
  const ConfigNode* jobs_node = m.find("jobs");
  if (!jobs_node || !jobs_node->is_list())
    throw ConfigError("the sweep manifest lists no jobs", {manifest_path(dir).string()}, "jobs",
                      "it is written by `exp run -m`; rerun the sweep command");
  std::vector<std::vector<std::string>> job_overrides;
  for (const auto& j : jobs_node->elements()) {
    job_overrides.emplace_back();
    for (const auto& e : j.elements()) job_overrides.back().push_back(e.scalar_text());
  }
  return run_local_jobs(manifest_path(dir), job_overrides, dir, o.jobs);
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
  const ConfigNode* launcher = m.find("launcher");
  if (!launcher || launcher->scalar_text() == "slurm") setenv("EXP_SLURM_MANIFEST", o.manifest.c_str(), 1);
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
    if (dist::detect_launch().size > 1 && o.multirun)
      throw ConfigError("a launch of several ranks runs one job", {"<command line>"}, {},
                        "start the sweep without mpirun/srun (hydra.launcher.tasks_per_node gives each job several)");
    if (!o.manifest.empty()) return run_from_manifest(o);
    if (!o.resume_dir.empty()) return run_resume(o);
    if (!o.cfg.empty() || !o.info.empty()) return print_config(o);
    if (o.multirun) return run_multirun(o);
    if (config::has_sweep(o.overrides))
      throw ConfigError(fmt::format("{} is a sweep, but this is a single run", fmt::join(o.overrides, " ")),
                        {"<command line>"}, {}, "add -m (or use `exp sweep`) to run every combination");
    return run_single(o);
  } catch (const ConfigError& e) {
    const int rank = dist::detect_launch().rank;  // every rank of a launch composes the same config
    fmt::print(stderr, "error{}: {}\n", rank ? fmt::format(" (rank {})", rank) : "", e.what());
    dist::abort_launch(runtime::kExitUsage);  // peers may be waiting for this rank: end them too
    return runtime::kExitUsage;
  }
}

}  // namespace xp::cli
