// The CUDA engine on a Llama-2-7B-shaped bf16 model with random weights made on the device (or
// on a model folder), for bench/engine_cuda.sh: milliseconds per decode step at batch 1, 8 and
// 32 over 512-token contexts, milliseconds for a 4096-token prefill, and the card's own limits
// measured in the same run (device-to-device copy rate, cuBLAS bf16 GEMM rate), as one JSON
// object. Decode steps read the KV cache of a 512-token context; its values (zeros) do not
// change the work, so no prompt is prefilled first.
//   bench_engine_cuda [--layers N] [MODEL_DIR]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "serving/model/cuda/kernels.h"
#include "serving/model/llama_cuda.h"

using namespace xp::serving;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kBlock = 16, kContext = 512, kSteps = 32, kPrefill = 4096, kMaxBatch = 32;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// Wall-clock milliseconds per decode step (logits copied back each step, as the engine does).
double decode_ms(LlamaCudaModel& m, int64_t batch) {
  const int64_t per = (kContext + kSteps + 3 + kBlock - 1) / kBlock;
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < per; ++i) tables[static_cast<size_t>(b)].push_back(static_cast<int32_t>(b * per + i));
  std::vector<int32_t> next(static_cast<size_t>(batch), 2);
  auto step = [&](int64_t s) {
    std::vector<ForwardItem> items;
    for (int64_t b = 0; b < batch; ++b)
      items.push_back({std::span<const int32_t>(&next[static_cast<size_t>(b)], 1), kContext + s, &tables[static_cast<size_t>(b)]});
    m.forward(items);
  };
  for (int64_t s = 0; s < 3; ++s) step(s);  // warm-up
  auto t0 = Clock::now();
  for (int64_t s = 3; s < kSteps + 3; ++s) step(s);
  return ms_since(t0) / kSteps;
}

double prefill_ms(LlamaCudaModel& m) {
  std::vector<int32_t> table, prompt(static_cast<size_t>(kPrefill));
  for (int64_t i = 0; i < kPrefill / kBlock; ++i) table.push_back(static_cast<int32_t>(i));
  for (int64_t i = 0; i < kPrefill; ++i) prompt[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % m.config().vocab_size);
  std::vector<ForwardItem> item = {{std::span<const int32_t>(prompt), 0, &table}};
  m.forward(item);
  auto t0 = Clock::now();
  for (int r = 0; r < 3; ++r) m.forward(item);
  return ms_since(t0) / 3;
}

// Bytes per second our matrix-vector kernel and cuBLAS stream for one row through a decode
// step's weight shapes (fused q/k/v, output, fused gate/up, down).
std::pair<double, double> gemv_rates(const LlamaConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.num_attention_heads * c.head_dim();
  const int64_t shapes[4][2] = {{hd + 2 * c.num_key_value_heads * c.head_dim(), H}, {H, hd}, {2 * I, H}, {H, I}};
  double bytes = 0, ours = 0, cublas = 0;
  for (const auto& s : shapes) {
    const int64_t n = s[0], k = s[1];
    auto* w = static_cast<uint16_t*>(cuda::alloc(static_cast<size_t>(n * k) * 2));
    auto* x = static_cast<uint16_t*>(cuda::alloc(static_cast<size_t>(k) * 2));
    auto* out = static_cast<float*>(cuda::alloc(static_cast<size_t>(n) * 4));
    cuda::fill_uniform_bf16(w, n * k, 0.01f, 3);
    cuda::fill_uniform_bf16(x, k, 1.0f, 4);
    auto time = [&](auto gemm) {
      float sink;
      for (int r = 0; r < 3; ++r) gemm(x, w, out, 1, n, k, false);
      cuda::copy_to_host(&sink, out, 4);
      auto t0 = Clock::now();
      for (int r = 0; r < 50; ++r) gemm(x, w, out, 1, n, k, false);
      cuda::copy_to_host(&sink, out, 4);
      return ms_since(t0) / 50 / 1e3;
    };
    ours += time(cuda::gemm);
    cublas += time(cuda::gemm_cublas);
    bytes += 2.0 * static_cast<double>(n * k);
    cuda::release(w);
    cuda::release(x);
    cuda::release(out);
  }
  return {bytes / ours, bytes / cublas};
}

