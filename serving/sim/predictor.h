// Execution-time predictor (docs/serving_simulator.md, "Predictor"). Reads Vidur-layout operator
// profiles for one (device, model, TP) and predicts each batch stage at once — no fitting step:
// token-level ops and collectives interpolate piecewise-linearly along their profiled grid,
// attention interpolates along (chunk or batch) × KV length. Where a profile lacks attention
// (Vidur's A100/H100 sets), an analytic roofline fitted by least squares to every attention profile
// that does exist stands in; sources() says which source each operator came from. Changed after
// construction only by fit_overhead (a calibration on measured iterations); otherwise safe to
// share across threads.
#pragma once
#include <array>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "serving/scheduler/sequence.h"
#include "serving/scheduler/time_model.h"
#include "serving/sim/deployment.h"

namespace xp::serving {

// The features Vidur's predictor looks up, derived exactly as it does.
struct BatchFeatures {
  int64_t token_ops_tokens = 0;  // batch tokens rounded up to a multiple of 8
  int64_t kv_save_tokens = 0;    // exact batch tokens
  int64_t prefill_kv = 0;        // Σ roundup64(context_i)
  int64_t prefill_chunk = 0;     // round(sqrt(Σ chunk_i²))
  int64_t num_prefills = 0;
  int64_t decode_batch = 0;
  int64_t decode_kv = 0;         // roundup64(mean decode context)
};
// Rounding per Vidur's defaults (tokens to 8, KV to 64); a device may set its own.
BatchFeatures batch_features(const BatchShape& b, int64_t token_rounding = 8, int64_t kv_rounding = 64);

// A monotone 1-D table: linear between profiled points, linear extrapolation past the ends.
class Curve {
 public:
  Curve() = default;
  Curve(std::vector<double> xs, std::vector<double> ys);  // sorted by x, duplicates averaged
  double at(double x) const;
  bool empty() const { return xs_.empty(); }

 private:
  std::vector<double> xs_, ys_;
};

// Time over (key, kv): one Curve in kv per profiled key, linear between keys, clamped below the
// smallest key (as Vidur's tables start there) and extrapolated above the largest.
class Surface {
 public:
  void add(double key, double kv, double value);
  void finish();
  double at(double key, double kv) const;
  bool empty() const { return curves_.empty(); }

 private:
  std::map<double, std::pair<std::vector<double>, std::vector<double>>> points_;
  std::vector<std::pair<double, Curve>> curves_;
};

// How the long-context extrapolation of one attention operator predicted the profile's longest
// context from the contexts below it (ExecutionPredictor::long_context_checks).
struct LongContextCheck {
  int64_t points = 0;       // profiled keys (chunk or batch size) checked
  double anchor_kv = 0;     // the context extrapolated from
  double median_error_pct = 0, max_error_pct = 0;            // the roofline's
  double line_median_error_pct = 0, line_max_error_pct = 0;  // a straight line's, for comparison
};

class ExecutionPredictor final : public StageTimer {
 public:
  // Throws std::runtime_error naming the file (and missing TP degree or operator) on a bad
  // or incomplete profile.
  ExecutionPredictor(const ModelSpec& model, const DeviceSpec& device, const ReplicaLayout& layout,
                     const std::filesystem::path& data_root);

  // Time of one pipeline stage of `b`, in seconds (the last stage has no send/recv).
  double stage_time_s(const BatchShape& b, int64_t stage) const override;
  // One batch through every stage, alone in the pipeline: the stages' times, each that of the
  // slowest of `groups` (each KV-parallel group's view of the batch; one for a single group).
  double pass_time_s(const std::vector<BatchShape>& groups) const;
  // Model FLOPs of one stage of `b` (for MFU).
  double stage_flops(const BatchShape& b) const override;
  double peak_flops() const { return device_.fp16_tflops * 1e12; }

  // Refits how whole iterations (milliseconds; a batch through every stage, alone in the
  // pipeline) relate to the operators: a scale on the operators (one for batches with a prompt
  // chunk, one for decode-only batches) and the last stage's overhead beyond them. The
  // constructor does so from an engine profile's whole forwards; the engine fidelity experiment
  // again from iterations timed while the engine serves (CPU overheads, as Vidur profiles them on
  // the real system).
  void fit_overhead(const std::vector<std::pair<BatchShape, double>>& iterations_ms, const std::string& source);

  // Operator -> where its numbers come from ("profile <file>" or "analytic ...").
  const std::map<std::string, std::string>& sources() const { return sources_; }
  int64_t layers_per_stage() const { return layers_per_stage_; }
  // Per attention operator with a profile: the check of its long-context extrapolation.
  const std::map<std::string, LongContextCheck>& long_context_checks() const { return long_context_checks_; }

 private:
  double attention_ms(const BatchFeatures& f) const;
  double operators_ms(const BatchShape& b, bool last_stage) const;
  double pass_operators_ms(const BatchShape& b) const;  // every stage's
  double analytic_prefill_ms(double chunk, double kv) const;
  double analytic_decode_ms(double batch, double kv) const;
  void fit_analytic_attention(const std::filesystem::path& data_root);
  using ProfilePoint = std::array<double, 3>;  // (chunk or batch size, kv, ms)
  void fit_long_context(const std::string& op, const std::vector<ProfilePoint>& points, double* coef, double& max_kv);
  void load_token_ops(const std::filesystem::path& mlp_file);
  std::filesystem::path load_attention(const std::filesystem::path& data_root, const std::filesystem::path& dir,
                                       std::vector<std::pair<BatchShape, double>>& whole_forwards);
  void load_collectives(const std::filesystem::path& network_dir);
  void load_cpu_overhead(const std::filesystem::path& data_root);
  void load_kvp_merge(const std::filesystem::path& all_reduce_file);
  double kvp_merge_ms(const BatchShape& b) const;

  ModelSpec model_;
  DeviceSpec device_;
  ReplicaLayout layout_;
  int64_t layers_per_stage_;
  std::map<std::string, Curve> token_ops_;
  Curve token_total_;  // Σ token_ops_, tabulated on the union of their grids
  Surface prefill_, decode_;
  Curve all_reduce_, send_recv_;  // by message bytes
  Curve kvp_merge_;               // KV-parallel merge, by bytes (an all-reduce profile stands in)
  Curve lm_head_;                 // by sequences in the batch, once per iteration (engine profiles)
  Curve kv_save_;                 // by tokens written (engine profiles)
  Curve cpu_overhead_;            // by sequences in the batch, on every stage (Vidur's CPU overheads)
  // An iteration = operators_scale_[k] · operators + overhead_ms_[0] + overhead_ms_[1] · sequences
  // (on the last stage), k = 0 for batches with a prompt chunk, 1 for decode-only ones, fitted to
  // whole iterations (engine profiles; else 1 and none).
  std::array<double, 2> operators_scale_ = {1, 1};
  std::array<double, 2> overhead_ms_ = {0, 0};
  // Analytic attention, c0 + a·flop_s + b·byte_s: the whole model without a profile, past the
  // longest profiled context (prefill_max_kv_, decode_max_kv_) with one.
  double prefill_coef_[3] = {0, 0, 0}, decode_coef_[3] = {0, 0, 0};
  double prefill_max_kv_ = 0, decode_max_kv_ = 0;
  std::map<std::string, LongContextCheck> long_context_checks_;
  std::map<std::string, std::string> sources_;
};

}  // namespace xp::serving
