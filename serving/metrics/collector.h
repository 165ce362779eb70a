// ServingMetrics: turns finished requests and executed batches into Metron/Vidur metrics —
// HDF5 tables (README, "Reading results") streamed as requests finish, DDSketch summaries (P50/P90/
// P99 of TTFT, TBT, TPOT, E2E, normalized E2E, scheduling delay), fluidity-index and fluid
// token rate, throughput, preemptions, KV utilisation and MFU. Memory stays flat in the number
// of finished requests. Used by the simulator and the engine alike. Not thread-safe.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/config/reader.h"
#include "core/jobs/run_context.h"
#include "core/stats/quantile_sketch.h"
#include "serving/scheduler/sequence.h"

namespace xp::serving {

struct MetricsConfig {
  double ttft_deadline_s = 0.1;    // D_p for the fluidity-index (Metron's run default)
  double ttft_slack_s = 0;         // > 0: D_p = predicted lone-prefill time(P) + this (Metron's deadline SLO)
  double tbt_deadline_s = 0.05;    // D_d
  double target_miss_rate = 0.1;   // for the per-request minimum TBT deadline (fluid rate)
  bool fluid_rate = true;          // compute per-request min TBT deadlines (a binary search each)
  // How that search treats the first token: ttft_ignored as Metron's get_throughput_metrics (its
  // capacity figures), ttft_counted as Metron's MetricStore (the TTFT against its deadline D_p).
  std::string min_tbt_search = "ttft_ignored";
  bool store_tokens = false;       // write /tokens (one row per output token: large)
  bool store_batches = true;       // write /batches (one row per iteration); /batch_cdf is always written
  bool store_batch_stages = false; // write /batch_stages (one row per batch per pipeline stage)
  int64_t trace_iterations = 0;    // > 0: a Chrome trace (trace.json) of the first N batches' stages
  static MetricsConfig from(const config::ConfigReader& r);
};

struct ServingSummary {
  std::vector<std::pair<std::string, double>> values;  // name -> value, in report order
  double get(const std::string& name) const;
};

class ServingMetrics {
 public:
  // Tables go under `group` (e.g. "/serving" or "/serving/vllm"); `ctx` may be null (no files).
  ServingMetrics(const MetricsConfig& cfg, jobs::RunContext* ctx, const std::string& group);

  void on_finished(const Sequence& s, int64_t replica);
  void on_batch(const Batch& b, int64_t replica, double start_s, double end_s, int64_t kv_used, int64_t kv_total);
  // SARATHI's decode throughput: `tokens` decodes of a batch cost `seconds` of execution (the
  // whole decode-only batch; in a hybrid batch, what its decodes add). Summary:
  // decode_throughput_tok_s, written when some decode cost was reported (the simulator does).
  void add_decode_cost(int64_t tokens, double seconds) {
    decode_cost_tokens_ += tokens;
    decode_cost_s_ += seconds;
  }
  // Per-request D_p from the prompt length (used when ttft_slack_s > 0).
  void set_ttft_deadline(std::function<double(int64_t)> fn) { ttft_deadline_fn_ = std::move(fn); }
  void add_busy(double gpu_seconds, double flops) {
    busy_gpu_s_ += gpu_seconds;
    flops_ += flops;
  }

  // One pipeline stage of one replica over a whole run: busy (running batches), in a bubble
  // (idle while work waits elsewhere in the pipeline: a batch still upstream of it, or, at stage
  // 0, requests the scheduler holds but cannot batch while theirs are in flight), idle (no
  // work). Written to /stages; the summary's pipeline_bubble_fraction is Σ bubble / Σ time.
  void add_stage_time(int64_t replica, int64_t stage, double busy_s, double bubble_s, double idle_s);
  // A batch on a stage: /batch_stages (store_batch_stages) and the Chrome trace (the first
  // trace_iterations batches).
  void on_stage_run(const Batch& b, int64_t replica, int64_t stage, double start_s, double end_s);

  // P50/P90/P99 and the rest; `gpus` and `peak_flops` scale MFU.
  ServingSummary summary(int64_t num_preemptions, int64_t gpus, double peak_flops) const;
  // Writes the 101-row CDF table (Vidur's 1% steps) of this run's sketches, and the Chrome trace
  // (trace.json, or trace_<scheduler>.json beside others; open in chrome://tracing or Perfetto).
  void write_cdf();
  // Writes a summary as /summary attributes, names prefixed.
  static void write_summary(jobs::RunContext& ctx, const ServingSummary& s, const std::string& prefix);

  const stats::QuantileSketch& ttft() const { return ttft_; }
  const stats::QuantileSketch& tbt() const { return tbt_; }
  const stats::QuantileSketch& scheduling_delay() const { return sched_delay_; }
  const stats::QuantileSketch& normalized_e2e() const { return norm_e2e_; }
  const stats::QuantileSketch& request_miss_rate() const { return miss_rate_; }
  int64_t num_finished() const { return finished_; }

 private:
  MetricsConfig cfg_;
  std::function<double(int64_t)> ttft_deadline_fn_;
  jobs::RunContext* ctx_;
  std::string group_;
  results::Table *requests_ = nullptr, *tokens_ = nullptr, *batches_ = nullptr;
  stats::QuantileSketch ttft_, tbt_, tpot_, decode_norm_, e2e_, norm_e2e_, sched_delay_, miss_rate_, min_tbt_, batch_size_,
      batch_tokens_, batch_time_;
  int64_t finished_ = 0, ignored_ = 0, output_tokens_ = 0, restarts_ = 0;
  int64_t missed_ = 0, deadlines_ = 0;
  double first_arrival_ = -1, last_completion_ = 0;
  double kv_weighted_ = 0, time_weighted_ = 0, busy_gpu_s_ = 0, flops_ = 0;
  double stage_bubble_s_ = 0, stage_total_s_ = 0;
  int64_t decode_cost_tokens_ = 0;
  double decode_cost_s_ = 0;
  results::Table* stages_ = nullptr;
  results::Table* batch_stages_ = nullptr;
  std::vector<std::string> trace_events_;  // Chrome trace events, JSON
};

}  // namespace xp::serving
