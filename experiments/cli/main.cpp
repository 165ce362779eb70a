// The `exp` command line: verbs run, sweep, list, show, collect (Boost.Program_options for
// flags; overrides are positional tokens parsed by core/config's grammar).
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "core/config/error.h"
#include "core/dist/launch.h"
#include "core/runtime/logging.h"
#include "core/runtime/signals.h"
#include "experiments/cli/commands.h"

namespace po = boost::program_options;

namespace {

constexpr const char* kVersion = "exp 0.1.0";

constexpr const char* kUsage = R"(usage: exp <verb> [options]

verbs:
  run [CONFIG] [OVERRIDES...]   compose CONFIG with overrides and run its experiment
  sweep [CONFIG] [OVERRIDES...] the same as `run -m`: run every combination of the sweeps
  list                          experiments, config groups and their options
  show RESULTS.h5|RUN_DIR       provenance, summary and tables of one run
  collect SWEEP_DIR             summary.csv and index.h5 over a sweep's jobs
  serve [CONFIG] [OVERRIDES...] an OpenAI-compatible server over the engine (configs/serve.yaml)
  compress IN OUT.dqck          DynaQuant one-shot: a safetensors checkpoint into a .dqck container
  decompress IN.dqck OUT        a .dqck container back into fp32 safetensors

`exp VERB --help` describes each verb. Exit codes: 0 done, 1 failed, 2 bad config or usage
(nothing written), 75 stopped by a signal after a checkpoint (resume with --resume).
)";

bool is_override(const std::string& t) {
  return t.find('=') != std::string::npos || t.starts_with("~") || t.starts_with("+");
}

int run_or_sweep(const std::vector<std::string>& args, bool sweep) {
  po::options_description opts(sweep ? "exp sweep [CONFIG] [OVERRIDES...]" : "exp run [CONFIG] [OVERRIDES...]");
  xp::cli::RunOptions o;
  o.multirun = sweep;
  opts.add_options()
      ("help,h", "describe this verb")
      ("multirun,m", po::bool_switch(&o.multirun), "run every combination of sweep overrides (a=1,2 b=range(3))")
      ("jobs,j", po::value<int>(&o.jobs)->default_value(1), "local sweep jobs to run at a time")
      ("cfg,c", po::value<std::string>(&o.cfg), "print the config instead of running: job, hydra or all")
      ("resolve", po::bool_switch(&o.resolve), "with --cfg: resolve interpolations")
      ("package,p", po::value<std::string>(&o.package), "with --cfg: print only this key's subtree")
      ("info", po::value<std::string>(&o.info), "print information instead of running: defaults")
      ("check", po::bool_switch(&o.check), "check the config (every key, type and range) and exit; writes nothing")
      ("resume", po::value<std::string>(&o.resume_dir), "continue a stopped run in RUN_DIR from its checkpoint")
      ("workers", po::value<int>(&o.workers), "with --resume: continue a training run on this many workers (same results)")
      ("config-dir,d", po::value<std::vector<std::string>>(&o.config_dirs), "extra config search directory (repeatable)")
      ("config-path", po::value<std::string>(&o.config_path), "config directory for --config-name")
      ("config-name", po::value<std::string>(&o.config_name), "primary config name within --config-path")
      ("from-manifest", po::value<std::string>(&o.manifest), "run one job of a Slurm sweep manifest (set by sbatch)")
      ("index", po::value<int>(&o.index), "the job index within --from-manifest");
  po::options_description hidden;
  std::vector<std::string> positional;
  hidden.add_options()("args", po::value<std::vector<std::string>>(&positional));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("args", -1);

  // Hydra's short spellings -cp / -cn / -cd are not single-letter flags; map them first.
  std::vector<std::string> rewritten;
  for (const auto& a : args) {
    if (a == "-cp") rewritten.push_back("--config-path");
    else if (a == "-cn") rewritten.push_back("--config-name");
    else if (a == "-cd") rewritten.push_back("--config-dir");
    else rewritten.push_back(a);
  }
  po::variables_map vm;
  po::store(po::command_line_parser(rewritten).options(all).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << opts << "\nOverrides (Hydra's grammar): key=value  +new.key=value  ++key=value  ~key  group=option\n"
              << "Sweeps (with -m): a=1,2  b=range(0,10,2)  c=choice(x,y)  group=glob(*,exclude=z*)\n";
    return 0;
  }
  for (size_t i = 0; i < positional.size(); ++i) {
    if (i == 0 && !is_override(positional[i])) o.config = positional[i];
    else o.overrides.push_back(positional[i]);
  }
  return xp::cli::run_command(o);
}

