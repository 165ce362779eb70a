#include "experiments/metron_client.h"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <optional>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "core/config/error.h"
#include "core/runtime/logging.h"
#include "core/runtime/rng.h"
#include "experiments/serving_setup.h"
#include "experiments/slo.h"
#include "core/stats/quantile_sketch.h"
#include "serving/client/openai_client.h"
#include "serving/metrics/collector.h"
#include "serving/metrics/metron.h"
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
  // prompts=file: given prompts (text or ids) and their max_tokens, one JSON object a line.
  std::vector<std::pair<nlohmann::json, int64_t>> given;
  std::vector<int64_t> token_id_range = {1000, 10000};
  int64_t max_concurrency = 64;
  double request_timeout_s = 60;
  bool ignore_eos = true;
  bool plots = false;
  // Metron's prefill profiler: lone requests of 2^min_log2 .. 2^max_log2 prompt tokens, TTFT fitted
  // by a quadratic in P; D_p(P) = fit(P) + slack_s for the deadline metrics.
  bool prefill_profile = false;
  int64_t profile_min_log2 = 8, profile_max_log2 = 14, profile_repetitions = 3;
  double profile_slack_s = 0.3;
  bool capacity = false;
  CapacityPlan plan;
};


// What one pass of the workload measured.
struct Measured {
  ServingSummary summary;
  std::vector<std::vector<double>> itts;  // inter-token times of each request served in full
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
    if (!c_.tokenizer_dir.empty()) tok_ = Tokenizer::from_dir(c_.tokenizer_dir);
  }

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    std::string error;
    if (c_.model.empty()) c_.model = first_model(ep_, &error);
    if (c_.model.empty()) throw std::runtime_error(fmt::format("{} (is the server up?)", error));
    MetricsConfig metrics_cfg = m_;
    if (c_.prefill_profile) {
      deadline_ = profile_prefill(ctx, ctx.seed());
      metrics_cfg.ttft_slack_s = c_.profile_slack_s;
    }
    WorkloadConfig w = w_;
    std::vector<std::pair<std::string, double>> extra;
    if (c_.capacity) {
      auto& probes = ctx.table("/capacity/probes", {{"qps", ColumnType::kFloat64, "1/s", "probed arrival rate"},
                                                    {"passed", ColumnType::kUInt8, "", "1: the SLO held"},
                                                    {"p99_ttft_s", ColumnType::kFloat64, "s", ""},
                                                    {"p99_tbt_s", ColumnType::kFloat64, "s", ""},
                                                    {"requests_failed", ColumnType::kInt64, "", "errors and broken streams"}});
      CapacityResult cap = c_.plan.run([&](double qps) {
        w.qps = qps;
        std::optional<Measured> m = measure(ctx, w, c_.plan.slo.probe_metrics(metrics_cfg), false);
        if (!m) return ProbeResult{};
        const double failed = m->summary.get("requests_http_error") + m->summary.get("requests_broken");
        const bool passed = failed == 0 && c_.plan.slo.passes(m->summary);
        probes.append({qps, int64_t{passed}, m->summary.get("p99_ttft_s"), m->summary.get("p99_tbt_s"), static_cast<int64_t>(failed)});
        runtime::logger()->info("capacity probe {:.2f} QPS: {} ({})", qps, passed ? "meets" : "misses", c_.plan.slo.describe());
        return ProbeResult{passed, 0};
      });
      if (ctx.should_stop()) return jobs::RunOutcome::kPreempted;
      if (!cap.best_qps) throw std::runtime_error(fmt::format("no probed QPS met the SLO ({})", c_.plan.slo.describe()));
      w.qps = *cap.best_qps;
      extra.emplace_back("capacity_qps", *cap.best_qps);
      extra.emplace_back("capacity_probes", static_cast<double>(cap.probes.size()));
    }
    std::optional<Measured> m = measure(ctx, w, metrics_cfg, true);
    if (!m) return jobs::RunOutcome::kPreempted;
    for (size_t i = 0; i < prefill_fit_.size(); ++i) extra.emplace_back(fmt::format("prefill_fit_c{}", i), prefill_fit_[i]);
    for (auto& e : extra) m->summary.values.push_back(e);
    write_miss_rate_curve(ctx, m->itts);
    ServingMetrics::write_summary(ctx, m->summary, "");  // the default report() prints it
    return jobs::RunOutcome::kDone;
  }

  void after_close(const fs::path& run_dir) const override {
    if (c_.plots) plot_serving_results(run_dir);
  }

 private:
  // One pass of workload `w`: its requests sent at their arrival times, measured into
  // ServingMetrics (tables in results.h5 only when `tables`). nullopt when the run was stopped.
  std::optional<Measured> measure(jobs::RunContext& ctx, const WorkloadConfig& w, const MetricsConfig& metrics_cfg, bool tables) {
    std::vector<Planned> plan = make_plan(w, ctx.seed());
    std::vector<StreamedResponse> responses(plan.size());
    std::vector<double> sent_s(plan.size(), 0);
    std::atomic<size_t> next{0};
    const Clock::time_point start = Clock::now();
    auto since_start = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    // Workers take requests in arrival order and send each at its arrival time; with all of them
    // busy a request waits (bounded concurrency), and the wait is reported, not hidden.
    std::vector<std::thread> workers;
    for (int64_t k = 0; k < std::min<int64_t>(c_.max_concurrency, static_cast<int64_t>(plan.size())); ++k)
      workers.emplace_back([&] {
        for (size_t i; (i = next++) < plan.size();) {
          if (ctx.should_stop()) return;
          const double wait = plan[i].req.arrival_s - since_start();
          if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
          sent_s[i] = since_start();
          responses[i] = send(plan[i].prompt, plan[i].req.decode_tokens);
        }
      });
    for (auto& t : workers) t.join();
    const double wall = since_start();
    if (ctx.should_stop()) return std::nullopt;

    ServingMetrics metrics(metrics_cfg, tables ? &ctx : nullptr, "/serving");
    if (deadline_) metrics.set_ttft_deadline(deadline_);
    results::Table* requests = nullptr;
    if (tables)
      requests = &ctx.table("/metron/requests", {
          {"request_id", ColumnType::kUInt64, "", "request"},
          {"scheduled_s", ColumnType::kFloat64, "s", "arrival time in the workload"},
          {"sent_s", ColumnType::kFloat64, "s", "when it was sent (later than scheduled when every worker was busy)"},
          {"prompt_tokens", ColumnType::kInt64, "tokens", "the server's count (usage), else ours"},
          {"asked_tokens", ColumnType::kInt64, "tokens", "max_tokens"},
          {"received_tokens", ColumnType::kInt64, "tokens", "stream events that carried text"},
          {"ok", ColumnType::kUInt8, "", "1: the stream ended with [DONE]"},
          {"http_status", ColumnType::kInt64, "", "0: no response"},
      });
    Measured out;
    int64_t ok = 0, http_errors = 0, broken = 0, events = 0;
    double client_s = 0, queued_s = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
      const StreamedResponse& r = responses[i];
      const Planned& p = plan[i];
      const int64_t prompt_tokens = r.prompt_tokens > 0 ? r.prompt_tokens : p.prompt_tokens;
      if (requests)
        requests->append({p.req.id, p.req.arrival_s, sent_s[i], prompt_tokens, p.req.decode_tokens,
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
      out.itts.push_back(inter_token_times(req.arrival_s, s.token_times));
    }
    out.summary = metrics.summary(0, 1, 0);
    // Metron's companion rates beside the fluid token rate: 1 / mean TPOT over requests, and
    // 1 / P99 of the pooled TBTs.
    double tpot_sum = 0;
    int64_t tpot_n = 0;
    for (const std::vector<double>& itt : out.itts)
      if (itt.size() > 1) tpot_sum += request_latency(itt).tpot, ++tpot_n;
    out.summary.values.emplace_back("tpot_based_token_rate_tok_s", tpot_n && tpot_sum > 0 ? static_cast<double>(tpot_n) / tpot_sum : 0);
    const double p99_tbt = out.summary.get("p99_tbt_s");
    out.summary.values.emplace_back("tbt_based_token_rate_tok_s", p99_tbt > 0 ? 1 / p99_tbt : 0);
    out.summary.values.emplace_back("qps", w.qps);
    out.summary.values.emplace_back("requests_ok", static_cast<double>(ok));
    out.summary.values.emplace_back("requests_http_error", static_cast<double>(http_errors));
    out.summary.values.emplace_back("requests_broken", static_cast<double>(broken));  // no response, timeout, truncated
    out.summary.values.emplace_back("max_client_queue_s", queued_s);
    out.summary.values.emplace_back("client_parse_us_per_token", events ? 1e6 * client_s / static_cast<double>(events) : 0);
    out.summary.values.emplace_back("wall_s", wall);
    if (tables) metrics.write_cdf();
    return out;
  }

  StreamedResponse send(const nlohmann::json& prompt, int64_t max_tokens) const {
    nlohmann::json body = {{"model", c_.model}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", c_.ignore_eos}};
    if (c_.api == "chat") body["messages"] = {{{"role", "user"}, {"content", prompt}}};
    else body["prompt"] = prompt;
    return stream_completion(ep_, body, c_.api == "chat");
  }

  // Metron's prefill profiler: TTFT of lone requests (one output token) at 2^k prompt tokens, the
  // least of `repetitions`, then D_p(P) = max(fit, 0) + slack with a least-squares quadratic
  // a + bP + cP^2 for the fit (our stand-in for Metron's random forest on polynomial features,
  // which extrapolates flat beyond the profiled lengths). Lengths the endpoint refuses end the sweep.
  std::function<double(int64_t)> profile_prefill(jobs::RunContext& ctx, uint64_t seed) {
    runtime::RngStream rng(seed, 912);
    auto& table = ctx.table("/metron/prefill_profile", {{"prompt_tokens", ColumnType::kInt64, "tokens", ""},
                                                        {"ttft_s", ColumnType::kFloat64, "s", "a lone request's TTFT, the least of the repetitions"}});
    std::vector<std::pair<double, double>> points;
    for (int64_t k = c_.profile_min_log2; k <= c_.profile_max_log2; ++k) {
      const int64_t n = int64_t{1} << k;
      double best = std::numeric_limits<double>::infinity();  // Metron keeps the minimum per length
      for (int64_t rep = 0; rep < c_.profile_repetitions; ++rep) {
        StreamedResponse r = send(prompt_of(n, rng), 1);
        if (!r.ok || r.token_times.empty()) {
          runtime::logger()->info("prefill profile stops at {} tokens: {}", n, r.error);
          break;
        }
        best = std::min(best, r.token_times[0]);
      }
      if (!std::isfinite(best)) break;
      table.append({n, best});
      points.emplace_back(static_cast<double>(n), best);
    }
    if (points.size() < 3) throw std::runtime_error("the prefill profile needs 3 prompt lengths the endpoint serves");
    Eigen::MatrixXd x(static_cast<Eigen::Index>(points.size()), 3);
    Eigen::VectorXd y(static_cast<Eigen::Index>(points.size()));
    for (size_t i = 0; i < points.size(); ++i) {
      const double p = points[i].first;
      x.row(static_cast<Eigen::Index>(i)) << 1.0, p, p * p;
      y(static_cast<Eigen::Index>(i)) = points[i].second;
    }
    const Eigen::Vector3d c = x.colPivHouseholderQr().solve(y);
    prefill_fit_ = {c(0), c(1), c(2)};
    const double slack = c_.profile_slack_s;
    return [c, slack](int64_t p) {
      const double d = static_cast<double>(p);
      return std::max(0.0, c(0) + c(1) * d + c(2) * d * d) + slack;
    };
  }

  // Metron's curve: for each target TBT of 1, 2, ..., 100 ms, the P99 (and mean) over requests of
  // the deadline miss rate with the TTFT ignored (on [0] + the request's TBTs).
  void write_miss_rate_curve(jobs::RunContext& ctx, const std::vector<std::vector<double>>& itts) {
    auto& t = ctx.table("/metron/miss_rate_curve", {{"tbt_deadline_s", ColumnType::kFloat64, "s", "target TBT (D_d)"},
                                                    {"p99_miss_rate", ColumnType::kFloat64, "", "P99 over requests"},
                                                    {"mean_miss_rate", ColumnType::kFloat64, "", "mean over requests"}});
    if (itts.empty()) return;
    for (int ms = 1; ms <= 100; ++ms) {
      const double d = ms * 1e-3;
      stats::QuantileSketch rates;  // as the summary's p99_request_miss_rate
      for (const std::vector<double>& itt : itts) {
        std::vector<double> gaps = itt;
        if (!gaps.empty()) gaps[0] = 0;
        rates.add(deadline_misses(gaps, 0, d, true).miss_rate());
      }
      t.append({d, rates.quantile(0.99), rates.mean()});
    }
  }

  nlohmann::json prompt_of(int64_t n, runtime::RngStream& rng) const {
    std::vector<int32_t> ids = random_ids(n, rng);
    if (c_.prompts != "text") return ids;
    return tok_->decode(ids, true);
  }

  std::vector<int32_t> random_ids(int64_t n, runtime::RngStream& rng) const {
    const int64_t lo = c_.token_id_range[0], hi = c_.token_id_range[1];
    std::vector<int32_t> ids;
    for (int64_t k = 0; k < n; ++k)
      ids.push_back(static_cast<int32_t>(lo + static_cast<int64_t>(rng.below(static_cast<uint64_t>(hi - lo)))));
    return ids;
  }

  // The workload's arrivals with, per request: the given prompt and max_tokens (prompts=file), or
  // a prompt of exactly the workload's length — token ids, or text that the endpoint's tokenizer
  // (tokenizer_dir) turns into that many tokens.
  std::vector<Planned> make_plan(const WorkloadConfig& w, uint64_t seed) const {
    RequestGenerator gen(w, seed);
    runtime::RngStream rng(seed, 911);
    std::vector<Planned> out;
    while (auto r = gen.next()) {
      Planned p{*r, {}, r->prompt_tokens};
      if (c_.prompts == "file") {
        const auto& [prompt, max_tokens] = c_.given.at(out.size());
        p.prompt = prompt;
        p.req.decode_tokens = max_tokens;
        // Counted by us when we can; the server's usage count replaces it when it sends one.
        p.prompt_tokens = prompt.is_array() ? static_cast<int64_t>(prompt.size())
                          : tok_            ? static_cast<int64_t>(tok_->encode(prompt.get<std::string>(), true).size())
                                            : 0;
        p.req.prompt_tokens = p.prompt_tokens;
      } else if (!tok_ || c_.prompts == "token_ids") {
        p.prompt = random_ids(r->prompt_tokens, rng);
      } else {
        // Decoding random ids and encoding the text again rarely gives the same count: trim or
        // extend until it does (a few rounds), else keep the nearest and count it.
        std::vector<int32_t> ids = random_ids(r->prompt_tokens, rng);
        std::string text;
        for (int round = 0; round < 16; ++round) {
          text = tok_->decode(ids, true);
          std::vector<int32_t> again = tok_->encode(text, false);
          p.prompt_tokens = static_cast<int64_t>(again.size());
          if (p.prompt_tokens == r->prompt_tokens) break;
          if (p.prompt_tokens > r->prompt_tokens) again.resize(static_cast<size_t>(r->prompt_tokens));
          else for (int32_t id : random_ids(r->prompt_tokens - p.prompt_tokens, rng)) again.push_back(id);
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
  std::function<double(int64_t)> deadline_;  // D_p from the prefill profile
  std::vector<double> prefill_fit_;
};

// prompts=file: one {"prompt": "text" | [ids], "max_tokens": n} a line; errors name the line.
std::vector<std::pair<nlohmann::json, int64_t>> read_given_prompts(const config::ConfigNode& job, const std::string& file) {
  std::ifstream in(file);
  if (!in) reject_key(job, "prompts_file", fmt::format("cannot open {}", file), "the path of a JSONL file");
  std::vector<std::pair<nlohmann::json, int64_t>> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    const bool ok = !j.is_discarded() && j.is_object() && j.contains("prompt") &&
                    (j["prompt"].is_string() || j["prompt"].is_array()) && j.contains("max_tokens") &&
                    j["max_tokens"].is_number_integer() && j["max_tokens"].get<int64_t>() >= 1;
    if (!ok)
      reject_key(job, "prompts_file", fmt::format("{}:{}: not {{\"prompt\": \"text\" or [ids], \"max_tokens\": n ≥ 1}}", file, n),
                 "one JSON object a line");
    out.emplace_back(j["prompt"], j["max_tokens"].get<int64_t>());
  }
  if (out.empty()) reject_key(job, "prompts_file", fmt::format("{} holds no prompt", file), "one JSON object a line");
  return out;
}

}  // namespace

std::unique_ptr<Experiment> make_metron(const config::ConfigNode& job) {
  auto top = top_level_reader(job);
  ClientConfig c;
  top.get("endpoint", c.endpoint);
  top.get("model", c.model);
  top.get("api_key_env", c.api_key_env);
  top.get_enum("api", c.api, {"completions", "chat"});
  top.get_enum("prompts", c.prompts, {"token_ids", "text", "file"});
  top.get("tokenizer_dir", c.tokenizer_dir);
  std::string prompts_file;
  top.get("prompts_file", prompts_file);
  top.get("token_id_range", c.token_id_range, Range::between(0, 1 << 30));
  top.get("max_concurrency", c.max_concurrency, Range::between(1, 4096));
  top.get("request_timeout_s", c.request_timeout_s, Range::between(0.1, 86400));
  top.get("ignore_eos", c.ignore_eos);
  top.get("plots", c.plots);
  auto pp = top.section("prefill_profile");
  pp.get("enabled", c.prefill_profile);
  pp.get("min_log2", c.profile_min_log2, Range::between(0, 30));
  pp.get("max_log2", c.profile_max_log2, Range::between(0, 30));
  pp.get("repetitions", c.profile_repetitions, Range::between(1, 100));
  pp.get("slack_s", c.profile_slack_s, Range::between(0, 3600));
  pp.finish();
  auto cap = top.section("capacity");
  cap.get("enabled", c.capacity);
  c.plan = CapacityPlan::from(cap);  // `enabled` was read from the same reader, so finish() accepts it
  WorkloadConfig w = WorkloadConfig::from(top.section("workload"), fs::path(EXP_SOURCE_DIR) / "data");
  if (c.prompts == "file") {
    if (prompts_file.empty())
      reject_key(job, "prompts_file", "prompts=file needs the file", "JSONL: {\"prompt\": \"text\" or [ids], \"max_tokens\": n} a line");
    c.given = read_given_prompts(job, prompts_file);
    w.num_requests = static_cast<int64_t>(c.given.size());  // the workload gives the arrivals
  }
  MetricsConfig m = MetricsConfig::from(top.section("metrics"));
  top.finish();
  if (c.token_id_range.size() != 2 || c.token_id_range[0] >= c.token_id_range[1])
    reject_key(job, "token_id_range", fmt::format("[{}] is not [low, high) with low < high", fmt::join(c.token_id_range, ", ")),
               "e.g. [1000, 10000]: ids every tokenizer of 32k tokens or more has");
  if (c.capacity && (c.plan.slo.type == "sarathi" || c.plan.slo.type == "delay"))
    reject_key(job, "capacity.slo.type",
               fmt::format("\"{}\" bounds the scheduling delay, which only the server knows", c.plan.slo.type),
               "against a live endpoint use deadline, tbt_ttft or ttft_tpot");
  if (c.capacity && c.plan.slo.type == "deadline" && !c.prefill_profile)
    reject_key(job, "prefill_profile.enabled", "capacity.slo.type=deadline sets D_p from the endpoint's prefill curve",
               "set prefill_profile.enabled=true");
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
