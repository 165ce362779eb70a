#include "serving/sim/predictor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <Eigen/Dense>
#include <array>
#include <algorithm>
#include <limits>
#include <cmath>
#include <optional>
#include <set>
#include <stdexcept>

#include "core/config/yaml_io.h"
#include "core/data/csv.h"

namespace xp::serving {
namespace fs = std::filesystem;

namespace {

constexpr double kNcclLaunchMs = 0.02;  // nccl_cpu_launch_overhead_ms (Vidur)
constexpr double kGqaBatchingOverhead = 1.1;
const std::vector<std::string> kTokenOps = {"input_layernorm", "attn_pre_proj",  "attn_rope",
                                            "attn_post_proj",  "post_attention_layernorm", "mlp_up_proj",
                                            "mlp_act",         "mlp_down_proj",  "add"};

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

std::string median_col(const std::string& op) { return "time_stats." + op + ".median"; }

// The iteration fit's two kinds of batch: with a prompt chunk (index 0) or decode-only (1).
bool has_prompt_chunk(const BatchShape& b) { return !b.prefills.empty(); }
// Sequences in the batch (the per-sequence overhead's unit).
double sequences(const BatchShape& b) { return static_cast<double>(b.prefills.size() + b.decode_contexts.size()); }

// Attention work of one layer shard, as the roofline fallback sees it.
struct AttnShape {
  double hq, hkv, hd;
};
double prefill_flops(const AttnShape& s, double chunk, double kv) { return 4 * s.hq * s.hd * chunk * (kv + (chunk + 1) / 2); }
double prefill_bytes(const AttnShape& s, double chunk, double kv) { return 2 * s.hd * (2 * s.hkv * (kv + chunk) + 2 * s.hq * chunk); }
double decode_flops(const AttnShape& s, double batch, double kv) { return 4 * s.hq * s.hd * batch * kv; }
double decode_bytes(const AttnShape& s, double batch, double kv) { return 2 * s.hd * 2 * s.hkv * batch * kv; }

// c0 + a·flop-seconds + b·byte-seconds (ms) by least squares on relative error (rows weighted by
// 1/time, so small kernels count too); rows are (1, flop-seconds, byte-seconds, ms).
void fit_roofline(const std::vector<std::array<double, 4>>& rows, double* coef) {
  Eigen::MatrixXd A(static_cast<Eigen::Index>(rows.size()), 3);
  Eigen::VectorXd y(static_cast<Eigen::Index>(rows.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    double w = 1.0 / std::max(rows[i][3], 1e-6);
    auto ii = static_cast<Eigen::Index>(i);
    A(ii, 0) = rows[i][0] * w;
    A(ii, 1) = rows[i][1] * 1e3 * w;  // seconds of work -> ms
    A(ii, 2) = rows[i][2] * 1e3 * w;
    y(ii) = rows[i][3] * w;
  }
  Eigen::Vector3d x = A.colPivHouseholderQr().solve(y);
  for (int k = 0; k < 3; ++k) coef[k] = std::max(0.0, x(k));
}

}  // namespace

BatchFeatures batch_features(const BatchShape& b, int64_t token_rounding, int64_t kv_rounding) {
  BatchFeatures f;
  f.kv_save_tokens = b.num_tokens();
  f.token_ops_tokens = round_up(f.kv_save_tokens, token_rounding);
  double sq = 0;
  for (const auto& p : b.prefills) {
    f.prefill_kv += round_up(p.context, kv_rounding);
    sq += static_cast<double>(p.chunk) * static_cast<double>(p.chunk);
  }
  f.prefill_chunk = static_cast<int64_t>(std::llround(std::sqrt(sq)));
  f.num_prefills = static_cast<int64_t>(b.prefills.size());
  f.decode_batch = static_cast<int64_t>(b.decode_contexts.size());
  if (f.decode_batch) {
    double mean = 0;
    for (int64_t c : b.decode_contexts) mean += static_cast<double>(c);
    mean /= static_cast<double>(f.decode_batch);
    f.decode_kv = round_up(static_cast<int64_t>(mean), kv_rounding);  // Vidur: int(mean), then rounded up
  }
  return f;
}

Curve::Curve(std::vector<double> xs, std::vector<double> ys) {
  std::vector<std::pair<double, double>> pts;
  for (size_t i = 0; i < xs.size(); ++i) pts.emplace_back(xs[i], ys[i]);
  std::sort(pts.begin(), pts.end());
  for (size_t i = 0; i < pts.size();) {
    size_t j = i;
    double sum = 0;
    while (j < pts.size() && pts[j].first == pts[i].first) sum += pts[j++].second;
    xs_.push_back(pts[i].first);
    ys_.push_back(sum / static_cast<double>(j - i));
    i = j;
  }
}

double Curve::at(double x) const {
  if (xs_.empty()) return 0;
  if (xs_.size() == 1) return ys_[0];
  size_t hi = static_cast<size_t>(std::upper_bound(xs_.begin(), xs_.end(), x) - xs_.begin());
  hi = std::clamp<size_t>(hi, 1, xs_.size() - 1);
  size_t lo = hi - 1;
  double t = (x - xs_[lo]) / (xs_[hi] - xs_[lo]);
  return std::max(0.0, ys_[lo] + t * (ys_[hi] - ys_[lo]));
}

void Surface::add(double key, double kv, double value) {
  points_[key].first.push_back(kv);
  points_[key].second.push_back(value);
}

void Surface::finish() {
  for (auto& [key, p] : points_) curves_.emplace_back(key, Curve(p.first, p.second));
  points_.clear();
}

double Surface::at(double key, double kv) const {
  if (curves_.empty()) return 0;
  if (key <= curves_.front().first || curves_.size() == 1) return curves_.front().second.at(kv);
  size_t hi = 1;
  while (hi + 1 < curves_.size() && curves_[hi].first < key) ++hi;
  const auto& [k0, c0] = curves_[hi - 1];
  const auto& [k1, c1] = curves_[hi];
  double t = (key - k0) / (k1 - k0);
  return std::max(0.0, c0.at(kv) + t * (c1.at(kv) - c0.at(kv)));
}

ExecutionPredictor::ExecutionPredictor(const ModelSpec& model, const DeviceSpec& device, const ReplicaLayout& layout,
                                       const fs::path& data_root)
    : model_(model), device_(device), layout_(layout) {
  if (model_.num_layers % layout_.pipeline_parallel != 0)
    throw std::runtime_error(fmt::format("{} has {} layers, which {} pipeline stages cannot split evenly", model_.name,
                                         model_.num_layers, layout_.pipeline_parallel));
  layers_per_stage_ = model_.num_layers / layout_.pipeline_parallel;
  const fs::path dir = data_root / device_.profile_dir / model_.profile_name;
  load_token_ops(dir / "mlp.csv");
  std::vector<std::pair<BatchShape, double>> whole_forwards;
  const fs::path attention_file = load_attention(data_root, dir, whole_forwards);
  // An engine profile's forwards hold no collectives (a shard's all-reduces are timed apart)
  // nor Vidur's CPU overheads: fitted to the operators before those are loaded.
  if (!whole_forwards.empty()) fit_overhead(whole_forwards, "whole forwards in " + attention_file.string());
  load_collectives(data_root / device_.network_dir);
  if (layout_.kv_parallel > 1) load_kvp_merge(data_root / device_.network_dir / "all_reduce.csv");
  load_cpu_overhead(data_root);
}


// Token-level operators: one curve each over tokens, at this model's shape and TP degree.
void ExecutionPredictor::load_token_ops(const fs::path& file) {
  const double tp = static_cast<double>(layout_.tensor_parallel);
  data::CsvTable mlp = data::CsvTable::load(file);
  size_t c_head = mlp.column("n_head"), c_kv = mlp.column("n_kv_head"), c_embd = mlp.column("n_embd"),
         c_exp = mlp.column("n_expanded_embd"), c_tp = mlp.column("num_tensor_parallel_workers"),
         c_tok = mlp.column("num_tokens");
  std::set<int64_t> tps;
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> pts;
  for (size_t r = 0; r < mlp.num_rows(); ++r) {
    if (mlp.number(r, c_head) != static_cast<double>(model_.num_q_heads) ||
        mlp.number(r, c_kv) != static_cast<double>(model_.num_kv_heads) ||
        mlp.number(r, c_embd) != static_cast<double>(model_.embedding_dim) ||
        mlp.number(r, c_exp) != static_cast<double>(model_.mlp_hidden_dim))
      continue;
    tps.insert(static_cast<int64_t>(mlp.number(r, c_tp)));
    if (mlp.number(r, c_tp) != tp) continue;
    for (const auto& op : kTokenOps) {
      if (!mlp.has_column(median_col(op))) continue;
      size_t c = mlp.column(median_col(op));
      if (mlp.empty_cell(r, c)) continue;
      pts[op].first.push_back(mlp.number(r, c_tok));
      pts[op].second.push_back(mlp.number(r, c));
    }
  }
  if (tps.empty())
    throw std::runtime_error(fmt::format("{}: no rows for the shape of {} (heads {}/{}, hidden {}, MLP {})",
                                         file.string(), model_.name, model_.num_q_heads,
                                         model_.num_kv_heads, model_.embedding_dim, model_.mlp_hidden_dim));
  if (!tps.count(layout_.tensor_parallel))
    throw std::runtime_error(fmt::format("{}: no rows for tensor parallelism {} (profiled: {})",
                                         file.string(), layout_.tensor_parallel, fmt::join(tps, ", ")));
  for (const auto& op : kTokenOps) {
    if (pts[op].first.empty()) {
      // Phi-2 has no post-attention norm; every other operator must be there.
      if (op == "post_attention_layernorm") {
        sources_[op] = "absent from the profile (counted as 0)";
        continue;
      }
      throw std::runtime_error(fmt::format("{}: operator '{}' is missing", file.string(), op));
    }
    token_ops_[op] = Curve(pts[op].first, pts[op].second);
    sources_[op] = "profile " + file.string();
  }
  // Once-per-iteration final norm + LM head, keyed by sequences (an extension column written by
  // the engine's profile mode; Vidur's profiles do not have it).
  if (mlp.has_column(median_col("lm_head"))) {
    std::vector<double> xs, ys;
    size_t col = mlp.column(median_col("lm_head"));
    for (size_t r = 0; r < mlp.num_rows(); ++r)
      if (mlp.number(r, c_tp) == tp && !mlp.empty_cell(r, col)) {
        xs.push_back(mlp.number(r, c_tok));
        ys.push_back(mlp.number(r, col));
      }
    lm_head_ = Curve(xs, ys);
    sources_["lm_head"] = "profile " + file.string() + " (once per iteration)";
  }
  // Sum the operators once over the union of their grids: a sum of piecewise-linear curves is
  // piecewise linear on that union, so one lookup per batch gives exactly the same time.
  std::set<double> grid;
  for (const auto& [op, p] : pts) grid.insert(p.first.begin(), p.first.end());
  std::vector<double> knots(grid.begin(), grid.end()), totals;
  for (double x : knots) {
    double sum = 0;
    for (const auto& [op, curve] : token_ops_) sum += curve.at(x);
    totals.push_back(sum);
  }
  token_total_ = Curve(knots, totals);
}

// Sequence-level attention: surfaces over (chunk or batch) × KV from the model's profile or a
// device-wide one, else the analytic roofline; adds an engine profile's whole forwards (batch,
// ms) to `whole_forwards`. Returns the file read.
fs::path ExecutionPredictor::load_attention(const fs::path& data_root, const fs::path& dir,
                                            std::vector<std::pair<BatchShape, double>>& whole_forwards) {
  const double tp = static_cast<double>(layout_.tensor_parallel);
  fs::path attn_file = dir / "attention.csv";
  std::optional<data::CsvTable> attention;  // read once (the historical A100 file is 3 MB)
  if (fs::exists(attn_file)) {
    attention = data::CsvTable::load(attn_file);
  } else {
    // Device-wide attention profiles (Vidur's historical A100 file) serve any model whose shape
    // and TP degree they hold.
    for (const auto& extra : device_.extra_attention_profiles) {
      data::CsvTable a = data::CsvTable::load(data_root / extra);
      size_t ae = a.column("n_embd"), aq = a.column("n_q_head"), akv = a.column("n_kv_head"),
             atp = a.column("num_tensor_parallel_workers");
      for (size_t r = 0; r < a.num_rows() && !attention; ++r)
        if (a.number(r, ae) == static_cast<double>(model_.embedding_dim) &&
            a.number(r, aq) == static_cast<double>(model_.num_q_heads) &&
            a.number(r, akv) == static_cast<double>(model_.num_kv_heads) && a.number(r, atp) == tp) {
          attn_file = data_root / extra;
          attention = std::move(a);
        }
      if (attention) break;
    }
  }
  if (attention) {
    const data::CsvTable& a = *attention;
    size_t ae = a.column("n_embd"), aq = a.column("n_q_head"), akv = a.column("n_kv_head"),
           atp = a.column("num_tensor_parallel_workers"), ab = a.column("batch_size"),
           ac = a.column("prefill_chunk_size"), ak = a.column("kv_cache_size"), ap = a.column("is_prefill"),
           tpre = a.column(median_col("attn_prefill")), tdec = a.column(median_col("attn_decode"));
    std::set<int64_t> atps;
    std::optional<size_t> tsave;
    if (a.has_column(median_col("attn_kv_cache_save"))) tsave = a.column(median_col("attn_kv_cache_save"));
    std::vector<double> save_x, save_y;
    std::vector<ProfilePoint> prefill_points, decode_points;
    for (size_t r = 0; r < a.num_rows(); ++r) {
      if (a.number(r, ae) != static_cast<double>(model_.embedding_dim) ||
          a.number(r, aq) != static_cast<double>(model_.num_q_heads) ||
          a.number(r, akv) != static_cast<double>(model_.num_kv_heads))
        continue;
      atps.insert(static_cast<int64_t>(a.number(r, atp)));
      if (a.number(r, atp) != tp) continue;
      if (a.cell(r, ap) == "True") {
        prefill_.add(a.number(r, ac), a.number(r, ak), a.number(r, tpre));
        prefill_points.push_back({a.number(r, ac), a.number(r, ak), a.number(r, tpre)});
      } else {
        decode_.add(a.number(r, ab), a.number(r, ak), a.number(r, tdec));
        decode_points.push_back({a.number(r, ab), a.number(r, ak), a.number(r, tdec)});
      }
      if (tsave && !a.empty_cell(r, *tsave)) {
        save_x.push_back(a.number(r, ab) * std::max(1.0, a.number(r, ac)));  // tokens written
        save_y.push_back(a.number(r, *tsave));
      }
    }
    if (!save_x.empty()) kv_save_ = Curve(save_x, save_y);
    // Whole iterations: `forward` on every row (older engine profiles: `decode_forward`, on
    // decode rows).
    for (const char* name : {"forward", "decode_forward"}) {
      if (!a.has_column(median_col(name))) continue;
      size_t tf = a.column(median_col(name));
      for (size_t r = 0; r < a.num_rows(); ++r) {
        if (a.number(r, atp) != tp || a.empty_cell(r, tf) || a.number(r, ae) != static_cast<double>(model_.embedding_dim))
          continue;
        BatchShape b;
        if (a.cell(r, ap) == "True")
          b.prefills.push_back({static_cast<int64_t>(a.number(r, ac)), static_cast<int64_t>(a.number(r, ak))});
        else
          b.decode_contexts.assign(static_cast<size_t>(a.number(r, ab)), static_cast<int64_t>(a.number(r, ak)));
        whole_forwards.emplace_back(std::move(b), a.number(r, tf));
      }
      break;
    }
    if (!atps.count(layout_.tensor_parallel))
      throw std::runtime_error(fmt::format("{}: no attention rows for {} at tensor parallelism {} (profiled: {})",
                                           attn_file.string(), model_.name, layout_.tensor_parallel,
                                           atps.empty() ? std::string("none for this shape") : fmt::format("{}", fmt::join(atps, ", "))));
    prefill_.finish();
    decode_.finish();
    if (prefill_.empty() || decode_.empty())
      throw std::runtime_error(fmt::format("{}: needs both prefill and decode rows", attn_file.string()));
    sources_["attn_prefill"] = sources_["attn_decode"] = "profile " + attn_file.string();
    fit_long_context("attn_prefill", prefill_points, prefill_coef_, prefill_max_kv_);
    fit_long_context("attn_decode", decode_points, decode_coef_, decode_max_kv_);
  } else {
    fit_analytic_attention(data_root);
  }
  sources_["attn_kv_cache_save"] = kv_save_.empty() ? "not profiled (counted as 0, as Vidur does)"
                                                    : "profile " + attn_file.string();

  return attn_file;
}

// Collectives: TP all-reduce inside a node, PP send/recv between stages.
void ExecutionPredictor::load_collectives(const fs::path& net) {
  auto load_collective = [&](const std::string& file, const std::string& op, int64_t workers, int64_t per_node) {
    data::CsvTable t = data::CsvTable::load(net / file);
    size_t cw = t.column("num_workers"), cd = t.column("devices_per_node"), cs = t.column("size"),
           ct = t.column(median_col(op));
    std::vector<double> xs, ys;
    std::set<std::string> have;
    for (size_t r = 0; r < t.num_rows(); ++r) {
      have.insert(fmt::format("{} workers/{} per node", t.number(r, cw), t.number(r, cd)));
      if (t.number(r, cw) != static_cast<double>(workers) || t.number(r, cd) != static_cast<double>(per_node)) continue;
      xs.push_back(t.number(r, cs));
      ys.push_back(t.number(r, ct));
    }
    if (xs.empty())
      throw std::runtime_error(fmt::format("{}: no rows for {} workers with {} per node (profiled: {})",
                                           (net / file).string(), workers, per_node, fmt::join(have, "; ")));
    sources_[op] = "profile " + (net / file).string();
    return Curve(xs, ys);
  };
  if (layout_.tensor_parallel > 1) {
    if (layout_.tensor_parallel > device_.devices_per_node)
      throw std::runtime_error(fmt::format("tensor parallelism {} exceeds the {} GPUs of a {} node",
                                           layout_.tensor_parallel, device_.devices_per_node, device_.name));
    all_reduce_ = load_collective("all_reduce.csv", "all_reduce", layout_.tensor_parallel, layout_.tensor_parallel);
  }
  if (layout_.pipeline_parallel > 1) {
    int64_t per_node = layout_.num_gpus() <= device_.devices_per_node ? 2 : 1;
    send_recv_ = load_collective("send_recv.csv", "send_recv", 2, per_node);
  }
}

// KV-parallel groups merge their partial attention outputs: an all-gather of each query token's
// (output, log-sum-exp) per layer. No profile times an all-gather, and none spans more than the 16
// GPUs of two nodes; the all-reduce profile stands in, at the largest worker count up to the KVP
// degree and the fewest GPUs per node among its rows (KVP groups sit on different nodes): a ring
// all-gather of B bytes per worker moves as much as an all-reduce of K·B/2.
void ExecutionPredictor::load_kvp_merge(const fs::path& file) {
  data::CsvTable t = data::CsvTable::load(file);
  size_t cw = t.column("num_workers"), cd = t.column("devices_per_node"), cs = t.column("size"),
         ct = t.column(median_col("all_reduce"));
  std::pair<double, double> pick{0, 0};  // (workers, per node)
  for (size_t r = 0; r < t.num_rows(); ++r) {
    const double w = t.number(r, cw), d = t.number(r, cd);
    if (w > static_cast<double>(layout_.kv_parallel)) continue;
    if (w > pick.first || (w == pick.first && d < pick.second)) pick = {w, d};
  }
  if (pick.first < 2) throw std::runtime_error(fmt::format("{}: no all-reduce rows for 2 or more workers", file.string()));
  std::vector<double> xs, ys;
  for (size_t r = 0; r < t.num_rows(); ++r)
    if (t.number(r, cw) == pick.first && t.number(r, cd) == pick.second) {
      xs.push_back(t.number(r, cs));
      ys.push_back(t.number(r, ct));
    }
  kvp_merge_ = Curve(xs, ys);
  sources_["kvp_merge"] = fmt::format(
      "profile {} (all-reduce of {} workers, {} per node, at K·B/2 bytes for an all-gather of B bytes per worker; "
      "{} KVP groups)",
      file.string(), pick.first, pick.second, layout_.kv_parallel);
}

// One all-gather per layer for the items of `b` whose KV spans several groups: per query token
// the output of this rank's heads (activations) and a log-sum-exp per head (fp32).
double ExecutionPredictor::kvp_merge_ms(const BatchShape& b) const {
  if (b.kvp_merges.empty()) return 0;
  int64_t tokens = 0, groups = 1;
  for (const auto& m : b.kvp_merges) {
    tokens += m.tokens;
    groups = std::max(groups, m.groups);
  }
  const double heads = static_cast<double>(model_.num_q_heads) / static_cast<double>(layout_.tensor_parallel);
  const double per_worker = static_cast<double>(round_up(tokens, device_.token_rounding)) *
                            (heads * static_cast<double>(model_.head_dim() * model_.activation_bytes) + heads * 4);
  return kvp_merge_.at(static_cast<double>(groups) * per_worker / 2) + kNcclLaunchMs;
}

// Vidur's CPU overheads (its ExecutionTime::_get_cpu_overhead): the medians of scheduling,
// sampling, input preparation and output processing, and the mean Ray messaging time, at the
// batch's size, added to every pipeline stage. Only tables with rows for this model at this TP
// degree count; a profile without them predicts GPU time alone, and the sources say so.
void ExecutionPredictor::load_cpu_overhead(const fs::path& data_root) {
  if (!device_.cpu_overhead) {
    sources_["cpu_overhead"] = "off (hardware.cpu_overhead=false, as Vidur's skip_cpu_overhead_modeling)";
    return;
  }
  static const char* kParts[] = {"schedule_median", "sampler_e2e_median", "prepare_inputs_e2e_median",
                                 "process_model_outputs_median", "ray_comm_time_mean"};
  for (const auto& file : device_.cpu_overhead_profiles) {
    data::CsvTable t = data::CsvTable::load(data_root / file);
    size_t cm = t.column("model_name"), ctp = t.column("tensor_parallel_degree"), cb = t.column("batch_size");
    std::vector<size_t> parts;
    for (const char* part : kParts) parts.push_back(t.column(part));
    std::vector<double> xs, ys;
    for (size_t r = 0; r < t.num_rows(); ++r) {
      if (t.cell(r, cm) != model_.profile_name || t.number(r, ctp) != static_cast<double>(layout_.tensor_parallel)) continue;
      double ms = 0;
      for (size_t c : parts) ms += t.number(r, c);
      xs.push_back(t.number(r, cb));
      ys.push_back(ms);
    }
    if (xs.empty()) continue;
    cpu_overhead_ = Curve(xs, ys);
    sources_["cpu_overhead"] = "profile " + (data_root / file).string() + " (every stage, by batch size)";
    return;
  }
  sources_["cpu_overhead"] = fmt::format(
      "absent: no CPU-overhead table has rows for {} at TP {} (no CPU time is added, but an engine profile's fitted "
      "iteration_overhead)",
      model_.profile_name, layout_.tensor_parallel);
}

void ExecutionPredictor::fit_analytic_attention(const fs::path& data_root) {
  // Reference profiles: every attention.csv under profiles/h200, whose card's measured ceilings
  // are in profiles/h200/reference.yaml.
  fs::path root = data_root / "profiles" / "h200";
  config::ConfigNode ref = config::load_yaml_file(root / "reference.yaml");
  double ref_flops = ref.at_path("bf16_tflops")->as_double() * 1e12;
  double ref_bw = ref.at_path("memory_bandwidth_gbps")->as_double() * 1e9;
  std::vector<std::array<double, 4>> pre, dec;  // (1, flop-seconds, byte-seconds, ms)
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().filename() != "attention.csv") continue;
    ++files;
    data::CsvTable a = data::CsvTable::load(e.path());
    size_t ae = a.column("n_embd"), aq = a.column("n_q_head"), akv = a.column("n_kv_head"),
           atp = a.column("num_tensor_parallel_workers"), ab = a.column("batch_size"),
           ac = a.column("prefill_chunk_size"), ak = a.column("kv_cache_size"), ap = a.column("is_prefill"),
           tpre = a.column(median_col("attn_prefill")), tdec = a.column(median_col("attn_decode"));
    for (size_t r = 0; r < a.num_rows(); ++r) {
      double t = a.number(r, atp);
      AttnShape s{a.number(r, aq) / t, std::ceil(a.number(r, akv) / t), a.number(r, ae) / a.number(r, aq)};
      double kv = a.number(r, ak);
      if (a.cell(r, ap) == "True") {
        double c = a.number(r, ac);
        pre.push_back({1, prefill_flops(s, c, kv) / ref_flops, prefill_bytes(s, c, kv) / ref_bw, a.number(r, tpre)});
      } else {
        double b = a.number(r, ab);
        dec.push_back({1, decode_flops(s, b, kv) / ref_flops, decode_bytes(s, b, kv) / ref_bw, a.number(r, tdec)});
      }
    }
  }
  if (pre.empty() || dec.empty())
    throw std::runtime_error(fmt::format("no attention profile for {} on {}, and no reference profiles under {} to fit "
                                         "the analytic fallback to",
                                         model_.name, device_.name, root.string()));
  fit_roofline(pre, prefill_coef_);
  fit_roofline(dec, decode_coef_);
  std::string how = fmt::format(
      "analytic roofline c0 + a·FLOPs/peak + b·bytes/bandwidth, fitted to {} attention profiles under {} "
      "(prefill: c0={:.4f} ms a={:.2f} b={:.2f}; decode: c0={:.4f} ms a={:.2f} b={:.2f})",
      files, root.string(), prefill_coef_[0], prefill_coef_[1], prefill_coef_[2], decode_coef_[0], decode_coef_[1],
      decode_coef_[2]);
  sources_["attn_prefill"] = sources_["attn_decode"] = how;
}

