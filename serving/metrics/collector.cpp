#include "serving/metrics/collector.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/runtime/files.h"
#include "serving/metrics/metron.h"

namespace xp::serving {

using results::ColumnSpec;
using results::ColumnType;

MetricsConfig MetricsConfig::from(const config::ConfigReader& r) {
  MetricsConfig c;
  r.get("ttft_deadline_s", c.ttft_deadline_s, config::Range::positive());
  r.get("ttft_slack_s", c.ttft_slack_s, config::Range::non_negative());
  r.get("tbt_deadline_s", c.tbt_deadline_s, config::Range::positive());
  r.get("target_miss_rate", c.target_miss_rate, config::Range::fraction());
  r.get("fluid_rate", c.fluid_rate);
  r.get_enum("min_tbt_search", c.min_tbt_search, {"ttft_ignored", "ttft_counted"});
  r.get("store_tokens", c.store_tokens);
  r.get("store_batches", c.store_batches);
  r.get("store_batch_stages", c.store_batch_stages);
  r.get("trace_iterations", c.trace_iterations, config::Range::between(0, 1e6));
  r.finish();
  return c;
}

double ServingSummary::get(const std::string& name) const {
  for (const auto& [k, v] : values)
    if (k == name) return v;
  return std::nan("");
}

ServingMetrics::ServingMetrics(const MetricsConfig& cfg, jobs::RunContext* ctx, const std::string& group)
    : cfg_(cfg), ctx_(ctx), group_(group) {
  if (!ctx_) return;
  requests_ = &ctx_->table(group + "/requests", {
      {"request_id", ColumnType::kUInt64, "", "request id (arrival order)"},
      {"replica", ColumnType::kUInt32, "", "replica that served it"},
      {"arrival_s", ColumnType::kFloat64, "s", "arrival time"},
      {"first_scheduled_s", ColumnType::kFloat64, "s", "first time any of its work was scheduled"},
      {"first_token_s", ColumnType::kFloat64, "s", "time of the first output token"},
      {"completion_s", ColumnType::kFloat64, "s", "time of the last output token (or of being ignored)"},
      {"prefill_tokens", ColumnType::kUInt32, "tokens", "prompt length"},
      {"decode_tokens", ColumnType::kUInt32, "tokens", "output tokens produced"},
      {"num_restarts", ColumnType::kUInt16, "", "recompute preemptions"},
      {"ttft_s", ColumnType::kFloat64, "s", "time to first token (first token − arrival)"},
      {"tpot_s", ColumnType::kFloat64, "s", "mean time between output tokens (Metron: decode time / (N - 1))"},
      {"decode_time_normalized_s", ColumnType::kFloat64, "s", "decode time / N (Vidur's decode_time_execution_plus_preemption_normalized)"},
      {"e2e_s", ColumnType::kFloat64, "s", "last token − arrival"},
      {"normalized_e2e_s", ColumnType::kFloat64, "s", "e2e / output tokens (normalized latency)"},
      {"scheduling_delay_s", ColumnType::kFloat64, "s", "first scheduled − arrival"},
      {"fluidity_index", ColumnType::kFloat64, "", "share of token deadlines met (Metron)"},
      {"min_tbt_deadline_s", ColumnType::kFloat64, "s", "smallest TBT deadline met at the target miss rate (0 = not computed)"},
      {"ignored", ColumnType::kUInt8, "", "1 = too long to serve, dropped"},
  });
  if (cfg_.store_tokens)
    tokens_ = &ctx_->table(group + "/tokens", {
        {"request_id", ColumnType::kUInt64, "", "request id"},
        {"token_index", ColumnType::kUInt32, "", "0 = first output token"},
        {"emit_time_s", ColumnType::kFloat64, "s", "when the token was emitted"},
        {"tbt_s", ColumnType::kFloat64, "s", "gap since the previous token (0 for the first)"},
    });
  if (cfg_.store_batches)
    batches_ = &ctx_->table(group + "/batches", {
        {"replica", ColumnType::kUInt32, "", "replica"},
        {"batch_id", ColumnType::kUInt64, "", "iteration number within the replica"},
        {"scheduled_s", ColumnType::kFloat64, "s", "when the scheduler formed it"},
        {"start_s", ColumnType::kFloat64, "s", "when its first stage started"},
        {"time_s", ColumnType::kFloat64, "s", "start of the first stage to end of the last (execution)"},
        {"time_since_scheduled_s", ColumnType::kFloat64, "s",
         "scheduled to end of the last stage: execution plus waiting for stage 0 (Vidur's batch time)"},
        {"num_prefill_tokens", ColumnType::kUInt32, "tokens", "prefill tokens"},
        {"num_decodes", ColumnType::kUInt32, "tokens", "decode tokens"},
        {"batch_size", ColumnType::kUInt32, "", "requests in the batch"},
        {"kv_used_blocks", ColumnType::kUInt32, "", "KV blocks in use when scheduled"},
    });
}

void ServingMetrics::on_finished(const Sequence& s, int64_t replica) {
  bool ignored = s.status == SeqStatus::kIgnored;
  std::vector<double> itt = inter_token_times(s.arrival(), s.token_times);
  RequestLatency lat = request_latency(itt);
  double d_p = ttft_deadline_fn_ ? ttft_deadline_fn_(s.request().prompt_tokens) : cfg_.ttft_deadline_s;
  DeadlineMisses dm = deadline_misses(itt, d_p, cfg_.tbt_deadline_s);
  double min_tbt = 0;
  if (!ignored && cfg_.fluid_rate && itt.size() > 1) {
    min_tbt = cfg_.min_tbt_search == "ttft_counted"
                  ? min_tbt_deadline_counting_ttft(itt, d_p, cfg_.target_miss_rate)
                  : min_tbt_deadline(std::vector<double>(itt.begin() + 1, itt.end()), cfg_.target_miss_rate);
    min_tbt_.add(min_tbt);
  }
  double delay = s.first_scheduled_s >= 0 ? s.first_scheduled_s - s.arrival() : 0;
  if (first_arrival_ < 0 || s.arrival() < first_arrival_) first_arrival_ = s.arrival();
  last_completion_ = std::max(last_completion_, s.completed_s);
  ++finished_;
  if (ignored) {
    ++ignored_;
  } else {
    ttft_.add(lat.ttft);
    for (size_t i = 1; i < itt.size(); ++i) tbt_.add(itt[i]);
    if (itt.size() > 1) tpot_.add(lat.tpot);
    decode_norm_.add(lat.decode_time_normalized);
    e2e_.add(lat.e2e);
    norm_e2e_.add(lat.normalized_e2e);
    sched_delay_.add(std::max(0.0, delay));
    miss_rate_.add(dm.miss_rate());
    output_tokens_ += static_cast<int64_t>(itt.size());
    restarts_ += s.num_restarts;
    missed_ += dm.missed;
    deadlines_ += dm.total;
  }
  if (requests_)
    requests_->append({s.id(), replica, s.arrival(), s.first_scheduled_s, s.token_times.empty() ? -1.0 : s.token_times[0],
                       s.completed_s, s.request().prompt_tokens, static_cast<int64_t>(s.token_times.size()),
                       int64_t{s.num_restarts}, lat.ttft, lat.tpot, lat.decode_time_normalized, lat.e2e, lat.normalized_e2e, delay,
                       dm.fluidity_index(), min_tbt, int64_t{ignored ? 1 : 0}});
  if (tokens_)
    for (size_t i = 0; i < s.token_times.size(); ++i)
      tokens_->append({s.id(), static_cast<int64_t>(i), s.token_times[i], i ? itt[i] : 0.0});
}

void ServingMetrics::on_batch(const Batch& b, int64_t replica, double start_s, double end_s, int64_t kv_used,
                              int64_t kv_total) {
  double dt = end_s - start_s;
  batch_size_.add(static_cast<double>(b.items.size()));
  batch_tokens_.add(static_cast<double>(b.num_tokens()));
  batch_time_.add(dt);
  if (kv_total > 0) {
    kv_weighted_ += dt * static_cast<double>(kv_used) / static_cast<double>(kv_total);
    time_weighted_ += dt;
  }
  if (batches_)
    batches_->append({replica, b.id, b.scheduled_s, start_s, dt, end_s - b.scheduled_s, b.num_prefill_tokens(), b.num_decodes(),
                      static_cast<int64_t>(b.items.size()), kv_used});
}

void ServingMetrics::add_stage_time(int64_t replica, int64_t stage, double busy_s, double bubble_s, double idle_s) {
  stage_bubble_s_ += bubble_s;
  stage_total_s_ += busy_s + bubble_s + idle_s;
  if (!ctx_) return;
  if (!stages_)
    stages_ = &ctx_->table(group_ + "/stages", {
        {"replica", ColumnType::kUInt32, "", "replica"},
        {"stage", ColumnType::kUInt32, "", "pipeline stage"},
        {"busy_s", ColumnType::kFloat64, "s", "running batches"},
        {"bubble_s", ColumnType::kFloat64, "s", "idle while work waited elsewhere in the pipeline"},
        {"idle_s", ColumnType::kFloat64, "s", "idle with no work"},
    });
  stages_->append({replica, stage, busy_s, bubble_s, idle_s});
}

void ServingMetrics::on_stage_run(const Batch& b, int64_t replica, int64_t stage, double start_s, double end_s) {
  if (cfg_.store_batch_stages && ctx_) {
    if (!batch_stages_)
      batch_stages_ = &ctx_->table(group_ + "/batch_stages", {
          {"replica", ColumnType::kUInt32, "", "replica"},
          {"batch_id", ColumnType::kUInt64, "", "iteration number within the replica (as /batches)"},
          {"stage", ColumnType::kUInt32, "", "pipeline stage"},
          {"start_s", ColumnType::kFloat64, "s", "when the batch started on this stage"},
          {"end_s", ColumnType::kFloat64, "s", "when it left this stage"},
      });
    batch_stages_->append({replica, b.id, stage, start_s, end_s});
  }
  if (b.id >= static_cast<uint64_t>(cfg_.trace_iterations)) return;
  trace_events_.push_back(nlohmann::json{{"name", fmt::format("batch {}", b.id)},
                                         {"cat", "batch"},
                                         {"ph", "X"},
                                         {"ts", start_s * 1e6},
                                         {"dur", (end_s - start_s) * 1e6},
                                         {"pid", replica},
                                         {"tid", stage},
                                         {"args", {{"prefill_tokens", b.num_prefill_tokens()}, {"decodes", b.num_decodes()}}}}
                              .dump());
}

ServingSummary ServingMetrics::summary(int64_t num_preemptions, int64_t gpus, double peak_flops) const {
  ServingSummary s;
  auto q = [&](const char* name, const stats::QuantileSketch& k) {
    s.values.emplace_back(std::string("p50_") + name, k.quantile(0.5));
    s.values.emplace_back(std::string("p90_") + name, k.quantile(0.9));
    s.values.emplace_back(std::string("p99_") + name, k.quantile(0.99));
  };
  double span = last_completion_ - std::max(0.0, first_arrival_);
  s.values.emplace_back("requests", static_cast<double>(finished_ - ignored_));
  s.values.emplace_back("ignored", static_cast<double>(ignored_));
  q("ttft_s", ttft_);
  q("tbt_s", tbt_);
  q("tpot_s", tpot_);
  q("decode_time_normalized_s", decode_norm_);
  q("e2e_s", e2e_);
  q("normalized_e2e_s", norm_e2e_);
  q("scheduling_delay_s", sched_delay_);
  s.values.emplace_back("throughput_tok_s", span > 0 ? static_cast<double>(output_tokens_) / span : 0.0);
  s.values.emplace_back("throughput_req_s", span > 0 ? static_cast<double>(finished_ - ignored_) / span : 0.0);
  s.values.emplace_back("fluidity_index", deadlines_ ? 1.0 - static_cast<double>(missed_) / static_cast<double>(deadlines_) : 1.0);
  s.values.emplace_back("p99_request_miss_rate", miss_rate_.quantile(0.99));
  double p99_min_tbt = min_tbt_.quantile(0.99);
  s.values.emplace_back("fluid_token_rate_tok_s", min_tbt_.count() && p99_min_tbt > 0 ? 1.0 / p99_min_tbt : 0.0);
  s.values.emplace_back("preemptions", static_cast<double>(num_preemptions));
  s.values.emplace_back("kv_utilization", time_weighted_ > 0 ? kv_weighted_ / time_weighted_ : 0.0);
  s.values.emplace_back("mfu", span > 0 && gpus > 0 && peak_flops > 0
                                   ? flops_ / (span * static_cast<double>(gpus) * peak_flops) : 0.0);
  if (stage_total_s_ > 0) s.values.emplace_back("pipeline_bubble_fraction", stage_bubble_s_ / stage_total_s_);
  if (decode_cost_s_ > 0)
    s.values.emplace_back("decode_throughput_tok_s", static_cast<double>(decode_cost_tokens_) / decode_cost_s_);
  s.values.emplace_back("busy_fraction", span > 0 && gpus > 0 ? busy_gpu_s_ / (span * static_cast<double>(gpus)) : 0.0);
  s.values.emplace_back("p50_batch_size", batch_size_.quantile(0.5));
  s.values.emplace_back("p50_batch_tokens", batch_tokens_.quantile(0.5));
  s.values.emplace_back("simulated_s", span);
  return s;
}

void ServingMetrics::write_summary(jobs::RunContext& ctx, const ServingSummary& s, const std::string& prefix) {
  for (const auto& [k, v] : s.values) ctx.set_summary(prefix + k, v);
}

void ServingMetrics::write_cdf() {
  if (!ctx_) return;
  if (!trace_events_.empty()) {
    const std::string name = group_ == "/serving" ? "trace.json" : "trace_" + group_.substr(group_.rfind('/') + 1) + ".json";
    std::string text = "{\"traceEvents\": [\n";
    for (size_t i = 0; i < trace_events_.size(); ++i) text += trace_events_[i] + (i + 1 < trace_events_.size() ? ",\n" : "\n");
    text += "], \"displayTimeUnit\": \"ms\"}\n";
    runtime::write_file_atomic(ctx_->output_dir() / name, text);
  }
  // Vidur-style CDFs at 1% steps from the sketches (relative accuracy 0.1%).
  auto& cdf = ctx_->table(group_ + "/cdf", {
      {"quantile", ColumnType::kFloat64, "", "0 to 1 in steps of 0.01"},
      {"ttft_s", ColumnType::kFloat64, "s", "TTFT"},
      {"tbt_s", ColumnType::kFloat64, "s", "time between tokens (every token, pooled)"},
      {"tpot_s", ColumnType::kFloat64, "s", "mean time per output token, per request"},
      {"normalized_e2e_s", ColumnType::kFloat64, "s", "normalized end-to-end latency"},
      {"scheduling_delay_s", ColumnType::kFloat64, "s", "scheduling delay"},
  });
  for (int i = 0; i <= 100; ++i) {
    double p = i / 100.0;
    cdf.append({p, ttft_.quantile(p), tbt_.quantile(p), tpot_.quantile(p), norm_e2e_.quantile(p), sched_delay_.quantile(p)});
  }
  // Batches as distributions, as Vidur keeps them by default (keep_individual_batch_metrics =
  // False): the per-iteration rows of /batches are optional (metrics.store_batches).
  auto& batch_cdf = ctx_->table(group_ + "/batch_cdf", {
      {"quantile", ColumnType::kFloat64, "", "0 to 1 in steps of 0.01"},
      {"batch_size", ColumnType::kFloat64, "", "requests in a batch"},
      {"num_tokens", ColumnType::kFloat64, "tokens", "prefill + decode tokens in a batch"},
      {"time_s", ColumnType::kFloat64, "s", "a batch's execution, first stage start to last stage end"},
  });
  for (int i = 0; i <= 100; ++i) {
    double p = i / 100.0;
    batch_cdf.append({p, batch_size_.quantile(p), batch_tokens_.quantile(p), batch_time_.quantile(p)});
  }
}

}  // namespace xp::serving
