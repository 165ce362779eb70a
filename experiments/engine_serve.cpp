#include "experiments/engine_serve.h"

#include <fmt/format.h>

#include <climits>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "core/config/error.h"
#include "core/dist/launch.h"
#include "core/dist/thread_group.h"
#include "core/runtime/logging.h"
#include "experiments/serving_setup.h"
#include "serving/engine/engine.h"
#include "serving/model/llama_cuda.h"
#include "serving/model/safetensors.h"
#include "serving/workload/workload.h"

namespace xp::experiments {
namespace {

namespace fs = std::filesystem;
using namespace xp::serving;
using results::ColumnType;

struct PromptSet {
  std::vector<std::pair<Request, std::vector<int32_t>>> requests;
  fs::path file;                         // empty: generated from the workload
  std::map<uint64_t, int64_t> line_of;   // request id -> its line in `file`
  // Where request `id` came from, for messages: "FILE:LINE" or "workload".
  std::string origin(uint64_t id) const {
    return file.empty() ? "workload" : fmt::format("{}:{}", file.string(), line_of.at(id));
  }
};

// The latest arrival a prompts file may ask for: the engine waits for arrivals in real time, so a
// typo such as 1e300 would make a run that never ends. 10^6 s is 11.6 days.
constexpr double kMaxArrivalS = 1e6;

// JSONL: one {"prompt": [ids...], "max_tokens": n, "arrival_s": t?} per line. A line that is not
// such an object, or has any other key, is an error naming the file and line; whether the model can serve a request
// (its ids inside the vocabulary, its tokens inside the context) is the engine's call, per request.
PromptSet read_prompts(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open the prompts file", file.string()));
  PromptSet out;
  out.file = file;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto bad = [&](const std::string& why) { throw std::runtime_error(fmt::format("{}:{}: {}", file.string(), n, why)); };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      bad(e.what());
    }
    if (!j.is_object() || !j.contains("prompt") || !j.contains("max_tokens")) bad("needs \"prompt\" and \"max_tokens\"");
    for (const auto& [key, value] : j.items())
      if (key != "prompt" && key != "max_tokens" && key != "arrival_s")
        bad(fmt::format("unknown key \"{}\" (a line has \"prompt\", \"max_tokens\" and optionally \"arrival_s\")", key));
    // Integers that fit: the JSON library would silently wrap 2^32 + 1 to the token id 1.
    auto integer_in = [](const nlohmann::json& v, int64_t lo, int64_t hi) {
      return v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi)
                                    : v.is_number_integer() && v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
    };
    if (!j["prompt"].is_array()) bad(fmt::format("\"prompt\": {} is not a list of token ids", j["prompt"].dump()));
    std::vector<int32_t> prompt;
    for (const nlohmann::json& t : j["prompt"]) {
      if (!integer_in(t, INT32_MIN, INT32_MAX)) bad(fmt::format("\"prompt\": {} is not a token id", t.dump()));
      prompt.push_back(t.get<int32_t>());
    }
    if (!integer_in(j["max_tokens"], INT64_MIN, INT64_MAX))
      bad(fmt::format("\"max_tokens\": {} is not an integer", j["max_tokens"].dump()));
    Request r;
    r.id = out.requests.size();
    r.prompt_tokens = static_cast<int64_t>(prompt.size());
    r.decode_tokens = j["max_tokens"].get<int64_t>();
    if (j.contains("arrival_s")) {
      const nlohmann::json& a = j["arrival_s"];
      if (!a.is_number() || !(a.get<double>() >= 0 && a.get<double>() <= kMaxArrivalS))
        bad(fmt::format("\"arrival_s\": {} is not a time in seconds in [0, {:g}]", a.dump(), kMaxArrivalS));
      r.arrival_s = a.get<double>();
    }
    out.line_of[r.id] = n;
    out.requests.emplace_back(r, std::move(prompt));
  }
  return out;
}

