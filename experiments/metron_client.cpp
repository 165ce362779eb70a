#include "experiments/metron_client.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/config/error.h"
#include "core/runtime/logging.h"
#include "core/runtime/rng.h"
#include "experiments/serving_setup.h"
#include "serving/client/openai_client.h"
#include "serving/metrics/collector.h"
#include "serving/text/tokenizer.h"
#include "serving/workload/workload.h"

namespace xp::experiments {
namespace {

namespace fs = std::filesystem;
using namespace xp::serving;
using config::Range;
using results::ColumnType;
using Clock = std::chrono::steady_clock;

struct ClientConfig {
  std::string endpoint, model, api_key_env = "OPENAI_API_KEY", api = "completions", prompts = "token_ids", tokenizer_dir;
  std::vector<int64_t> token_id_range = {1000, 10000};
  int64_t max_concurrency = 64;
  double request_timeout_s = 60;
  bool ignore_eos = true;
  bool plots = false;
};

struct Planned {
  Request req;
  nlohmann::json prompt;  // text or token ids
  int64_t prompt_tokens;  // as we counted them
};

class MetronClient final : public Experiment {
 public:
  MetronClient(ClientConfig c, WorkloadConfig w, MetricsConfig m) : c_(std::move(c)), w_(std::move(w)), m_(m) {
    ep_ = Endpoint::parse(c_.endpoint);
    ep_.timeout_s = c_.request_timeout_s;
    if (const char* key = std::getenv(c_.api_key_env.c_str())) ep_.api_key = key;  // never logged
    if (c_.prompts == "text") tok_ = Tokenizer::from_dir(c_.tokenizer_dir);
  }

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    std::string error;
    if (c_.model.empty()) c_.model = first_model(ep_, &error);
    if (c_.model.empty()) throw std::runtime_error(fmt::format("{} (is the server up?)", error));
    std::vector<Planned> plan = make_plan(ctx.seed());
    std::vector<StreamedResponse> responses(plan.size());
    std::vector<double> sent_s(plan.size(), 0);
    std::atomic<size_t> next{0};
    const Clock::time_point start = Clock::now();
    auto since_start = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    // Workers take requests in arrival order and send each at its arrival time; with all of them
    // busy a request waits (bounded concurrency), and the wait is reported, not hidden.
    std::vector<std::thread> workers;
    for (int64_t w = 0; w < std::min<int64_t>(c_.max_concurrency, static_cast<int64_t>(plan.size())); ++w)
      workers.emplace_back([&] {
        for (size_t i; (i = next++) < plan.size();) {
          if (ctx.should_stop()) return;
          const double wait = plan[i].req.arrival_s - since_start();
          if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
          sent_s[i] = since_start();
          nlohmann::json body = {{"model", c_.model}, {"max_tokens", plan[i].req.decode_tokens}, {"temperature", 0},
                                 {"ignore_eos", c_.ignore_eos}};
          if (c_.api == "chat") body["messages"] = {{{"role", "user"}, {"content", plan[i].prompt}}};
          else body["prompt"] = plan[i].prompt;
          responses[i] = stream_completion(ep_, body, c_.api == "chat");
        }
      });
    for (auto& t : workers) t.join();
    const double wall = since_start();
    if (ctx.should_stop()) return jobs::RunOutcome::kPreempted;

    ServingMetrics metrics(m_, &ctx, "/serving");
    auto& requests = ctx.table("/metron/requests", {
        {"request_id", ColumnType::kUInt64, "", "request"},
        {"scheduled_s", ColumnType::kFloat64, "s", "arrival time in the workload"},
        {"sent_s", ColumnType::kFloat64, "s", "when it was sent (later than scheduled when every worker was busy)"},
        {"prompt_tokens", ColumnType::kInt64, "tokens", "the server's count (usage), else ours"},
        {"asked_tokens", ColumnType::kInt64, "tokens", "max_tokens"},
        {"received_tokens", ColumnType::kInt64, "tokens", "stream events that carried text"},
        {"ok", ColumnType::kUInt8, "", "1: the stream ended with [DONE]"},
        {"http_status", ColumnType::kInt64, "", "0: no response"},
    });
    int64_t ok = 0, http_errors = 0, broken = 0, events = 0;
    double client_s = 0, queued_s = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
      const StreamedResponse& r = responses[i];
      const Planned& p = plan[i];
      const int64_t prompt_tokens = r.prompt_tokens > 0 ? r.prompt_tokens : p.prompt_tokens;
      requests.append({p.req.id, p.req.arrival_s, sent_s[i], prompt_tokens, p.req.decode_tokens,
                       static_cast<int64_t>(r.token_times.size()), int64_t{r.ok}, int64_t{r.http_status}});
      queued_s = std::max(queued_s, sent_s[i] - p.req.arrival_s);
      client_s += r.client_s;
      events += static_cast<int64_t>(r.token_times.size());
      if (!r.ok) {
        (r.http_status != 0 && r.http_status != 200 ? http_errors : broken)++;
        runtime::logger()->warn("request {}: {}", p.req.id, r.error);
        continue;
      }
      ++ok;
      // Metron's metrics from the client's clock: arrival = when sent, one token per event.
      Request req = p.req;
      req.arrival_s = sent_s[i];
      req.prompt_tokens = prompt_tokens;
      req.decode_tokens = static_cast<int64_t>(r.token_times.size());
      Sequence s(req);
      for (double t : r.token_times) s.emit_token(sent_s[i] + t);
      s.status = SeqStatus::kFinished;
      s.completed_s = s.token_times.empty() ? sent_s[i] : s.token_times.back();
      metrics.on_finished(s, 0);
    }
    summary_ = metrics.summary(0, 1, 0);
    summary_.values.emplace_back("requests_ok", static_cast<double>(ok));
    summary_.values.emplace_back("requests_http_error", static_cast<double>(http_errors));
    summary_.values.emplace_back("requests_broken", static_cast<double>(broken));  // no response, timeout, truncated
    summary_.values.emplace_back("max_client_queue_s", queued_s);
    summary_.values.emplace_back("client_parse_us_per_token", events ? 1e6 * client_s / static_cast<double>(events) : 0);
    summary_.values.emplace_back("wall_s", wall);
    ServingMetrics::write_summary(ctx, summary_, "");
    metrics.write_cdf();
    return jobs::RunOutcome::kDone;
  }

