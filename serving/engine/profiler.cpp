#include "serving/engine/profiler.h"

#include <fmt/format.h>

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

void write_engine_profile(const LlamaModel& model, const ProfileGrid& grid, const std::filesystem::path& dir) {
  const LlamaConfig& c = model.config();
  auto log = runtime::logger();
  std::filesystem::create_directories(dir);
  std::string mlp = stats_header(kTokenOps) +
                    "n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,num_tensor_parallel_workers\n";
  for (int64_t n : grid.num_tokens) {
    if (n > c.max_position_embeddings) continue;
    mlp += stats_cells(kTokenOps, model.profile_token_ops(n, grid.repetitions)) +
           fmt::format("{},{},{},{},{},True,{},1\n", c.num_attention_heads, c.num_key_value_heads, c.hidden_size,
                       c.intermediate_size, c.vocab_size, n);
  }
  write_or_throw(dir / "mlp.csv", mlp);
  log->info("profiled token-level operators at {} sizes", grid.num_tokens.size());

  std::string attn = stats_header(kAttnOps) +
                     "n_embd,n_q_head,n_kv_head,block_size,num_tensor_parallel_workers,max_model_len,batch_size,"
                     "prefill_chunk_size,kv_cache_size,is_prefill\n";
  auto row = [&](const std::map<std::string, OpTime>& t, int64_t batch, int64_t chunk, int64_t kv) {
    attn += stats_cells(kAttnOps, t) + fmt::format("{},{},{},16,1,{},{},{},{},{}\n", c.hidden_size, c.num_attention_heads,
                                                   c.num_key_value_heads, c.max_position_embeddings, batch, chunk, kv,
                                                   chunk > 0 ? "True" : "False");
  };
  auto profile = [&](int64_t batch, int64_t chunk, int64_t kv) {
    auto t = model.profile_attention(batch, chunk, kv, grid.repetitions);
    t["forward"] = model.profile_forward(batch, chunk, kv, grid.repetitions);
    row(t, batch, chunk, kv);
  };
  for (int64_t chunk : grid.prefill_chunks)
    for (int64_t kv : grid.prefill_kv)
      if (chunk + kv <= c.max_position_embeddings) profile(1, chunk, kv);
  for (int64_t b : grid.decode_batches)
    for (int64_t kv : grid.decode_kv)
      if (kv + 1 <= c.max_position_embeddings) profile(b, 0, kv);
  write_or_throw(dir / "attention.csv", attn);
  log->info("profiled attention at {} prefill and {} decode points", grid.prefill_chunks.size() * grid.prefill_kv.size(),
            grid.decode_batches.size() * grid.decode_kv.size());
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
