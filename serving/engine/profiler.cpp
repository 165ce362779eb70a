#include "serving/engine/profiler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/runtime/files.h"
#include "core/runtime/logging.h"

namespace xp::serving {

namespace {

const std::vector<std::string> kTokenOps = {"input_layernorm", "attn_pre_proj",  "attn_rope",
                                            "attn_post_proj",  "post_attention_layernorm", "mlp_up_proj",
                                            "mlp_act",         "mlp_down_proj",  "add", "lm_head"};
const std::vector<std::string> kAttnOps = {"attn_prefill", "attn_decode", "attn_kv_cache_save", "forward"};

std::string stats_header(const std::vector<std::string>& ops) {
  std::string h;
  for (const auto& op : ops)
    for (const char* s : {"min", "max", "mean", "median", "std"}) h += fmt::format("time_stats.{}.{},", op, s);
  return h;
}

std::string stats_cells(const std::vector<std::string>& ops, const std::map<std::string, OpTime>& t) {
  std::string out;
  for (const auto& op : ops) {
    auto it = t.find(op);
    if (it == t.end()) out += ",,,,,";
    else out += fmt::format("{},{},{},{},{},", it->second.min, it->second.max, it->second.mean, it->second.median, it->second.std);
  }
  return out;
}

void write_or_throw(const std::filesystem::path& p, const std::string& text) {
  Status s = runtime::write_file_atomic(p, text);
  if (!s.is_ok()) throw std::runtime_error(s.message());
}

}  // namespace

OpTime OpTime::of(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  OpTime t;
  t.min = ms.front();
  t.max = ms.back();
  t.median = ms[ms.size() / 2];
  for (double v : ms) t.mean += v / static_cast<double>(ms.size());
  for (double v : ms) t.std += (v - t.mean) * (v - t.mean) / static_cast<double>(ms.size());
  t.std = std::sqrt(t.std);
  return t;
}

void write_engine_profile(const LlamaModel& model, const ProfileGrid& grid, const std::filesystem::path& dir) {
  const LlamaConfig& c = model.config();
  auto log = runtime::logger();
  std::filesystem::create_directories(dir);
  // The grid's sizes, and both sides of the linear layers' switch from matrix-vector products
  // to GEMMs, where the cost jumps (interpolating across it, from 8 rows to 16, predicted a
  // 9-row decode 13% fast).
  std::set<int64_t> token_sizes(grid.num_tokens.begin(), grid.num_tokens.end());
  token_sizes.insert({LlamaModel::kMatVecRows, LlamaModel::kMatVecRows + 1});
  std::vector<int64_t> token_points;
  for (int64_t n : token_sizes)
    if (n <= c.max_position_embeddings) token_points.push_back(n);
  struct AttnPoint {
    int64_t batch, chunk, kv;  // chunk > 0: one prefill; chunk = 0: `batch` decodes
  };
  std::vector<AttnPoint> attn_points;
  for (int64_t chunk : grid.prefill_chunks)
    for (int64_t kv : grid.prefill_kv)
      if (chunk + kv <= c.max_position_embeddings) attn_points.push_back({1, chunk, kv});
  for (int64_t b : grid.decode_batches)
    for (int64_t kv : grid.decode_kv)
      if (kv + 1 <= c.max_position_embeddings) attn_points.push_back({b, 0, kv});

  // Repetitions interleaved: each pass times every grid point once, and a point's statistics are
  // taken over the passes. A burst of load from elsewhere on the machine (seconds long) then
  // falls on one repetition of many points, which the median discards, instead of on every
  // repetition of the few points timed back to back while it lasted.
  using Samples = std::map<std::string, std::vector<double>>;  // op -> ms, one per pass
  std::vector<Samples> token_ms(token_points.size()), attn_ms(attn_points.size());
  auto add = [](Samples& to, const std::map<std::string, double>& one_rep) {
    for (const auto& [op, ms] : one_rep) to[op].push_back(ms);
  };
  for (int pass = 0; pass < grid.repetitions; ++pass) {
    // Token-level operators: `n` sequences of one token each, so the layers see `n` rows and the
    // LM head `n` sequences; the CSV keeps the columns it has (kTokenOps).
    for (size_t i = 0; i < token_points.size(); ++i) add(token_ms[i], model.profile_forward(token_points[i], 1, 0));
    for (size_t i = 0; i < attn_points.size(); ++i) {
      const AttnPoint& p = attn_points[i];
      auto t = model.profile_forward(p.batch, std::max<int64_t>(p.chunk, 1), p.kv);
      t[p.chunk > 0 ? "attn_prefill" : "attn_decode"] = t.at("attention");
      add(attn_ms[i], t);
    }
  }
  auto stats = [](const Samples& ms) {
    std::map<std::string, OpTime> out;
    for (const auto& [op, v] : ms) out[op] = OpTime::of(v);
    return out;
  };

  std::string mlp = stats_header(kTokenOps) +
                    "n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,num_tensor_parallel_workers\n";
  for (size_t i = 0; i < token_points.size(); ++i)
    mlp += stats_cells(kTokenOps, stats(token_ms[i])) +
           fmt::format("{},{},{},{},{},True,{},1\n", c.num_attention_heads, c.num_key_value_heads, c.hidden_size,
                       c.intermediate_size, c.vocab_size, token_points[i]);
  write_or_throw(dir / "mlp.csv", mlp);

  std::string attn = stats_header(kAttnOps) +
                     "n_embd,n_q_head,n_kv_head,block_size,num_tensor_parallel_workers,max_model_len,batch_size,"
                     "prefill_chunk_size,kv_cache_size,is_prefill\n";
  for (size_t i = 0; i < attn_points.size(); ++i) {
    const AttnPoint& p = attn_points[i];
    attn += stats_cells(kAttnOps, stats(attn_ms[i])) +
            fmt::format("{},{},{},16,1,{},{},{},{},{}\n", c.hidden_size, c.num_attention_heads, c.num_key_value_heads,
                        c.max_position_embeddings, p.batch, p.chunk, p.kv, p.chunk > 0 ? "True" : "False");
  }
  write_or_throw(dir / "attention.csv", attn);
  log->info("profiled {} token-level and {} attention points, {} interleaved repetitions each", token_points.size(),
            attn_points.size(), grid.repetitions);
}

ModelSpec engine_model_spec(const LlamaConfig& c) {
  ModelSpec m;
  m.name = m.profile_name = "engine";
  m.num_layers = c.num_hidden_layers;
  m.num_q_heads = c.num_attention_heads;
  m.num_kv_heads = c.num_key_value_heads;
  m.embedding_dim = c.hidden_size;
  m.mlp_hidden_dim = c.intermediate_size;
  m.vocab_size = c.vocab_size;
  m.max_model_len = c.max_position_embeddings;
  return m;
}

DeviceSpec engine_device_spec() {
  DeviceSpec d;
  d.name = d.profile_dir = "cpu";
  d.fp16_tflops = 0.1;
  d.devices_per_node = 1;
  d.token_rounding = 1;
  d.kv_rounding = 1;
  return d;
}

}  // namespace xp::serving
