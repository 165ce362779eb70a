// Profile mode: the engine measures its own operators over the simulator's grid and writes
// Vidur-layout mlp.csv and attention.csv for (device, model, TP degree), so the simulator can be
// calibrated on this engine (docs/architecture.md), and the collectives among its ranks as threads.
// Extra columns beyond Vidur's: `lm_head` in mlp.csv (final norm + LM head per iteration, keyed
// by sequences), `attn_kv_cache_save`, and `forward` (the whole iteration of each attention row,
// prefill and decode alike, from which the predictor learns the per-iteration overhead the
// operators miss); Vidur's own predictor ignores what it does not know.
#pragma once
#include <filesystem>
#include <vector>

#include "serving/model/llama.h"
#include "serving/sim/deployment.h"

namespace xp::serving {

// One operator's times over the profile's repetitions, as Vidur's columns hold them.
struct OpTime {
  double min = 0, max = 0, mean = 0, median = 0, std = 0;  // milliseconds
  static OpTime of(std::vector<double> ms);                 // the statistics of `ms` (not empty)
};

struct ProfileGrid {
  std::vector<int64_t> num_tokens = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048};
  std::vector<int64_t> prefill_chunks = {16, 32, 64, 128, 256, 512, 1024};
  std::vector<int64_t> prefill_kv = {0, 256, 1024, 2048};
  std::vector<int64_t> decode_batches = {1, 2, 4, 8, 16, 32, 64};
  std::vector<int64_t> decode_kv = {64, 256, 1024, 2048};
  int repetitions = 5;  // passes over the whole grid (interleaved, so a burst of load hits one)
};

// Writes <dir>/mlp.csv and <dir>/attention.csv (atomically); grid points past the model's
// context are skipped. A tensor-parallel shard's rows are for its degree; every rank of its group
// calls this alike, and those given an empty `dir` profile without writing.
void write_engine_profile(const LlamaModel& model, const ProfileGrid& grid, const std::filesystem::path& dir);

// The engine's "network" when its ranks are threads of one process: the all-reduce of
// `all_reduce_workers` ranks (tensor parallelism's, and the stand-in for KV parallelism's merge)
// and, with `send_recv`, a transfer between two ranks (pipeline stages), over messages of
// `hidden_size` × 2^k floats up to `max_tokens` × 2 rows. Written in Vidur's network layout to
// <dir>/all_reduce.csv and <dir>/send_recv.csv, `size` in bytes (4 per float: the engine's
// ModelSpec::activation_bytes), each rank count on one "node".
void write_network_profile(const std::vector<int64_t>& all_reduce_workers, bool send_recv, int64_t hidden_size,
                           int64_t max_tokens, int repetitions, const std::filesystem::path& dir);

// The simulator's view of this engine: the model as a ModelSpec whose profiles live under
// "engine", on one CPU "device" whose profiles live under "cpu" — write the profile to
// <root>/cpu/engine and give the predictor <root>. A CPU's cost grows with every token and KV
// entry, so there is no GPU tile rounding.
ModelSpec engine_model_spec(const LlamaConfig& c);
// `ranks` threads of this process (the network profile under <root>/network/cpu).
DeviceSpec engine_device_spec(int64_t ranks = 1);

}  // namespace xp::serving