class EngineServe final : public Experiment {
 public:
  EngineServe(fs::path model_dir, std::string device, SchedulerConfig sched, int64_t kv_blocks, SamplingParams sampling,
              MetricsConfig metrics, PromptSet prompts, EngineDeployment dep, std::set<int32_t> stop_ids)
      : model_dir_(std::move(model_dir)), device_(std::move(device)), sched_(sched), kv_blocks_(kv_blocks),
        sampling_(sampling), metrics_(metrics), prompts_(std::move(prompts)), dep_(dep), stop_ids_(std::move(stop_ids)) {
    if (device_ == "cuda" && !llama_cuda_available())
      throw config::ConfigError("device=cuda, but no CUDA device is visible", {}, "device", "use device=cpu on this machine");
    const dist::LaunchInfo launch = dist::detect_launch();
    if (launch.size > 1 && launch.size != dep_.ranks())
      throw config::ConfigError(fmt::format("{} started {} ranks, but deployment.tensor_parallel × kv_parallel × "
                                            "pipeline_parallel is {}", launch.launcher, launch.size, dep_.ranks()),
                                {}, "deployment.tensor_parallel",
                                fmt::format("set deployment.tensor_parallel × kv_parallel × pipeline_parallel = {}", launch.size));
    config_ = LlamaConfig::from_json_file(model_dir_ / "config.json");
    if (dep_.ranks() > 1 && device_ == "cuda")
      throw config::ConfigError("the CUDA engine runs on one GPU (its model parallelism over NCCL is not built yet)", {},
                                "deployment.tensor_parallel", "use device=cpu, or one rank (TP, KVP and PP 1)");
    dep_.check(config_, model_dir_ / "config.json");
    // Errors name the file and tensor, before any output. Ranks of a launch read their shard now;
    // threads read theirs when the run starts.
    if (launch.size > 1) {
      omp_set_num_threads(threads_per_rank(launch.local_size));
      dist::ProcessGroup* world = dist::launched_world();
      // The launch's ranks under the run's collective timeout (the launched world keeps its
      // start-up one): a silent rank is named after collective_timeout_s.
      world_ = world->split(0, "engine", dist::Seconds(dep_.collective_timeout_s));
      groups_ = split(*world_);
      model_ = load_part(world_->rank(), groups_);
      world->barrier();  // under the world's start-up timeout: ranks load at their own pace
    } else if (dep_.ranks() == 1) {
      model_ = LlamaModel::load(model_dir_);
    } else {
      SafetensorsCheckpoint::open(model_dir_);
    }
    // Requests the model cannot serve are left out and reported while the others are served;
    // when that leaves nothing, the input is wrong as a whole and nothing runs.
    std::string first_why;
    for (const auto& [r, p] : prompts_.requests) {
      std::string why = unservable(r, p, config_);
      if (why.empty()) return;
      if (first_why.empty()) first_why = fmt::format("{}: request {}: {}", prompts_.origin(r.id), r.id, why);
    }
    throw config::ConfigError(
        first_why.empty() ? "no request to serve" : fmt::format("no request can be served; the first: {}", first_why), {},
        prompts_.file.empty() ? "workload" : "prompts_file",
        "check the prompt token ids against the model's tokenizer and lengths against its context");
  }

