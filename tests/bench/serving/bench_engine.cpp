// The engine's CPU throughput on a model folder, for bench/engine_cpu.sh: decode tokens/s at
// batch 1, 8 and 32 (after a 128-token prompt), prefill tokens/s for a 512-token prompt, and
// this machine's memory bandwidth (STREAM triad), printed as one JSON object.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "serving/model/llama.h"

using namespace xp::serving;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Triad a = b + s·c over arrays far larger than the caches; counts bytes read and written.
double triad_gbps() {
  const size_t n = 1 << 25;  // 32 Mi floats = 128 MiB per array
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
    best = std::max(best, 3.0 * 4.0 * static_cast<double>(n) / seconds_since(t0) / 1e9);
  }
  return best + 0 * a[n / 2];
}

double decode_tok_s(const LlamaModel& m, int64_t batch, int64_t prompt, int64_t steps) {
  const int64_t bs = 16, blocks_per_seq = (prompt + steps + bs - 1) / bs;
  KvCache cache(m.config(), batch * blocks_per_seq, bs);
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch)), prompts(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < blocks_per_seq; ++i) tables[static_cast<size_t>(b)].push_back(static_cast<int32_t>(b * blocks_per_seq + i));
    for (int64_t i = 0; i < prompt; ++i) prompts[static_cast<size_t>(b)].push_back(static_cast<int32_t>((b * 31 + i * 7) % m.config().vocab_size));
    m.forward({{std::span<const int32_t>(prompts[static_cast<size_t>(b)]), 0, &tables[static_cast<size_t>(b)]}}, cache);
  }
  std::vector<int32_t> next(static_cast<size_t>(batch), 1);
  auto t0 = Clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<ForwardItem> items;
    for (int64_t b = 0; b < batch; ++b)
      items.push_back({std::span<const int32_t>(&next[static_cast<size_t>(b)], 1), prompt + s, &tables[static_cast<size_t>(b)]});
    auto logits = m.forward(items, cache);
    for (int64_t b = 0; b < batch; ++b) {
      next[static_cast<size_t>(b)] = static_cast<int32_t>(std::max_element(logits.begin() + b * m.config().vocab_size,
                                                                           logits.begin() + (b + 1) * m.config().vocab_size) -
                                                          (logits.begin() + b * m.config().vocab_size));
    }
  }
  return static_cast<double>(batch * steps) / seconds_since(t0);
}

double prefill_tok_s(const LlamaModel& m, int64_t tokens, int reps) {
  KvCache cache(m.config(), (tokens + 15) / 16, 16);
  std::vector<int32_t> table, prompt;
  for (int64_t i = 0; i < (tokens + 15) / 16; ++i) table.push_back(static_cast<int32_t>(i));
  for (int64_t i = 0; i < tokens; ++i) prompt.push_back(static_cast<int32_t>(i % m.config().vocab_size));
  m.forward({{std::span<const int32_t>(prompt), 0, &table}}, cache);  // warm-up
  auto t0 = Clock::now();
  for (int r = 0; r < reps; ++r) m.forward({{std::span<const int32_t>(prompt), 0, &table}}, cache);
  return static_cast<double>(tokens * reps) / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_engine MODEL_DIR [THREADS]\n");
    return 2;
  }
  int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  set_num_threads(threads);
  auto model = LlamaModel::load(argv[1]);
  const auto& c = model->config();
  double weight_bytes = 4.0 * static_cast<double>(
      c.vocab_size * c.hidden_size * 2 + c.num_hidden_layers * (2 * c.hidden_size * c.hidden_size +
      2 * c.hidden_size * c.num_key_value_heads * c.head_dim() + 3 * c.hidden_size * c.intermediate_size));
  double kv_bytes_per_token = 4.0 * 2 * static_cast<double>(c.num_hidden_layers * c.num_key_value_heads * c.head_dim());
  double bw = triad_gbps();
  double d1 = decode_tok_s(*model, 1, 128, 64), d8 = decode_tok_s(*model, 8, 128, 32), d32 = decode_tok_s(*model, 32, 128, 16);
  double p512 = prefill_tok_s(*model, 512, 3);
  // Bytes one batch-1 decode step reads: every weight (embedding row aside) and the KV so far.
  double bytes = weight_bytes - 4.0 * static_cast<double>(c.vocab_size * c.hidden_size) + kv_bytes_per_token * (128 + 32);
  std::printf("{\"decode_b1\": %.2f, \"decode_b8\": %.2f, \"decode_b32\": %.2f, \"prefill_512\": %.2f, "
              "\"triad_gbps\": %.2f, \"b1_bandwidth_fraction\": %.3f}\n",
              d1, d8, d32, p512, bw, d1 * bytes / (bw * 1e9));
  return 0;
}