namespace {
AttnShape shard_shape(const ModelSpec& m, const ReplicaLayout& l) {
  double t = static_cast<double>(l.tensor_parallel);
  return {static_cast<double>(m.num_q_heads) / t, std::ceil(static_cast<double>(m.num_kv_heads) / t),
          static_cast<double>(m.head_dim())};
}
}  // namespace

namespace {
// A row for fit_roofline from a profiled (chunk or batch, kv, ms) point of `kind`.
std::array<double, 4> roofline_row(const AttnShape& s, bool prefill, const std::array<double, 3>& p, double flops,
                                   double bandwidth) {
  return prefill ? std::array<double, 4>{1, prefill_flops(s, p[0], p[1]) / flops, prefill_bytes(s, p[0], p[1]) / bandwidth, p[2]}
                 : std::array<double, 4>{1, decode_flops(s, p[0], p[1]) / flops, decode_bytes(s, p[0], p[1]) / bandwidth, p[2]};
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
}  // namespace

// Attention past the profile's longest context (a 10M-token request against a 128K grid): the
// profiled time at the longest context × how a roofline fitted to this profile's long-context rows
// (kv ≥ 1/32 of the longest) grows from there. The roofline's FLOPs and bytes are exact for any
// context; its three efficiencies are the profile's. Checked as it loads: fitted without the
// longest context and anchored at the next, it predicts the longest context's points (and a
// straight line through the two contexts before does too, for comparison); sources() reports both.
void ExecutionPredictor::fit_long_context(const std::string& op, const std::vector<ProfilePoint>& points, double* coef,
                                          double& max_kv) {
  const bool prefill = op == "attn_prefill";
  const AttnShape shape = shard_shape(model_, layout_);
  const double flops = peak_flops(), bandwidth = device_.memory_bandwidth_gbps * 1e9;
  std::map<double, std::map<double, double>> by_key;  // key -> kv -> ms
  for (const auto& p : points) by_key[p[0]][p[1]] = p[2];
  std::set<double> kvs;
  for (const auto& p : points) kvs.insert(p[1]);
  max_kv = *kvs.rbegin();
  const double floor = max_kv / 32;
  auto fit_upto = [&](double hi, double* c) {
    std::vector<std::array<double, 4>> rows;
    for (const auto& p : points)
      if (p[1] >= floor && p[1] <= hi) rows.push_back(roofline_row(shape, prefill, p, flops, bandwidth));
    fit_roofline(rows, c);
  };
  auto model_ms = [&](const double* c, double key, double kv) {
    auto r = roofline_row(shape, prefill, {key, kv, 0}, flops, bandwidth);
    return c[0] + c[1] * r[1] * 1e3 + c[2] * r[2] * 1e3;
  };
  LongContextCheck check;
  if (kvs.size() >= 3) {
    const double before = *std::prev(kvs.end(), 2), earlier = *std::prev(kvs.end(), 3);
    double held[3];
    fit_upto(before, held);
    std::vector<double> roofline_err, line_err;
    for (const auto& [key, t] : by_key) {
      if (!t.count(max_kv) || !t.count(before) || !t.count(earlier)) continue;
      const double truth = t.at(max_kv), at_before = t.at(before);
      roofline_err.push_back(std::abs(at_before * model_ms(held, key, max_kv) / model_ms(held, key, before) / truth - 1) * 100);
      const double slope = (at_before - t.at(earlier)) / (before - earlier);
      line_err.push_back(std::abs((at_before + slope * (max_kv - before)) / truth - 1) * 100);
    }
    check = {static_cast<int64_t>(roofline_err.size()), before, median(roofline_err),
             roofline_err.empty() ? 0 : *std::max_element(roofline_err.begin(), roofline_err.end()), median(line_err),
             line_err.empty() ? 0 : *std::max_element(line_err.begin(), line_err.end())};
  }
  fit_upto(max_kv, coef);
  long_context_checks_[op] = check;
  sources_[op + "_long_context"] = fmt::format(
      "beyond kv {:.0f} (the profile's longest): the time there × the growth of a roofline c0 + a·FLOPs/peak + "
      "b·bytes/bandwidth fitted to the profile's rows with kv ≥ {:.0f} (c0={:.4f} ms a={:.3f} b={:.3f}); check: fitted "
      "up to kv {:.0f} and anchored there, it predicts the {} points at kv {:.0f} within median {:.1f}%, max {:.1f}% "
      "(a straight line through the two contexts before: median {:.1f}%, max {:.1f}%)",
      max_kv, floor, coef[0], coef[1], coef[2], check.anchor_kv, check.points, max_kv, check.median_error_pct,
      check.max_error_pct, check.line_median_error_pct, check.line_max_error_pct);
}

double ExecutionPredictor::analytic_prefill_ms(double chunk, double kv) const {
  AttnShape s = shard_shape(model_, layout_);
  return prefill_coef_[0] + prefill_coef_[1] * prefill_flops(s, chunk, kv) / peak_flops() * 1e3 +
         prefill_coef_[2] * prefill_bytes(s, chunk, kv) / (device_.memory_bandwidth_gbps * 1e9) * 1e3;
}

double ExecutionPredictor::analytic_decode_ms(double batch, double kv) const {
  AttnShape s = shard_shape(model_, layout_);
  return decode_coef_[0] + decode_coef_[1] * decode_flops(s, batch, kv) / peak_flops() * 1e3 +
         decode_coef_[2] * decode_bytes(s, batch, kv) / (device_.memory_bandwidth_gbps * 1e9) * 1e3;
}

double ExecutionPredictor::attention_ms(const BatchFeatures& f) const {
  bool gqa = model_.num_q_heads > model_.num_kv_heads;
  bool profiled = !prefill_.empty();
  double ms = 0;
  if (f.num_prefills > 0) {
    double chunk = static_cast<double>(f.prefill_chunk), kv = static_cast<double>(f.prefill_kv);
    double p = !profiled ? analytic_prefill_ms(chunk, kv)
               : kv <= prefill_max_kv_ ? prefill_.at(chunk, kv)
                                       : prefill_.at(chunk, prefill_max_kv_) * analytic_prefill_ms(chunk, kv) /
                                             analytic_prefill_ms(chunk, prefill_max_kv_);
    ms += gqa && f.num_prefills > 1 ? p * kGqaBatchingOverhead : p;
  }
  if (f.decode_batch > 0) {
    double b = static_cast<double>(f.decode_batch), kv = static_cast<double>(f.decode_kv);
    double d = !profiled ? analytic_decode_ms(b, kv)
               : kv <= decode_max_kv_ ? decode_.at(b, kv)
                                      : decode_.at(b, decode_max_kv_) * analytic_decode_ms(b, kv) / analytic_decode_ms(b, decode_max_kv_);
    ms += gqa && f.decode_batch > 1 ? d * kGqaBatchingOverhead : d;
  }
  return ms;
}

double ExecutionPredictor::operators_ms(const BatchShape& b, bool last_stage) const {
  BatchFeatures f = batch_features(b, device_.token_rounding, device_.kv_rounding);
  double x = static_cast<double>(f.token_ops_tokens);
  double block = token_total_.at(x) + attention_ms(f) + kv_save_.at(static_cast<double>(f.kv_save_tokens));
  // Collectives are looked up at the batch's tokens rounded up as for the token-level operators,
  // as Vidur does (its predictor's features): on a noisy profile the exact count can land
  // between measured sizes that differ 2x (17-23 tokens against 16 and 24 on the A100's).
  double bytes = static_cast<double>(f.token_ops_tokens * model_.embedding_dim * model_.activation_bytes);
  if (layout_.tensor_parallel > 1) block += 2 * (all_reduce_.at(bytes) + kNcclLaunchMs);
  block += kvp_merge_ms(b);
  double ms = block * static_cast<double>(layers_per_stage_);
  if (!last_stage) ms += send_recv_.at(bytes);
  else ms += lm_head_.at(sequences(b));
  return ms;
}

// Whole iterations against what the operators predict for the same batches, fitted as
// s·operators + c0 + c1·sequences. The scale takes up a machine that ran faster or slower than
// when the profile was taken (a shared host's speed drifts by 10–20% within minutes; as additive
// terms alone, a profile slower than the engine needed a negative overhead). There are two, one
// for iterations with a prompt chunk (compute-bound GEMMs) and one for decode-only iterations
// (they stream the weights from memory): the profile's ratio between the two need not be the
// serving iterations' (a host's neighbours slow one more than the other; in two runs a single
// scale left the calibration's prompt chunks 10–11% fast and its decodes 6–9% slow). c0 is the
// per-iteration cost (scheduling, fork/join, setup), c1 the per-sequence one (sampling, gathers,
// bookkeeping); both are costs, so the fit keeps them non-negative (a negative one made tiny
// batches take no time at all). Per-token costs are the operators' own, and a per-token term
// next to the scale made the fit unstable (the operators grow with tokens). Residuals are
// weighted by 1/√time, between relative errors (which let the many short decodes outvote the few
// long prompt chunks: the fitted times summed to 0.91–0.99 of the iterations they were fitted
// to, and the simulated latencies came out low in 56 of 60 comparisons) and absolute ones (which
// would ignore the short decodes that make up TBT).
void ExecutionPredictor::fit_overhead(const std::vector<std::pair<BatchShape, double>>& iterations_ms,
                                      const std::string& source) {
  if (iterations_ms.empty()) throw std::invalid_argument("fit_overhead: no iterations to fit");
  const auto n = static_cast<Eigen::Index>(iterations_ms.size());
  // Columns: operators of iterations with a prompt chunk, of decode-only ones, 1, sequences.
  Eigen::MatrixXd features(n, 4);
  Eigen::VectorXd target(n);
  std::vector<double> share(static_cast<size_t>(n));  // operators / whole iteration
  bool present[2] = {false, false};  // batches of each kind among the iterations
  for (Eigen::Index i = 0; i < n; ++i) {
    const auto& [b, ms] = iterations_ms[static_cast<size_t>(i)];
    if (!(ms > 0)) throw std::invalid_argument(fmt::format("fit_overhead: iteration {} took {} ms", i, ms));
    const double ops = pass_operators_ms(b), w = 1 / std::sqrt(ms);
    const bool chunk = has_prompt_chunk(b);
    present[chunk ? 0 : 1] = true;
    share[static_cast<size_t>(i)] = ops / ms;
    features.row(i) << (chunk ? ops * w : 0), (chunk ? 0 : ops * w), w,
        sequences(b) * w;
    target(i) = ms * w;
  }
  // Only the kinds present get a scale of their own; a missing one takes the other's.
  std::vector<Eigen::Index> scales;
  for (Eigen::Index kind : {0, 1})
    if (present[kind]) scales.push_back(kind);
  // The best fit among those that leave out any overhead term that would come out negative:
  // trying each subset of the two overheads is the exact constrained fit.
  Eigen::Vector4d c(0, 0, 0, 0);
  double best = std::numeric_limits<double>::infinity();
  for (int keep = 0; keep < 4; ++keep) {  // bit 0: c0, bit 1: c1
    std::vector<Eigen::Index> cols = scales;
    if (keep & 1) cols.push_back(2);
    if (keep & 2) cols.push_back(3);
    Eigen::MatrixXd f(n, static_cast<Eigen::Index>(cols.size()));
    for (size_t j = 0; j < cols.size(); ++j) f.col(static_cast<Eigen::Index>(j)) = features.col(cols[j]);
    const Eigen::VectorXd x = f.colPivHouseholderQr().solve(target);
    const auto k = static_cast<Eigen::Index>(scales.size());
    if (!(x.head(k).array() > 0).all() || (x.tail(x.size() - k).array() < 0).any()) continue;
    const double residual = (f * x - target).squaredNorm();
    if (residual >= best) continue;
    best = residual;
    c.setZero();
    for (size_t j = 0; j < cols.size(); ++j) c(cols[j]) = x(static_cast<Eigen::Index>(j));
  }
  if (!(best < std::numeric_limits<double>::infinity()))
    throw std::invalid_argument(fmt::format("fit_overhead: no positive scale fits the iterations of {}", source));
  operators_scale_ = {present[0] ? c(0) : c(1), present[1] ? c(1) : c(0)};
  overhead_ms_ = {c(2), c(3)};
  // How much of each iteration the operators account for: far from 1 means the profile did not
  // time the operators as the iterations run them (weights hot in cache, a machine busier or
  // quieter than while profiling), and the scales and overhead are standing in for the difference.
  std::sort(share.begin(), share.end());
  sources_["iteration_overhead"] = fmt::format(
      "{} against the operators (which account for {:.2f}–{:.2f} of an iteration, median {:.2f}): {:.4f} × operators "
      "(batches with a prompt chunk; decode-only batches: {:.4f} ×) + {:.4f} ms + {:.5f} ms/sequence",
      source, share.front(), share.back(), share[share.size() / 2], operators_scale_[0], operators_scale_[1],
      overhead_ms_[0], overhead_ms_[1]);
}

double ExecutionPredictor::pass_operators_ms(const BatchShape& b) const {
  const auto inner = static_cast<double>(layout_.pipeline_parallel - 1);
  return (inner > 0 ? inner * operators_ms(b, false) : 0) + operators_ms(b, true);
}

double ExecutionPredictor::pass_time_s(const std::vector<BatchShape>& groups) const {
  double s = 0;
  for (int64_t stage = 0; stage < layout_.pipeline_parallel; ++stage) {
    double slowest = 0;
    for (const auto& g : groups)
      if (g.num_tokens() > 0) slowest = std::max(slowest, stage_time_s(g, stage));
    s += slowest;
  }
  return s;
}

double ExecutionPredictor::stage_time_s(const BatchShape& b, int64_t stage) const {
  const bool last = stage == layout_.pipeline_parallel - 1;
  double ms = operators_scale_[has_prompt_chunk(b) ? 0 : 1] * operators_ms(b, last);
  if (last) ms += overhead_ms_[0] + overhead_ms_[1] * sequences(b);
  ms += cpu_overhead_.at(sequences(b));  // 0 where no table applies
  return std::max(0.0, ms) * 1e-3;
}

double ExecutionPredictor::stage_flops(const BatchShape& b) const {
  double params = static_cast<double>(model_.layer_params()) / static_cast<double>(layout_.tensor_parallel) *
                  static_cast<double>(layers_per_stage_);
  double attn = 0;
  for (const auto& p : b.prefills)
    attn += static_cast<double>(p.chunk) * (static_cast<double>(p.context) + static_cast<double>(p.chunk + 1) / 2);
  for (int64_t c : b.decode_contexts) attn += static_cast<double>(c + 1);
  double heads = static_cast<double>(model_.num_q_heads) / static_cast<double>(layout_.tensor_parallel);
  return 2 * static_cast<double>(b.num_tokens()) * params +
         4 * static_cast<double>(layers_per_stage_) * heads * static_cast<double>(model_.head_dim()) * attn;
}

}  // namespace xp::serving