  bool runs_across_processes() const override { return true; }
  void run_worker() override {
    serve_model_parallel_worker(*model_, *world_, kv_blocks_, sched_.block_size, dep_.layout(), groups_.stage.get());
  }

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    if (world_)
      return serve(ctx, model_parallel_runner(*model_, *world_, kv_blocks_, sched_.block_size, dep_.layout(),
                                               groups_.stage.get()));
    if (dep_.ranks() == 1)
      return serve(ctx, device_ == "cuda" ? cuda_runner(*model_, kv_blocks_, sched_.block_size)
                                          : cpu_runner(*model_, kv_blocks_, sched_.block_size));
    // Ranks as threads of this process: rank 0 (this thread) serves, the others work.
    jobs::RunOutcome outcome = jobs::RunOutcome::kDone;
    run_ranks_in_threads(model_dir_, dep_.layout(), kv_blocks_, sched_.block_size, dist::Seconds(dep_.collective_timeout_s),
                         threads_per_rank(dep_.ranks()),
                         [&](std::unique_ptr<ModelRunner> runner) { outcome = serve(ctx, std::move(runner)); });
    return outcome;
  }

  void report(const jobs::RunContext&) const override {
    fmt::print("engine ({} on {}{}, scheduler {}): {} requests in {:.2f} s\n", model_dir_.filename().string(), device_,
               (dep_.tensor_parallel > 1 ? fmt::format(" × {} (tensor parallel)", dep_.tensor_parallel) : "") +
                   (dep_.kv_parallel > 1 ? fmt::format(" × {} (KV parallel)", dep_.kv_parallel) : "") +
                   (dep_.pipeline_parallel > 1 ? fmt::format(" × {} ({}pipeline stages)", dep_.pipeline_parallel,
                                                             dep_.sequence_pipeline_parallel ? "sequence-" : "")
                                               : ""),
               sched_.type,
               prompts_.requests.size(), summary_.get("wall_s"));
    for (const char* k :
         {"p50_ttft_s", "p99_ttft_s", "p50_tbt_s", "p99_tbt_s", "throughput_tok_s", "fluidity_index", "preemptions", "rejected"})
      fmt::print("  {:<20} {:.4g}\n", k, summary_.get(k));
  }

 private:
  jobs::RunOutcome serve(jobs::RunContext& ctx, std::unique_ptr<ModelRunner> runner) {
    ServingMetrics metrics(metrics_, &ctx, "/serving");
    sched_.max_model_len = std::min(sched_.max_model_len, config_.max_position_embeddings);
    // The engine (and with it the runner, whose end stops any workers) goes before the results
    // are written, so no worker waits on a controller busy writing.
    auto engine = std::make_unique<Engine>(std::move(runner), sched_, kv_blocks_, sampling_, ctx.seed(), &metrics);
    engine->stop_at(stop_ids_);
    auto& rejected = ctx.table("/engine/rejected", {{"request_id", ColumnType::kUInt64, "", "request not served (why: the log)"},
                                                    {"line", ColumnType::kInt64, "", "its line in prompts_file (0: workload)"}});
    for (auto& [r, p] : prompts_.requests)
      if (std::string why = engine->add(r, p); !why.empty()) {
        runtime::logger()->error("{}: request {}: {}; not served (the other requests are)", prompts_.origin(r.id), r.id, why);
        rejected.append({r.id, prompts_.file.empty() ? int64_t{0} : prompts_.line_of.at(r.id)});
      }
    EngineResult r = engine->run([&] { return ctx.should_stop(); });
    engine.reset();
    if (r.stopped) return jobs::RunOutcome::kPreempted;  // a serving run restarts whole
    auto& out = ctx.table("/engine/outputs", {{"request_id", ColumnType::kUInt64, "", "request"},
                                              {"token_index", ColumnType::kUInt32, "", "0 = first output token"},
                                              {"token", ColumnType::kInt32, "", "generated token id"}});
    for (const auto& [id, toks] : r.outputs)
      for (size_t i = 0; i < toks.size(); ++i) out.append({id, static_cast<int64_t>(i), int64_t{toks[i]}});
    summary_ = metrics.summary(r.preemptions, 1, 0);
    summary_.values.emplace_back("iterations", static_cast<double>(r.iterations));
    summary_.values.emplace_back("wall_s", r.wall_s);
    summary_.values.emplace_back("rejected", static_cast<double>(r.rejected.size()));
    summary_.values.emplace_back("tensor_parallel", static_cast<double>(dep_.tensor_parallel));
    summary_.values.emplace_back("kv_parallel", static_cast<double>(dep_.kv_parallel));
    summary_.values.emplace_back("pipeline_parallel", static_cast<double>(dep_.pipeline_parallel));
    ServingMetrics::write_summary(ctx, summary_, "");
    metrics.write_cdf();
    return jobs::RunOutcome::kDone;
  }

  fs::path model_dir_;
  std::string device_;
  SchedulerConfig sched_;
  int64_t kv_blocks_;
  SamplingParams sampling_;
  MetricsConfig metrics_;
  PromptSet prompts_;
  EngineDeployment dep_;
  std::set<int32_t> stop_ids_;  // empty: ignore_eos, every request runs to its max_tokens
  LlamaConfig config_;
  RankGroups split(dist::ProcessGroup& world) const {
    return split_ranks(world, dep_.layout(), dist::Seconds(dep_.collective_timeout_s));
  }
  std::unique_ptr<LlamaModel> load_part(int rank, const RankGroups& g) const {
    return load_rank_part(model_dir_, rank, dep_.layout(), g);
  }
  std::unique_ptr<dist::ProcessGroup> world_;  // the ranks of an mpirun/srun launch
  RankGroups groups_;                           // and this rank's groups among them
  std::unique_ptr<LlamaModel> model_;             // this process's model or shard (none when threads hold shards)
  ServingSummary summary_;
};

class MakeModel final : public Experiment {
 public:
  MakeModel(LlamaConfig c, fs::path out, tensor::DType dtype) : cfg_(c), out_(std::move(out)), dtype_(dtype) {}
  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    fs::path dir = out_.empty() ? ctx.output_dir() / "model" : out_;
    write_random_llama(dir, cfg_, ctx.seed(), dtype_);
    ctx.set_summary("model_dir", dir.string());
    int64_t params = cfg_.vocab_size * cfg_.hidden_size * (cfg_.tie_word_embeddings ? 1 : 2) +
                     cfg_.num_hidden_layers * (2 * cfg_.hidden_size * cfg_.hidden_size +
                                               2 * cfg_.hidden_size * cfg_.num_key_value_heads * cfg_.head_dim() +
                                               3 * cfg_.hidden_size * cfg_.intermediate_size);
    ctx.set_summary("parameters", params);
    return jobs::RunOutcome::kDone;
  }

 private:
  LlamaConfig cfg_;
  fs::path out_;
  tensor::DType dtype_;
};

}  // namespace

