// What is being simulated: the model, the device, and how a replica is laid out (TP × PP).
// Model and hardware descriptions are config files (configs/model/, configs/hardware/).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config/reader.h"

namespace xp::serving {

struct ModelSpec {
  std::string name;             // e.g. Mistral-7B-v0.1
  std::string profile_name;     // folder under a profile root: <org>/<model>
  int64_t num_layers = 32;
  int64_t num_q_heads = 32;
  int64_t num_kv_heads = 32;
  int64_t embedding_dim = 4096;
  int64_t mlp_hidden_dim = 11008;
  int64_t vocab_size = 32000;
  bool use_gated_mlp = true;
  int64_t max_model_len = 4096;  // longest sequence served (prompt + output)
  // Bytes per activation element in the messages between GPUs (TP all-reduce, stage transfers,
  // the KVP merge): fp16 as Vidur assumes; the CPU engine's f32 is 4.
  int64_t activation_bytes = 2;

  int64_t head_dim() const { return embedding_dim / num_q_heads; }
  // Weights of one layer (QKV, O, MLP), all shards together.
  int64_t layer_params() const;
  static ModelSpec from(const config::ConfigReader& r);
};

struct DeviceSpec {
  std::string name;                  // a100 | h100 | h200 | ...
  std::string profile_dir;           // token-level/attention profiles, relative to the data folder
  std::string network_dir;           // collective profiles (all_reduce.csv, send_recv.csv)
  std::vector<std::string> extra_attention_profiles;  // searched when the model folder has none
  // Vidur's per-iteration CPU overheads (scheduling, input preparation, sampling, output
  // processing, Ray messaging) by batch size, from cpu_overheads.csv tables searched for the
  // model and TP degree; added to every stage as Vidur does. Off = Vidur's default
  // (skip_cpu_overhead_modeling); where no table has rows, predictor_sources says so.
  bool cpu_overhead = true;
  std::vector<std::string> cpu_overhead_profiles;
  double fp16_tflops = 312;          // dense bf16/fp16 peak
  double memory_gb = 80;
  double memory_bandwidth_gbps = 2039;
  int64_t devices_per_node = 4;
  double cost_per_hour = 0;          // $/GPU-hour, for QPS per dollar
  int64_t token_rounding = 8;        // batch tokens round up to this before the lookup (Vidur: 8)
  int64_t kv_rounding = 64;          // KV lengths round up to this (Vidur: 64)
  static DeviceSpec from(const config::ConfigReader& r);
};

// Mnemosyne's 3D layout (docs/mnemosyne.md): TP × PP (with or without sequence pipelining) ×
// KV-parallel groups, TP × PP GPUs each.
struct ReplicaLayout {
  int64_t tensor_parallel = 1;
  int64_t pipeline_parallel = 1;
  bool sequence_pipeline_parallel = false;  // Mnemosyne's SPP; needs pipeline_parallel > 1
  int64_t kv_parallel = 1;                  // KVP groups, each holding a contiguous slice of a request's KV
  int64_t max_tokens_per_kvp_group = 1 << 20;  // the slice (with kv_parallel > 1; Vajra's 1M default)
  double memory_margin_fraction = 0.1;  // Vidur's planner keeps 10% of device memory free
  int64_t num_gpus() const { return tensor_parallel * pipeline_parallel * kv_parallel; }
  std::string label() const;  // "TP2 PP4", "TP1 PP4 (SPP) KVP16"
  // Tokens of one request one group's GPUs must hold: all of them without KVP.
  int64_t tokens_per_group(int64_t max_model_len) const {
    return kv_parallel > 1 ? std::min(max_model_len, max_tokens_per_kvp_group) : max_model_len;
  }
};

// Vidur's memory planner: KV blocks one replica holds in each KV-parallel group (one GPU's
// cache per stage). Returns 0 (and sets `why`) when the model's weights do not leave room for a
// single max-length request (its share of one group, under KVP) or the groups cannot hold it.
int64_t plan_kv_blocks(const ModelSpec& m, const DeviceSpec& d, const ReplicaLayout& l, int64_t block_size,
                       std::string* why);

}  // namespace xp::serving