  void report(const jobs::RunContext&) const override {
    std::vector<std::pair<std::string, std::string>> rows;
    for (const auto& [k, v] : summary_.values) rows.emplace_back(k, fmt::format("{:.6g}", v));
    print_rows(rows);
  }
  void after_close(const fs::path& run_dir) const override {
    if (c_.plots) plot_serving_results(run_dir);
  }

 private:
  // The workload's lengths and arrivals, with prompts of exactly that many tokens: token ids, or
  // text that the endpoint's tokenizer (tokenizer_dir) turns into that many.
  std::vector<Planned> make_plan(uint64_t seed) const {
    RequestGenerator gen(w_, seed);
    runtime::RngStream rng(seed, 911);
    const int64_t lo = c_.token_id_range[0], hi = c_.token_id_range[1];
    auto random_ids = [&](int64_t n) {
      std::vector<int32_t> ids;
      for (int64_t k = 0; k < n; ++k) ids.push_back(static_cast<int32_t>(lo + static_cast<int64_t>(rng.below(static_cast<uint64_t>(hi - lo)))));
      return ids;
    };
    std::vector<Planned> out;
    while (auto r = gen.next()) {
      Planned p{*r, {}, r->prompt_tokens};
      std::vector<int32_t> ids = random_ids(r->prompt_tokens);
      if (!tok_) {
        p.prompt = ids;
      } else {
        // Decoding random ids and encoding the text again rarely gives the same count: trim or
        // extend until it does (a few rounds), else keep the nearest and count it.
        std::string text;
        for (int round = 0; round < 16; ++round) {
          text = tok_->decode(ids, true);
          std::vector<int32_t> again = tok_->encode(text, false);
          p.prompt_tokens = static_cast<int64_t>(again.size());
          if (p.prompt_tokens == r->prompt_tokens) break;
          if (p.prompt_tokens > r->prompt_tokens) again.resize(static_cast<size_t>(r->prompt_tokens));
          else for (int32_t id : random_ids(r->prompt_tokens - p.prompt_tokens)) again.push_back(id);
          ids = std::move(again);
        }
        p.prompt = text;
      }
      out.push_back(std::move(p));
    }
    return out;
  }

  ClientConfig c_;
  WorkloadConfig w_;
  MetricsConfig m_;
  Endpoint ep_;
  std::unique_ptr<Tokenizer> tok_;
  ServingSummary summary_;
};

}  // namespace

std::unique_ptr<Experiment> make_metron(const config::ConfigNode& job) {
  auto top = top_level_reader(job);
  ClientConfig c;
  top.get("endpoint", c.endpoint);
  top.get("model", c.model);
  top.get("api_key_env", c.api_key_env);
  top.get_enum("api", c.api, {"completions", "chat"});
  top.get_enum("prompts", c.prompts, {"token_ids", "text"});
  top.get("tokenizer_dir", c.tokenizer_dir);
  top.get("token_id_range", c.token_id_range, Range::between(0, 1 << 30));
  top.get("max_concurrency", c.max_concurrency, Range::between(1, 4096));
  top.get("request_timeout_s", c.request_timeout_s, Range::between(0.1, 86400));
  top.get("ignore_eos", c.ignore_eos);
  top.get("plots", c.plots);
  WorkloadConfig w = WorkloadConfig::from(top.section("workload"), fs::path(EXP_SOURCE_DIR) / "data");
  MetricsConfig m = MetricsConfig::from(top.section("metrics"));
  top.finish();
  if (c.token_id_range.size() != 2 || c.token_id_range[0] >= c.token_id_range[1])
    reject_key(job, "token_id_range", fmt::format("[{}] is not [low, high) with low < high", fmt::join(c.token_id_range, ", ")),
               "e.g. [1000, 10000]: ids every tokenizer of 32k tokens or more has");
  if (c.prompts == "text" && c.tokenizer_dir.empty())
    reject_key(job, "tokenizer_dir", "prompts=text needs the endpoint's tokenizer to count tokens",
               "a folder with the model's tokenizer.json (or tokenizer.model), or prompts=token_ids");
  try {
    return std::make_unique<MetronClient>(std::move(c), std::move(w), m);
  } catch (const std::invalid_argument& e) {
    reject_key(job, "endpoint", e.what(), "the server's OpenAI base URL, e.g. http://127.0.0.1:8000/v1");
  } catch (const std::runtime_error& e) {
    reject_key(job, "tokenizer_dir", e.what(), "a folder with the model's tokenizer.json or tokenizer.model");
  }
}

}  // namespace xp::experiments