// Parses `args` against `opts` plus positional arguments; true when --help was asked (and printed).
bool parse_verb(const std::vector<std::string>& args, const po::options_description& opts,
                std::vector<std::string>& positional) {
  po::options_description all;
  all.add(opts).add_options()("args", po::value<std::vector<std::string>>(&positional));
  po::positional_options_description pos;
  pos.add("args", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) std::cout << opts;
  return vm.count("help") > 0;
}

int simple_verb(const std::string& verb, const std::vector<std::string>& args) {
  po::options_description opts("exp " + verb + (verb == "list" ? "" : verb == "show" ? " RESULTS.h5|RUN_DIR" : " SWEEP_DIR"));
  int rows = 5;
  std::vector<std::string> dirs, positional;
  opts.add_options()("help,h", "describe this verb");
  if (verb == "show") opts.add_options()("rows,n", po::value<int>(&rows)->default_value(5), "table rows to print");
  if (verb == "list") opts.add_options()("config-dir,d", po::value<std::vector<std::string>>(&dirs), "extra config directory");
  if (parse_verb(args, opts, positional)) return 0;
  if (verb == "list") return xp::cli::list_command(dirs);
  if (positional.size() != 1) {
    fmt::print(stderr, "error: exp {} takes exactly one path\n{}", verb, kUsage);
    return 2;
  }
  return verb == "show" ? xp::cli::show_command(positional[0], rows) : xp::cli::collect_command(positional[0]);
}

int serve_verb(const std::vector<std::string>& args) {
  po::options_description opts("exp serve [CONFIG] [OVERRIDES...]  (keys: configs/serve.yaml; SIGTERM/SIGINT drain it)");
  opts.add_options()("help,h", "describe this verb");
  std::vector<std::string> positional;
  if (parse_verb(args, opts, positional)) return 0;
  std::string config_file;
  std::vector<std::string> overrides;
  for (const std::string& a : positional) {
    if (is_override(a)) overrides.push_back(a);
    else if (config_file.empty()) config_file = a;
    else throw po::error("exp serve takes one config file; '" + a + "' is neither it nor key=value");
  }
  try {
    return xp::cli::serve_command(config_file, overrides);
  } catch (const xp::config::ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
}

int compress_verb(const std::string& verb, const std::vector<std::string>& args) {
  xp::cli::CompressOptions o;
  po::options_description opts(verb == "compress" ? "exp compress IN.safetensors|DIR OUT.dqck"
                                                  : "exp decompress IN.dqck OUT.safetensors");
  opts.add_options()("help,h", "describe this verb");
  if (verb == "compress")
    opts.add_options()("bins", po::value<int>(&o.bins)->default_value(16), "non-uniform levels per tensor (K)")
        ("prune", po::value<double>(&o.prune_fraction)->default_value(0.0), "share of smallest weights stored as 0")
        ("protect", po::value<double>(&o.protect_fraction)->default_value(0.005), "share of largest weights kept in bf16");
  std::vector<std::string> positional;
  if (parse_verb(args, opts, positional)) return 0;
  if (positional.size() != 2) {
    fmt::print(stderr, "error: exp {} takes an input and an output path\n{}", verb, kUsage);
    return 2;
  }
  if (o.bins < 1 || o.bins > 1024 || o.prune_fraction < 0 || o.prune_fraction >= 1 || o.protect_fraction < 0 ||
      o.protect_fraction > 1) {
    fmt::print(stderr, "error: --bins must be in [1, 1024], --prune in [0, 1), --protect in [0, 1]\n");
    return 2;
  }
  o.input = positional[0];
  o.output = positional[1];
  return verb == "compress" ? xp::cli::compress_command(o) : xp::cli::decompress_command(o);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << kVersion << "\n";
    return 0;
  }
  std::string verb = args[0];
  args.erase(args.begin());
  try {
    if (verb == "run") return run_or_sweep(args, false);
    if (verb == "sweep") return run_or_sweep(args, true);
    if (verb == "list" || verb == "show" || verb == "collect") return simple_verb(verb, args);
    if (verb == "compress" || verb == "decompress") return compress_verb(verb, args);
    if (verb == "serve") return serve_verb(args);
    fmt::print(stderr, "error: unknown verb '{}'\n{}", verb, kUsage);
    return 2;
  } catch (const po::error& e) {
    fmt::print(stderr, "error: {}\n  hint: exp {} --help\n", e.what(), verb);
    return 2;
  } catch (const std::exception& e) {
    xp::runtime::logger()->error("{}", e.what());
    xp::dist::abort_launch(1);  // one rank of an MPI launch failed: its peers must not wait for it
    return 1;
  }
}
