// `exp serve [CONFIG] [key=value ...]`: composes configs/serve.yaml (or CONFIG) with the
// overrides and serves the model until SIGTERM or SIGINT, which drain it gracefully.
#include <fmt/format.h>
#include <pthread.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <thread>

#include "core/config/compose.h"
#include "core/config/error.h"
#include "core/config/reader.h"
#include "core/config/resolve.h"
#include "core/runtime/logging.h"
#include "experiments/cli/commands.h"
#include "experiments/experiment.h"
#include "serving/server/openai_server.h"

namespace xp::cli {

namespace fs = std::filesystem;
using config::Range;

namespace {

serving::ServerOptions read_options(const config::ConfigNode& job) {
  serving::ServerOptions o;
  auto top = experiments::top_level_reader(job);
  std::string model_dir;
  top.get("model_dir", model_dir);
  o.model_dir = model_dir;
  top.get("model_name", o.model_name);
  top.get("host", o.host);
  top.get("port", o.port, Range::between(0, 65535));
  top.get_enum("device", o.device, {"cpu", "cuda"});
  top.get("kv_blocks", o.kv_blocks, Range::at_least(1));
  top.get("seed", o.seed, Range::at_least(0));
  top.get("max_connections", o.max_connections, Range::between(1, 4096));
  top.get("shutdown_grace_s", o.shutdown_grace_s, Range::between(0, 86400));
  top.get("default_max_tokens", o.default_max_tokens, Range::at_least(1));
  o.scheduler = serving::SchedulerConfig::from(top.section("scheduler"));
  top.finish();
  return o;
}

}  // namespace

int serve_command(const std::string& config_file, const std::vector<std::string>& overrides) {
  config::ComposeRequest req;
  req.primary = config_file.empty() ? config::builtin_config_dir() / "serve.yaml" : fs::path(config_file);
  if (!fs::is_regular_file(req.primary))
    throw config::ConfigError("config file not found", {req.primary.string()}, {}, "exp serve takes a YAML file like configs/serve.yaml");
  req.search_path = config::search_path_for(req.primary);
  req.overrides = overrides;
  config::ComposedConfig composed = config::compose(req);
  config::ConfigNode job = config::resolve(composed.job());
  serving::ServerOptions opt = read_options(job);

  // SIGTERM/SIGINT go to one thread, which drains the server; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  serving::OpenAiServer server(opt);
  fmt::print("exp serve: {} on http://{}:{}/v1 (model \"{}\")\n", opt.model_dir.string(), opt.host, server.port(),
             server.model_name());
  std::fflush(stdout);
  std::atomic<bool> finished{false};
  std::thread waiter([&] {
    const timespec tick{0, 200'000'000};
    while (!finished) {
      const int sig = sigtimedwait(&signals, nullptr, &tick);
      if (sig > 0) {
        runtime::logger()->info("exp serve: {}: finishing in-flight requests, then stopping", strsignal(sig));
        server.stop();
        return;
      }
    }
  });
  try {
    server.run();
  } catch (...) {
    finished = true;
    waiter.join();
    throw;
  }
  finished = true;
  waiter.join();
  fmt::print("exp serve: stopped\n");
  return 0;
}

}  // namespace xp::cli