std::unique_ptr<Experiment> make_engine_serve(const config::ConfigNode& job) {
  auto top = top_level_reader(job);
  std::string model_dir, prompts_file, device = "cpu";
  top.get("model_dir", model_dir);
  top.get_enum("device", device, {"cpu", "cuda"});
  top.get("prompts_file", prompts_file);
  bool ignore_eos = true;
  top.get("ignore_eos", ignore_eos);
  SchedulerConfig sched = SchedulerConfig::from(top.section("scheduler"));
  int64_t kv_blocks = 1024;
  top.get("kv_blocks", kv_blocks, Range::at_least(1));
  SamplingParams sp;
  auto s = top.section("sampling");
  s.get("temperature", sp.temperature, Range::non_negative());
  s.get("top_k", sp.top_k, Range::non_negative());
  s.get("top_p", sp.top_p, Range::between(0, 1).open_below());
  s.finish();
  MetricsConfig mc = MetricsConfig::from(top.section("metrics"));
  EngineDeployment dep = EngineDeployment::read(top.section("deployment"), sched, "scheduler");
  PromptSet prompts;
  auto w = top.section("workload");  // unused (and unchecked) when a prompts file is given
  if (!prompts_file.empty()) {
    try {
      prompts = read_prompts(prompts_file);
    } catch (const std::runtime_error& e) {
      throw config::ConfigError(e.what(), {}, "prompts_file", "one JSON object per line: {\"prompt\": [ids], \"max_tokens\": n}");
    }
  } else {
    // Random token ids with lengths and arrivals from a workload generator.
    WorkloadConfig wc = WorkloadConfig::from(w, fs::path(EXP_SOURCE_DIR) / "data");
    RequestGenerator gen(wc, 0);
    runtime::RngStream rng(1, 301);
    int64_t vocab = 0;
    try {
      vocab = LlamaConfig::from_json_file(fs::path(model_dir) / "config.json").vocab_size;
    } catch (const std::runtime_error& e) {
      throw config::ConfigError(e.what(), {}, "model_dir", "make one with: exp run configs/experiment/make_model.yaml");
    }
    while (auto r = gen.next()) {
      std::vector<int32_t> p;
      for (int64_t i = 0; i < r->prompt_tokens; ++i) p.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab))));
      prompts.requests.emplace_back(*r, std::move(p));
    }
  }
  top.finish();
  try {
    std::set<int32_t> stop_ids;
    if (!ignore_eos && (stop_ids = eos_token_ids(model_dir)).empty())
      reject_key(job, "ignore_eos", fmt::format("{} names no eos_token_id (generation_config.json, config.json)", model_dir),
                 "set ignore_eos=true, or add \"eos_token_id\" to the checkpoint's generation_config.json");
    return std::make_unique<EngineServe>(model_dir, device, sched, kv_blocks, sp, mc, std::move(prompts), dep, std::move(stop_ids));
  } catch (const config::ConfigError&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw config::ConfigError(e.what(), {}, "model_dir", "make one with: exp run configs/experiment/make_model.yaml");
  }
}

std::unique_ptr<Experiment> make_make_model(const config::ConfigNode& job) {
  auto top = top_level_reader(job);
  LlamaConfig c;
  auto m = top.section("model");
  m.get("hidden_size", c.hidden_size, Range::at_least(1));
  m.get("intermediate_size", c.intermediate_size, Range::at_least(1));
  m.get("num_hidden_layers", c.num_hidden_layers, Range::at_least(1));
  m.get("num_attention_heads", c.num_attention_heads, Range::at_least(1));
  m.get("num_key_value_heads", c.num_key_value_heads, Range::at_least(1));
  m.get("vocab_size", c.vocab_size, Range::at_least(1));
  m.get("max_position_embeddings", c.max_position_embeddings, Range::at_least(1));
  m.get("rope_theta", c.rope_theta, Range::positive());
  m.get("tie_word_embeddings", c.tie_word_embeddings);
  m.finish();
  if (c.hidden_size % c.num_attention_heads || c.num_attention_heads % c.num_key_value_heads)
    throw config::ConfigError("hidden_size must divide by num_attention_heads, and those by num_key_value_heads", {},
                              "model", "e.g. hidden 768, 12 heads, 12 (or 4) KV heads");
  std::string dtype = "float32", out;
  top.get_enum("dtype", dtype, {"float32", "float16", "bfloat16"});
  top.get("output_dir", out);
  top.finish();
  tensor::DType t = dtype == "float32" ? tensor::DType::kF32 : dtype == "float16" ? tensor::DType::kF16 : tensor::DType::kBF16;
  return std::make_unique<MakeModel>(c, out, t);
}

}  // namespace xp::experiments
