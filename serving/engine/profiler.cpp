#include "serving/engine/profiler.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/dist/thread_group.h"
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
  const int tp = model.tensor_parallel();
  auto log = runtime::logger();
  if (!dir.empty()) std::filesystem::create_directories(dir);
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
           fmt::format("{},{},{},{},{},True,{},{}\n", c.num_attention_heads, c.num_key_value_heads, c.hidden_size,
                       c.intermediate_size, c.vocab_size, token_points[i], tp);

  std::string attn = stats_header(kAttnOps) +
                     "n_embd,n_q_head,n_kv_head,block_size,num_tensor_parallel_workers,max_model_len,batch_size,"
                     "prefill_chunk_size,kv_cache_size,is_prefill\n";
  for (size_t i = 0; i < attn_points.size(); ++i) {
    const AttnPoint& p = attn_points[i];
    attn += stats_cells(kAttnOps, stats(attn_ms[i])) +
            fmt::format("{},{},{},16,{},{},{},{},{},{}\n", c.hidden_size, c.num_attention_heads, c.num_key_value_heads, tp,
                        c.max_position_embeddings, p.batch, p.chunk, p.kv, p.chunk > 0 ? "True" : "False");
  }
  if (dir.empty()) return;  // another rank of the shard's group writes
  runtime::write_file_atomic(dir / "mlp.csv", mlp);
  runtime::write_file_atomic(dir / "attention.csv", attn);
  log->info("profiled {} token-level and {} attention points, {} interleaved repetitions each{}", token_points.size(),
              attn_points.size(), grid.repetitions, tp > 1 ? fmt::format(" (tensor-parallel shard of {})", tp) : "");
}

void write_network_profile(const std::vector<int64_t>& all_reduce_workers, bool send_recv, int64_t hidden_size,
                           int64_t max_tokens, int repetitions, const std::filesystem::path& dir) {
  std::vector<size_t> floats;
  for (int64_t rows = 1; rows <= 2 * std::max<int64_t>(1, max_tokens); rows *= 2)
    floats.push_back(static_cast<size_t>(rows * hidden_size));
  // ms[size index] over the repetitions, as rank 0 (or the receiver) timed them.
  auto time_on_threads = [&](int ranks, const std::function<double(dist::ProcessGroup&, std::vector<float>&)>& once) {
    std::vector<std::vector<double>> ms(floats.size());
    dist::run_threads(ranks, dist::Seconds(60), [&](dist::ProcessGroup& g) {
      for (int rep = 0; rep <= repetitions; ++rep)  // the first pass warms up
        for (size_t i = 0; i < floats.size(); ++i) {
          std::vector<float> buffer(floats[i], 1.0f);
          g.barrier();
          const double t = once(g, buffer);
          if (rep > 0 && t >= 0) ms[i].push_back(t);
        }
    });
    return ms;
  };
  auto since_ms = [](std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  auto table = [&](const std::string& op, int workers, const std::vector<std::vector<double>>& ms) {
    std::string rows;
    for (size_t i = 0; i < floats.size(); ++i) {
      const OpTime t = OpTime::of(ms[i]);
      rows += fmt::format("{},{},{},{},{},{},0,{},{},{},{},{}\n", i, t.min, t.max, t.mean, t.median, t.std, workers,
                          floats[i] * sizeof(float), op, workers, workers);
    }
    return rows;
  };
  auto header = [](const std::string& op) {
    return fmt::format(",time_stats.{0}.min,time_stats.{0}.max,time_stats.{0}.mean,time_stats.{0}.median,time_stats.{0}.std,"
                       "rank,num_workers,size,collective,devices_per_node,max_devices_per_node\n", op);
  };
  std::filesystem::create_directories(dir);
  std::string all_reduce = header("all_reduce");
  for (int64_t w : std::set<int64_t>(all_reduce_workers.begin(), all_reduce_workers.end())) {
    if (w < 2) continue;
    const auto ms = time_on_threads(static_cast<int>(w), [&](dist::ProcessGroup& g, std::vector<float>& b) {
      const auto t0 = std::chrono::steady_clock::now();
      g.all_reduce_sum(std::span<float>(b));
      return g.rank() == 0 ? since_ms(t0) : -1.0;
    });
    all_reduce += table("all_reduce", static_cast<int>(w), ms);
  }
  runtime::write_file_atomic(dir / "all_reduce.csv", all_reduce);
  if (!send_recv) return;
  // Timed by the receiver, from the barrier both leave together until the message is in.
  const auto ms = time_on_threads(2, [&](dist::ProcessGroup& g, std::vector<float>& b) {
    const auto t0 = std::chrono::steady_clock::now();
    if (g.rank() == 0) {
      g.send_bytes(std::as_bytes(std::span<const float>(b)), 1);
      return -1.0;
    }
    const std::vector<std::byte> in = g.recv_bytes(0);
    const double t = since_ms(t0);
    if (in.size() != b.size() * sizeof(float)) throw std::logic_error("send_recv profile: message cut short");
    return t;
  });
  runtime::write_file_atomic(dir / "send_recv.csv", header("send_recv") + table("send_recv", 2, ms));
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
  m.activation_bytes = 4;  // f32
  return m;
}

DeviceSpec engine_device_spec(int64_t ranks) {
  DeviceSpec d;
  d.name = d.profile_dir = "cpu";
  d.network_dir = "network/cpu";
  d.fp16_tflops = 0.1;
  d.devices_per_node = ranks;
  d.token_rounding = 1;
  d.kv_rounding = 1;
  return d;
}

}  // namespace xp::serving
