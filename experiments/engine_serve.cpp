#include "experiments/engine_serve.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/config/error.h"
#include "core/runtime/logging.h"
#include "serving/engine/engine.h"
#include "serving/model/llama_cuda.h"
#include "serving/workload/workload.h"

namespace xp::experiments {
namespace {

namespace fs = std::filesystem;
using namespace xp::serving;
using results::ColumnType;

struct PromptSet {
  std::vector<std::pair<Request, std::vector<int32_t>>> requests;
};

// JSONL: one {"prompt": [ids...], "max_tokens": n, "arrival_s": t?} per line.
PromptSet read_prompts(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open the prompts file", file.string()));
  PromptSet out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      auto j = nlohmann::json::parse(line);
      Request r;
      r.id = out.requests.size();
      auto prompt = j.at("prompt").get<std::vector<int32_t>>();
      r.prompt_tokens = static_cast<int64_t>(prompt.size());
      r.decode_tokens = j.at("max_tokens").get<int64_t>();
      r.arrival_s = j.value("arrival_s", 0.0);
      if (prompt.empty() || r.decode_tokens < 1) throw std::runtime_error("needs a non-empty prompt and max_tokens >= 1");
      out.requests.emplace_back(r, std::move(prompt));
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}:{}: {}", file.string(), n, e.what()));
    }
  }
  return out;
}

class EngineServe final : public Experiment {
 public:
  EngineServe(fs::path model_dir, std::string device, SchedulerConfig sched, int64_t kv_blocks, SamplingParams sampling,
              MetricsConfig metrics, PromptSet prompts)
      : model_dir_(std::move(model_dir)), device_(std::move(device)), sched_(sched), kv_blocks_(kv_blocks),
        sampling_(sampling), metrics_(metrics), prompts_(std::move(prompts)) {
    if (device_ == "cuda" && !llama_cuda_available())
      throw config::ConfigError("device=cuda, but no CUDA device is visible", {}, "device", "use device=cpu on this machine");
    model_ = LlamaModel::load(model_dir_);  // errors name the file and tensor, before any output
    for (const auto& [r, p] : prompts_.requests)
      for (int32_t t : p)
        if (t < 0 || t >= model_->config().vocab_size)
          throw config::ConfigError(fmt::format("request {}: token id {} is outside the vocabulary of {}", r.id, t,
                                                model_->config().vocab_size),
                                    {}, "prompts", "check the prompt token ids against the model's tokenizer");
  }

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    ServingMetrics metrics(metrics_, &ctx, "/serving");
    sched_.max_model_len = std::min(sched_.max_model_len, model_->config().max_position_embeddings);
    auto runner = device_ == "cuda" ? cuda_runner(*model_, kv_blocks_, sched_.block_size)
                                    : cpu_runner(*model_, kv_blocks_, sched_.block_size);
    Engine engine(std::move(runner), sched_, kv_blocks_, sampling_, ctx.seed(), &metrics);
    for (auto& [r, p] : prompts_.requests) engine.add(r, p);
    EngineResult r = engine.run([&] { return ctx.should_stop(); });
    if (r.stopped) return jobs::RunOutcome::kPreempted;  // a serving run restarts whole
    auto& out = ctx.table("/engine/outputs", {{"request_id", ColumnType::kUInt64, "", "request"},
                                              {"token_index", ColumnType::kUInt32, "", "0 = first output token"},
                                              {"token", ColumnType::kInt32, "", "generated token id"}});
    for (const auto& [id, toks] : r.outputs)
      for (size_t i = 0; i < toks.size(); ++i) out.append({id, static_cast<int64_t>(i), int64_t{toks[i]}});
    summary_ = metrics.summary(r.preemptions, 1, 0);
    summary_.values.emplace_back("iterations", static_cast<double>(r.iterations));
    summary_.values.emplace_back("wall_s", r.wall_s);
    ServingMetrics::write_summary(ctx, summary_, "");
    metrics.write_cdf();
    return jobs::RunOutcome::kDone;
  }

  void report(const jobs::RunContext&) const override {
    fmt::print("engine ({} on {}, scheduler {}): {} requests in {:.2f} s\n", model_dir_.filename().string(), device_, sched_.type,
               prompts_.requests.size(), summary_.get("wall_s"));
    for (const char* k : {"p50_ttft_s", "p99_ttft_s", "p50_tbt_s", "p99_tbt_s", "throughput_tok_s", "fluidity_index", "preemptions"})
      fmt::print("  {:<20} {:.4g}\n", k, summary_.get(k));
  }

 private:
  fs::path model_dir_;
  std::string device_;
  SchedulerConfig sched_;
  int64_t kv_blocks_;
  SamplingParams sampling_;
  MetricsConfig metrics_;
  PromptSet prompts_;
  std::unique_ptr<LlamaModel> model_;
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
  SchedulerConfig sched = SchedulerConfig::from(top.section("scheduler"));
  int64_t kv_blocks = 1024;
  top.get("kv_blocks", kv_blocks);
  SamplingParams sp;
  auto s = top.section("sampling");
  s.get("temperature", sp.temperature);
  s.get("top_k", sp.top_k);
  s.get("top_p", sp.top_p);
  s.finish();
  MetricsConfig mc = MetricsConfig::from(top.section("metrics"));
  PromptSet prompts;
  auto w = top.section("workload");  // unused (and unchecked) when a prompts file is given
  if (!prompts_file.empty()) {
    try {
      prompts = read_prompts(prompts_file);
    } catch (const std::runtime_error& e) {
      throw config::ConfigError(e.what(), {}, "prompts_file", "one JSON object per line: {\"prompt\": [ids], \"max_tokens\": n}");
    }
  } else {
    // Random token ids with lengths and arrivals from a workload generator (ignore_eos).
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
    return std::make_unique<EngineServe>(model_dir, device, sched, kv_blocks, sp, mc, std::move(prompts));
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
  m.get("hidden_size", c.hidden_size);
  m.get("intermediate_size", c.intermediate_size);
  m.get("num_hidden_layers", c.num_hidden_layers);
  m.get("num_attention_heads", c.num_attention_heads);
  m.get("num_key_value_heads", c.num_key_value_heads);
  m.get("vocab_size", c.vocab_size);
  m.get("max_position_embeddings", c.max_position_embeddings);
  m.get("rope_theta", c.rope_theta);
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
