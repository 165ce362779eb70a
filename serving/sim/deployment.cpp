#include "serving/sim/deployment.h"

#include <fmt/format.h>

#include <cmath>

#include "core/config/error.h"

namespace xp::serving {

int64_t ModelSpec::layer_params() const {
  int64_t qkv = embedding_dim * (num_q_heads + 2 * num_kv_heads) * head_dim();
  int64_t out = embedding_dim * embedding_dim;
  int64_t mlp = embedding_dim * mlp_hidden_dim * (use_gated_mlp ? 3 : 2);
  return qkv + out + mlp;
}

ModelSpec ModelSpec::from(const config::ConfigReader& r) {
  ModelSpec m;
  r.get("name", m.name);
  r.get("profile_name", m.profile_name);
  r.get("num_layers", m.num_layers, config::Range::at_least(1));
  r.get("num_q_heads", m.num_q_heads, config::Range::at_least(1));
  r.get("num_kv_heads", m.num_kv_heads, config::Range::at_least(1));
  r.get("embedding_dim", m.embedding_dim, config::Range::at_least(1));
  r.get("mlp_hidden_dim", m.mlp_hidden_dim, config::Range::at_least(1));
  r.get("vocab_size", m.vocab_size, config::Range::at_least(1));
  r.get("use_gated_mlp", m.use_gated_mlp);
  r.get("max_model_len", m.max_model_len, config::Range::at_least(2));
  r.finish();
  if (m.num_q_heads <= 0 || m.num_kv_heads <= 0 || m.embedding_dim % m.num_q_heads != 0)
    throw config::ConfigError("embedding_dim must be a multiple of num_q_heads, both positive", {}, r.path(),
                              "check the model description against the model's config.json");
  return m;
}

DeviceSpec DeviceSpec::from(const config::ConfigReader& r) {
  DeviceSpec d;
  r.get("name", d.name);
  r.get("profile_dir", d.profile_dir);
  r.get("network_dir", d.network_dir);
  r.get("extra_attention_profiles", d.extra_attention_profiles);
  r.get("cpu_overhead", d.cpu_overhead);
  r.get("cpu_overhead_profiles", d.cpu_overhead_profiles);
  r.get("fp16_tflops", d.fp16_tflops, config::Range::positive());
  r.get("memory_gb", d.memory_gb, config::Range::positive());
  r.get("memory_bandwidth_gbps", d.memory_bandwidth_gbps, config::Range::positive());
  r.get("devices_per_node", d.devices_per_node, config::Range::at_least(1));
  r.get("cost_per_hour", d.cost_per_hour, config::Range::non_negative());
  r.get("token_rounding", d.token_rounding, config::Range::at_least(1));
  r.get("kv_rounding", d.kv_rounding, config::Range::at_least(1));
  r.finish();
  return d;
}

std::string ReplicaLayout::label() const {
  return fmt::format("TP{} PP{}{}{}", tensor_parallel, pipeline_parallel, sequence_pipeline_parallel ? " (SPP)" : "",
                     kv_parallel > 1 ? fmt::format(" KVP{}", kv_parallel) : "");
}

int64_t plan_kv_blocks(const ModelSpec& m, const DeviceSpec& d, const ReplicaLayout& l, int64_t block_size,
                       std::string* why) {
  double usable = d.memory_gb * std::pow(1024.0, 3) * (1 - l.memory_margin_fraction);
  double layers_per_stage = static_cast<double>(m.num_layers) / static_cast<double>(l.pipeline_parallel);
  double params = 2.0 * static_cast<double>(m.layer_params()) / static_cast<double>(l.tensor_parallel) * layers_per_stage;
  double kv_heads = std::ceil(static_cast<double>(m.num_kv_heads) / static_cast<double>(l.tensor_parallel));
  double kv_per_token = 2.0 * 2.0 * static_cast<double>(m.head_dim()) * kv_heads * layers_per_stage;
  double free_bytes = usable - params;
  double tokens = free_bytes > 0 ? free_bytes / kv_per_token : 0;
  if (l.kv_parallel > 1 && l.kv_parallel * l.max_tokens_per_kvp_group < m.max_model_len) {
    if (why)
      *why = fmt::format("{} KV-parallel groups of {} tokens hold {} tokens of a request, less than max_model_len {}",
                         l.kv_parallel, l.max_tokens_per_kvp_group, l.kv_parallel * l.max_tokens_per_kvp_group,
                         m.max_model_len);
    return 0;
  }
  const int64_t needed = l.tokens_per_group(m.max_model_len);
  if (tokens < static_cast<double>(needed)) {
    if (why)
      *why = fmt::format("{} on {}×{} ({}): {:.1f} GiB of weights per GPU leave room for {:.0f} KV tokens, less than {}",
                         m.name, l.num_gpus(), d.name, l.label(),
                         params / std::pow(1024.0, 3), std::max(0.0, tokens),
                         l.kv_parallel > 1 ? fmt::format("one group's {} tokens of a {}-token request", needed, m.max_model_len)
                                           : fmt::format("one {}-token request", needed));
    return 0;
  }
  return static_cast<int64_t>(tokens) / block_size;
}

}  // namespace xp::serving
