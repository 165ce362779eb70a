#include "experiments/serving_setup.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/config/error.h"
#include "core/runtime/logging.h"
#include "experiments/experiment.h"
#include "serving/scheduler/policies.h"
#include "serving/sim/global_scheduler.h"

#ifndef EXP_SOURCE_DIR
#define EXP_SOURCE_DIR "."
#endif

namespace xp::experiments {

using namespace xp::serving;
namespace fs = std::filesystem;

void check_tensor_parallel(const ModelSpec& m, int64_t tp, const config::ConfigReader& r, const std::string& key) {
  // Heads are split among the ranks: query heads evenly, KV heads evenly or replicated (fewer
  // KV heads than ranks, as GQA models at high TP are served).
  const bool kv_ok = m.num_kv_heads % tp == 0 || tp % m.num_kv_heads == 0;
  if (m.num_q_heads % tp == 0 && kv_ok) return;
  std::vector<int64_t> fit;
  for (int64_t t = 1; t <= m.num_q_heads; ++t)
    if (m.num_q_heads % t == 0 && (m.num_kv_heads % t == 0 || t % m.num_kv_heads == 0)) fit.push_back(t);
  const config::ConfigNode* n = r.raw(key);
  throw config::ConfigError(
      m.num_q_heads % tp ? fmt::format("{}'s {} attention heads do not divide among {} tensor-parallel ranks", m.name, m.num_q_heads, tp)
                         : fmt::format("{}'s {} KV heads neither divide among nor evenly replicate over {} ranks", m.name, m.num_kv_heads, tp),
      n ? n->loc() : config::SourceLoc{}, config::join_path(r.path(), key), fmt::format("choose one of: {}", fmt::join(fit, ", ")));
}

void set_layout(SchedulerConfig& s, const ReplicaLayout& l, const config::ConfigReader& deployment,
                const std::string& scheduler_key) {
  auto loc = [&](const char* key) { return deployment.raw(key) ? deployment.raw(key)->loc() : config::SourceLoc{}; };
  if (l.sequence_pipeline_parallel && l.pipeline_parallel < 2)
    throw config::ConfigError("sequence_pipeline_parallel pipelines a prompt's chunks across stages, but there is one stage",
                              loc("sequence_pipeline_parallel"), "deployment.sequence_pipeline_parallel",
                              "set deployment.pipeline_parallel to 2 or more");
  s.pipeline_stages = l.pipeline_parallel;
  s.sequence_pipeline_parallel = l.sequence_pipeline_parallel;
  const int64_t tokens_per_group = l.max_tokens_per_kvp_group;
  s.kv_parallel = l.kv_parallel;
  s.max_tokens_per_kvp_group = tokens_per_group;
  if (l.kv_parallel == 1) return;
  if (const SchedulerPolicy* p = find_scheduler_policy(s.type); !p || !p->kv_parallel)
    throw config::ConfigError(fmt::format("KV parallelism needs prompts chunked at group boundaries, which the {} "
                                          "scheduler does not do", s.type),
                              loc("kv_parallel"), scheduler_key + ".type",
                              "use scheduler=sarathi_serve (Mnemosyne's batching), or deployment.kv_parallel=1");
  if (tokens_per_group % s.block_size != 0)
    throw config::ConfigError(fmt::format("{} tokens per KV-parallel group is not a whole number of {}-token blocks",
                                          tokens_per_group, s.block_size),
                              loc("max_num_tokens_per_kvp_group"), "deployment.max_num_tokens_per_kvp_group",
                              fmt::format("use a multiple of {}", s.block_size));
}

ReplicaLayout EngineDeployment::replica_layout() const {
  ReplicaLayout l;
  l.tensor_parallel = tensor_parallel;
  l.pipeline_parallel = pipeline_parallel;
  l.sequence_pipeline_parallel = sequence_pipeline_parallel;
  l.kv_parallel = kv_parallel;
  l.max_tokens_per_kvp_group = max_num_tokens_per_kvp_group;
  return l;
}

EngineDeployment EngineDeployment::read(config::ConfigReader d, SchedulerConfig& sched, const std::string& scheduler_key) {
  EngineDeployment dep;
  d.get("tensor_parallel", dep.tensor_parallel, Range::between(1, 1024));
  d.get("pipeline_parallel", dep.pipeline_parallel, Range::between(1, 1024));
  d.get("sequence_pipeline_parallel", dep.sequence_pipeline_parallel);
  d.get("kv_parallel", dep.kv_parallel, Range::between(1, 1024));
  d.get("max_num_tokens_per_kvp_group", dep.max_num_tokens_per_kvp_group, Range::between(1, int64_t{1} << 40));
  set_layout(sched, dep.replica_layout(), d, scheduler_key);
  d.get("collective_timeout_s", dep.collective_timeout_s, Range::between(0.01, 86400));
  d.finish();
  return dep;
}

void EngineDeployment::check(const LlamaConfig& c, const fs::path& config_json) const {
  if (c.num_hidden_layers % pipeline_parallel)
    throw config::ConfigError(fmt::format("{}: {} layers do not split into {} pipeline stages", config_json.string(),
                                          c.num_hidden_layers, pipeline_parallel),
                              {}, "deployment.pipeline_parallel", "choose a number of stages that divides the layers");
  if (tensor_parallel == 1) return;
  try {
    TensorShard::of(c, 0, static_cast<int>(tensor_parallel));
  } catch (const std::invalid_argument& e) {
    throw config::ConfigError(fmt::format("{}: {}", config_json.string(), e.what()), {}, "deployment.tensor_parallel",
                              "choose a degree that divides the heads and the MLP");
  }
}

int threads_per_rank(int ranks) {
  if (std::getenv("OMP_NUM_THREADS")) return omp_get_max_threads();
  return std::max(1, omp_get_num_procs() / ranks);
}

ServingSetup ServingSetup::parse(const config::ConfigReader& top) {
  ServingSetup c;
  std::string data_dir;
  top.get("data_dir", data_dir);
  c.data_dir = data_dir.empty() ? fs::path(EXP_SOURCE_DIR) / "data" : fs::path(data_dir);
  c.model = ModelSpec::from(top.section("model"));
  c.device = DeviceSpec::from(top.section("hardware"));
  auto d = top.section("deployment");
  d.get("num_replicas", c.cluster.num_replicas, Range::at_least(1));
  d.get_enum("global_scheduler", c.cluster.global_scheduler, global_scheduler_names());
  d.get("time_limit_s", c.cluster.time_limit_s, Range::non_negative());
  d.get("tensor_parallel", c.layout.tensor_parallel, Range::at_least(1));
  d.get("pipeline_parallel", c.layout.pipeline_parallel, Range::at_least(1));
  d.get("sequence_pipeline_parallel", c.layout.sequence_pipeline_parallel);
  d.get("kv_parallel", c.layout.kv_parallel, Range::between(1, 1024));
  d.get("max_num_tokens_per_kvp_group", c.layout.max_tokens_per_kvp_group, Range::between(1, int64_t{1} << 40));
  d.get("memory_margin_fraction", c.layout.memory_margin_fraction, Range::fraction().open_above());
  d.finish();
  check_tensor_parallel(c.model, c.layout.tensor_parallel, d, "tensor_parallel");
  auto fill = [&](SchedulerConfig s, const std::string& where) {
    s.max_model_len = c.model.max_model_len;
    set_layout(s, c.layout, d, where);
    return s;
  };
  if (top.has("schedulers")) {
    const config::ConfigNode* all = top.raw("schedulers");
    if (!all->is_map() || all->items().empty())
      throw config::ConfigError("`schedulers` must map names to scheduler settings", all->loc(), "schedulers",
                                "e.g. schedulers: {vllm: {type: vllm}, sarathi_serve: {type: sarathi_serve}}");
    for (const auto& [name, node] : all->items())
      c.variants.push_back({name, fill(SchedulerConfig::from(config::ConfigReader(node, "schedulers." + name)), "schedulers." + name)});
    if (top.has("scheduler")) top.raw("scheduler");  // composed defaults may leave one; `schedulers` wins
  } else {
    SchedulerConfig s = fill(SchedulerConfig::from(top.section("scheduler")), "scheduler");
    c.variants.push_back({s.type, s});
  }
  c.workload = WorkloadConfig::from(top.section("workload"), c.data_dir);
  c.metrics = MetricsConfig::from(top.section("metrics"));
  try {
    c.predictor = std::make_shared<ExecutionPredictor>(c.model, c.device, c.layout, c.data_dir);
    RequestGenerator probe(c.workload, 0);  // reads and checks the trace
  } catch (const std::runtime_error& e) {
    throw config::ConfigError(e.what(), {}, "model/hardware/workload",
                              "check the profile and trace files under data_dir, and the TP/PP degrees");
  }
  return c;
}

int64_t ServingSetup::kv_blocks(std::string* why) const {
  return plan_kv_blocks(model, device, layout, variants.front().scheduler.block_size, why);
}

double ServingSetup::lone_prefill_s(int64_t tokens) const {
  BatchShape b;
  b.prefills = {{tokens, 0}};
  double t = 0;
  for (int64_t s = 0; s < layout.pipeline_parallel; ++s) t += predictor->stage_time_s(b, s);
  return t;
}

SimulationOutput simulate(const ServingSetup& setup, const SchedulerVariant& variant, const WorkloadConfig& workload,
                          const MetricsConfig& metrics_cfg, jobs::RunContext* ctx, const std::string& group,
                          int64_t kv_blocks, uint64_t seed) {
  ServingMetrics metrics(metrics_cfg, ctx, group);
  if (metrics_cfg.ttft_slack_s > 0) metrics.set_ttft_deadline([&setup, &metrics_cfg](int64_t p) {
      return setup.lone_prefill_s(p) + metrics_cfg.ttft_slack_s;
    });
  RequestGenerator gen(workload, seed);
  std::shared_ptr<const IterationTimeModel> time_model;
  if (variant.scheduler.latency_target.enabled)  // latency target: a linear model fitted to this deployment's predictor
    time_model = std::make_shared<LinearIterationModel>(
        LinearIterationModel::fit(*setup.predictor, setup.layout.pipeline_parallel, setup.model.max_model_len));
  else if (variant.scheduler.adaptive.enabled)  // adaptive chunks: the predictor itself, as the reference asks it
    time_model = std::make_shared<StageTimerModel>(setup.predictor, setup.layout.pipeline_parallel);
  Simulator sim(setup.cluster, variant.scheduler, *setup.predictor, kv_blocks, setup.layout.num_gpus(), gen, metrics,
                seed, time_model);
  SimulationOutput out;
  auto t0 = std::chrono::steady_clock::now();
  out.result = sim.run([ctx] { return ctx && ctx->should_stop(); });
  out.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.summary = metrics.summary(out.result.preemptions, setup.total_gpus(), setup.predictor->peak_flops());
  metrics.write_cdf();
  out.summary.values.emplace_back("iterations", static_cast<double>(out.result.iterations));
  return out;
}

void plot_serving_results(const fs::path& run_dir) {
  std::fflush(stdout);  // our table first, then the script's output
  std::string cmd = fmt::format("MPLBACKEND=Agg /usr/bin/python3 {}/scripts/plot_serving.py {}", EXP_SOURCE_DIR,
                                run_dir.string());
  if (std::system(cmd.c_str()) != 0) runtime::logger()->warn("plotting failed: {}", cmd);
}

}  // namespace xp::experiments