// One layer's ops, timed one by one on the kernels the model runs (milliseconds, as "name": ms
// JSON members): a `rows`-token prefill when rows == context, else `rows` decodes over
// `context` keys each. Where a forward pass's time goes.
std::string layer_ops(const LlamaConfig& c, int64_t rows, int64_t context) {
  const int64_t T = rows, H = c.hidden_size, I = c.intermediate_size, d = c.head_dim();
  const int64_t hq = c.num_attention_heads, hkv = c.num_key_value_heads, nqkv = (hq + 2 * hkv) * d;
  const bool prefill = rows == context;
  const int64_t seqs = prefill ? 1 : rows, per_seq = (context + kBlock - 1) / kBlock, slots = seqs * per_seq * kBlock;
  std::vector<void*> owned;
  auto buffer = [&](int64_t bytes) {
    owned.push_back(cuda::alloc(static_cast<size_t>(bytes)));
    cuda::zero(owned.back(), static_cast<size_t>(bytes));
    return owned.back();
  };
  auto weight = [&](int64_t n, int64_t k) {
    auto* w = static_cast<uint16_t*>(buffer(n * k * 2));
    cuda::fill_uniform_bf16(w, n * k, 1.0f / std::sqrt(static_cast<float>(k)), static_cast<uint64_t>(n * k));
    return w;
  };
  auto *x = static_cast<float*>(buffer(T * H * 4)), *qkv = static_cast<float*>(buffer(T * nqkv * 4));
  auto* gu = static_cast<float*>(buffer(T * 2 * I * 4));
  auto *xn = static_cast<uint16_t*>(buffer(T * H * 2)), *attn = static_cast<uint16_t*>(buffer(T * hq * d * 2));
  auto *act = static_cast<uint16_t*>(buffer(T * I * 2)), *kc = static_cast<uint16_t*>(buffer(slots * hkv * d * 2));
  auto* vc = static_cast<uint16_t*>(buffer(slots * hkv * d * 2));
  auto *wqkv = weight(nqkv, H), *wo = weight(H, hq * d), *wgu = weight(2 * I, H), *wdown = weight(H, I);
  cuda::fill_f32(x, T * H, 1.0f);
  cuda::fill_uniform_bf16(act, T * I, 1.0f, 6);
  auto freq = c.rope_inverse_frequencies();
  auto* inv_freq = static_cast<float*>(buffer(static_cast<int64_t>(freq.size()) * 4));
  cuda::copy_to_device(inv_freq, freq.data(), freq.size() * 4);
  // Sequence s owns blocks s·per_seq.. ; a prefill's rows are positions 0..T-1 of sequence 0,
  // decode row s is position context-1 of sequence s.
  std::vector<int32_t> pos, slot, offset, table, tile_first, tile_rows, decode_rows;
  for (int64_t r = 0; r < T; ++r) {
    int64_t s = prefill ? 0 : r, p = prefill ? r : context - 1;
    pos.push_back(static_cast<int32_t>(p));
    slot.push_back(static_cast<int32_t>(s * per_seq * kBlock + p));
    offset.push_back(static_cast<int32_t>(s * per_seq));
    if (!prefill) decode_rows.push_back(static_cast<int32_t>(r));
  }
  for (int64_t i = 0; i < seqs * per_seq; ++i) table.push_back(static_cast<int32_t>(i));
  for (int64_t r = 0; prefill && r < T; r += cuda::kTileRows) {
    tile_first.push_back(static_cast<int32_t>(r));
    tile_rows.push_back(static_cast<int32_t>(std::min(cuda::kTileRows, T - r)));
  }
  std::vector<int32_t> meta;
  std::vector<size_t> at;
  for (const auto* part : {&pos, &slot, &offset, &table, &tile_first, &tile_rows, &decode_rows}) {
    at.push_back(meta.size());
    meta.insert(meta.end(), part->begin(), part->end());
  }
  auto* dm = static_cast<int32_t*>(buffer(static_cast<int64_t>(meta.size()) * 4));
  cuda::copy_to_device(dm, meta.data(), meta.size() * 4);
  const int64_t splits = prefill ? 1 : (context + 63) / 64;  // as the model splits (up to 4096 keys)
  auto* partial = static_cast<float*>(buffer(T * hq * splits * (d + 2) * 4));
  auto* counters = static_cast<int*>(buffer(T * hq * 4));
  cuda::AttentionWork work{dm + at[0], dm + at[2], dm + at[3], dm + at[4], dm + at[5],
                           static_cast<int64_t>(tile_first.size()), dm + at[6], static_cast<int64_t>(decode_rows.size()),
                           splits, 64};
  auto time_ms = [](auto f) {
    f();
    cuda::synchronize();
    auto t0 = Clock::now();
    for (int r = 0; r < 20; ++r) f();
    cuda::synchronize();
    return ms_since(t0) / 20;
  };
  std::string out;
  auto add = [&](const char* name, double ms) {
    out += (out.empty() ? "" : ", ") + std::string("\"") + name + "\": " + std::to_string(ms);
  };
  add("rmsnorm + gemm qkv + rope + kv write", time_ms([&] {
        cuda::norm_gemm_qkv_rope(x, 1e-5f, xn, wqkv, qkv, T, H, dm + at[0], dm + at[1], hq, hkv, d, inv_freq, kc, vc);
      }));
  add("attention", time_ms([&] { cuda::attention(qkv, kc, vc, attn, partial, counters, work, hq, hkv, d, kBlock); }));
  add("gemm o", time_ms([&] { cuda::gemm(attn, wo, x, T, H, hq * d, true); }));
  add("rmsnorm + gemm gate_up + swiglu", time_ms([&] { cuda::norm_gemm_swiglu(x, 1e-5f, xn, wgu, gu, act, T, I, H); }));
  add("gemm down", time_ms([&] { cuda::gemm(act, wdown, x, T, H, I, true); }));
  for (void* p : owned) cuda::release(p);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  LlamaConfig c;  // Llama-2-7B: hidden 4096, MLP 11008, 32 layers, 32 heads, vocab 32000
  std::string model_dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--layers" && i + 1 < argc) c.num_hidden_layers = std::atoll(argv[++i]);
    else model_dir = a;
  }
  if (!llama_cuda_available()) {
    std::fprintf(stderr, "bench_engine_cuda: no CUDA device is visible\n");
    return 2;
  }
  const int64_t blocks = std::max(kMaxBatch * ((kContext + kSteps + 3 + kBlock - 1) / kBlock), kPrefill / kBlock);
  std::unique_ptr<LlamaCudaModel> m;
  if (model_dir.empty()) {
    m = std::make_unique<LlamaCudaModel>(c, 1, blocks, kBlock);
  } else {
    auto cpu = LlamaModel::load(model_dir);
    c = cpu->config();
    m = std::make_unique<LlamaCudaModel>(*cpu, blocks, kBlock);
  }
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double d = static_cast<double>(c.head_dim()), hq = static_cast<double>(c.num_attention_heads);
  const double hkv = static_cast<double>(c.num_key_value_heads), L = static_cast<double>(c.num_hidden_layers);
  const double layer_params = H * (hq + 2 * hkv) * d + hq * d * H + 3 * H * I;
  // A decode step reads every bf16 weight once (the embedding table aside: one row).
  const double weight_bytes = 2.0 * (L * layer_params + static_cast<double>(c.vocab_size) * H);
  // Prefill work: every token through every layer, causal attention (QKᵀ and PV), one LM-head row.
  const double T = static_cast<double>(kPrefill);
  const double prefill_flops = 2.0 * T * L * layer_params + 4.0 * hq * d * T * (T + 1) / 2 * L +
                               2.0 * H * static_cast<double>(c.vocab_size);
  double b1 = decode_ms(*m, 1), b8 = decode_ms(*m, 8), b32 = decode_ms(*m, 32), pf = prefill_ms(*m);
  const int64_t replays = m->graph_replays();
  m.reset();  // free the card for the probes
  const std::string prefill_ops = layer_ops(c, kPrefill, kPrefill), decode_ops = layer_ops(c, 1, kContext + kSteps);
  double copy = cuda::copy_bytes_per_second(), gemm = cuda::bf16_gemm_flops_per_second(8192);
  auto [gemv_ours, gemv_cublas] = gemv_rates(c);
  std::printf("{\"layers\": %lld, \"graph_replays\": %lld, \"prefill_layer_ms\": {%s}, \"decode_b1_layer_ms\": {%s}, \"decode_b1_ms\": %.3f, \"decode_b8_ms\": %.3f, \"decode_b32_ms\": %.3f, "
              "\"prefill_4096_ms\": %.2f, \"weight_bytes\": %.4g, \"prefill_flops\": %.4g, \"copy_bytes_per_s\": %.4g, "
              "\"gemm_flops_per_s\": %.4g, \"gemv_bytes_per_s\": %.4g, \"cublas_gemv_bytes_per_s\": %.4g}\n",
              static_cast<long long>(c.num_hidden_layers), static_cast<long long>(replays), prefill_ops.c_str(),
              decode_ops.c_str(), b1, b8, b32, pf, weight_bytes, prefill_flops, copy, gemm,
              gemv_ours, gemv_cublas);
  return 0;
}
