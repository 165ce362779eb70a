#include "serving/model/llama_cuda.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "core/runtime/logging.h"
#include "core/tensor/tensor.h"
#include "serving/model/cuda/kernels.h"

namespace xp::serving {
namespace {

// A device allocation that grows as needed.
class DeviceArray {
 public:
  DeviceArray() = default;
  ~DeviceArray() { cuda::release(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  void* reserve(size_t bytes) {
    if (bytes > cap_) {
      cuda::release(p_);
      p_ = cuda::alloc(bytes);
      cap_ = bytes;
    }
    return p_;
  }
  // As reserve, and all zero whenever it is allocated (users keep it zero after).
  void* reserve_zeroed(size_t bytes) {
    size_t before = cap_;
    reserve(bytes);
    if (cap_ != before) cuda::zero(p_, cap_);
    return p_;
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

// Prefill chunks shorter than this run on the per-row decode kernel (a tile would be mostly padding).
constexpr int32_t kMinTileTokens = 16;
// Decode contexts split into ranges of this many keys, at most kMaxSplits of them.
constexpr int64_t kKeysPerSplit = 64, kMaxSplits = 64;

template <class T>
T* upload(DeviceArray& a, const std::vector<T>& host) {
  a.reserve(host.size() * sizeof(T));
  cuda::copy_to_device(a.as<void>(), host.data(), host.size() * sizeof(T));
  return a.as<T>();
}

std::vector<uint16_t> bf16_bits(const tensor::Tensor& t) {
  tensor::Tensor b = t.to(tensor::DType::kBF16).contiguous();
  std::vector<uint16_t> out(static_cast<size_t>(b.numel()));
  std::memcpy(out.data(), b.raw_data(), out.size() * 2);
  return out;
}

// matrix[n, c] · norm[c]: an RMSNorm's weight folded into the matrix that follows it.
tensor::Tensor columns_scaled(const tensor::Tensor& matrix, const tensor::Tensor& norm) {
  tensor::Tensor out = matrix.to(tensor::DType::kF32).clone();
  tensor::Tensor g = norm.to(tensor::DType::kF32).contiguous();
  const float* scale = g.data<float>();
  float* p = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] *= scale[i % g.numel()];
  return out;
}

std::vector<float> f32_values(const tensor::Tensor& t) {
  tensor::Tensor f = t.to(tensor::DType::kF32).contiguous();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

}  // namespace

struct LlamaCudaModel::Impl {
  // qkv: rows of q, k (heads in RoPE pairs), v; gate_up: gate and up rows interleaved. The
  // RMSNorm weights before them are folded into their columns (kernels.h).
  struct Layer {
    DeviceArray qkv, o, gate_up, down;
  };
  DeviceArray embed, final_norm, lm_head, inv_freq;
  std::vector<std::unique_ptr<Layer>> layers;
  std::vector<std::unique_ptr<DeviceArray>> kc, vc;
  int64_t block_size = 16;
  // Per-forward scratch; `meta` holds every int32 array of the batch, uploaded in one copy.
  DeviceArray meta, x, xn, qkv, attn, gate_up, act, partial, split_counters, last, logits;
  // Captured forward passes, keyed by everything their launches bake in (sizes and buffer
  // addresses); the per-step values (tokens, positions, block tables) are read from `meta`.
  struct Graph {
    std::vector<int64_t> key;
    void* exec;
  };
  std::vector<Graph> graphs;                 // most recently captured last
  std::vector<std::vector<int64_t>> seen;    // keys run once, eagerly
  bool capture_failed = false;
  int64_t replays = 0;

  Impl(const LlamaConfig& c, int64_t num_kv_blocks, int64_t bs) : block_size(bs) {
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) layers.push_back(std::make_unique<Layer>());
    upload(inv_freq, c.rope_inverse_frequencies());
    size_t kv_bytes = static_cast<size_t>(num_kv_blocks * bs * c.num_key_value_heads * c.head_dim()) * sizeof(uint16_t);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      kc.push_back(std::make_unique<DeviceArray>());
      vc.push_back(std::make_unique<DeviceArray>());
      cuda::zero(kc.back()->reserve(kv_bytes), kv_bytes);
      cuda::zero(vc.back()->reserve(kv_bytes), kv_bytes);
    }
  }
  ~Impl() {
    for (auto& g : graphs) cuda::graph_release(g.exec);
  }

  // Runs `issue` eagerly the first time a key is seen; from the second time on, as a graph. A
  // prefill chunk's shape rarely repeats, decode steps' shapes do (until a batch changes).
  void run(const std::vector<int64_t>& key, const std::function<void()>& issue) {
    for (auto& g : graphs)
      if (g.key == key) {
        cuda::graph_replay(g.exec);
        ++replays;
        return;
      }
    if (capture_failed) return issue();
    if (std::find(seen.begin(), seen.end(), key) == seen.end()) {
      seen.push_back(key);
      if (seen.size() > kGraphs) seen.erase(seen.begin());
      issue();
      return;
    }
    void* exec = nullptr;
    try {
      exec = cuda::graph_capture(issue);
    } catch (const std::exception& e) {
      runtime::logger()->warn("CUDA graph capture failed ({}); the CUDA model runs eagerly from now on", e.what());
      capture_failed = true;
      issue();
      return;
    }
    graphs.push_back({key, exec});
    if (graphs.size() > kGraphs) {
      cuda::graph_release(graphs.front().exec);
      graphs.erase(graphs.begin());
    }
    cuda::graph_replay(exec);
    ++replays;
  }
  static constexpr size_t kGraphs = 16;
};

namespace {

// Row counts of the fused matrices (rows are output features; [n, k] row-major).
int64_t qkv_rows(const LlamaConfig& c) { return (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim(); }

std::vector<uint16_t> concat(std::vector<uint16_t> a, const std::vector<uint16_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Each head's rows reordered into RoPE pairs (i, i + d/2), so that one warp of the
// matrix-vector kernel computes both dims a rotation mixes.
std::vector<uint16_t> rope_pair_rows(const std::vector<uint16_t>& m, int64_t d, int64_t width) {
  std::vector<uint16_t> out(m.size());
  const auto row_len = static_cast<size_t>(width);
  const size_t rows = m.size() / row_len;
  for (size_t r = 0; r < rows; ++r) {
    const size_t head = r / static_cast<size_t>(d), i = r % static_cast<size_t>(d), half = static_cast<size_t>(d) / 2;
    const size_t to = head * static_cast<size_t>(d) + (i < half ? 2 * i : 2 * (i - half) + 1);
    std::copy_n(m.begin() + static_cast<std::ptrdiff_t>(r * row_len), row_len,
                out.begin() + static_cast<std::ptrdiff_t>(to * row_len));
  }
  return out;
}

// Rows gate_0, up_0, gate_1, up_1, ...: a column's two dot products sit side by side.
std::vector<uint16_t> interleave_rows(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b, int64_t width) {
  std::vector<uint16_t> out;
  out.reserve(a.size() + b.size());
  for (size_t r = 0; r * static_cast<size_t>(width) < a.size(); ++r)
    for (const auto* m : {&a, &b}) {
      auto row = m->begin() + static_cast<std::ptrdiff_t>(r * static_cast<size_t>(width));
      out.insert(out.end(), row, row + width);
    }
  return out;
}

}  // namespace

bool llama_cuda_available() { return tensor::cuda_available(); }

LlamaCudaModel::LlamaCudaModel(const LlamaModel& cpu, int64_t num_kv_blocks, int64_t block_size) : cfg_(cpu.config()) {
  if (!llama_cuda_available()) throw std::runtime_error("no CUDA device is visible");
  impl_ = std::make_unique<Impl>(cfg_, num_kv_blocks, block_size);
  const auto& w = cpu.weights();
  Impl& m = *impl_;
  upload(m.embed, bf16_bits(w[0]));
  upload(m.final_norm, f32_values(w[1]));
  upload(m.lm_head, bf16_bits(w[2]));
  size_t i = 3;
  for (auto& L : m.layers) {
    const int64_t d = cfg_.head_dim(), H = cfg_.hidden_size;
    auto normed = [&](size_t matrix, size_t norm) { return bf16_bits(columns_scaled(w[matrix], w[norm])); };
    upload(L->qkv, concat(concat(rope_pair_rows(normed(i + 1, i), d, H), rope_pair_rows(normed(i + 2, i), d, H)), normed(i + 3, i)));
    upload(L->o, bf16_bits(w[i + 4]));
    upload(L->gate_up, interleave_rows(normed(i + 6, i + 5), normed(i + 7, i + 5), H));
    upload(L->down, bf16_bits(w[i + 8]));
    i += 9;
  }
}

LlamaCudaModel::LlamaCudaModel(const LlamaConfig& config, uint64_t seed, int64_t num_kv_blocks, int64_t block_size)
    : cfg_(config) {
  if (!llama_cuda_available()) throw std::runtime_error("no CUDA device is visible");
  impl_ = std::make_unique<Impl>(cfg_, num_kv_blocks, block_size);
  Impl& m = *impl_;
  const LlamaConfig& c = cfg_;
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  auto random = [&](DeviceArray& a, int64_t rows, int64_t cols) {
    auto* p = static_cast<uint16_t*>(a.reserve(static_cast<size_t>(rows * cols) * 2));
    cuda::fill_uniform_bf16(p, rows * cols, 1.0f / std::sqrt(static_cast<float>(cols)), seed++ * 0x100000001B3ull);
  };
  auto ones = [](DeviceArray& a, int64_t n) {
    cuda::fill_f32(static_cast<float*>(a.reserve(static_cast<size_t>(n) * 4)), n, 1.0f);
  };
  random(m.embed, c.vocab_size, H);
  ones(m.final_norm, H);
  random(m.lm_head, c.vocab_size, H);
  for (auto& L : m.layers) {  // the norms' weights are ones: folded, they change nothing
    random(L->qkv, qkv_rows(c), H);
    random(L->o, H, c.num_attention_heads * c.head_dim());
    random(L->gate_up, 2 * I, H);
    random(L->down, H, I);
  }
}

LlamaCudaModel::~LlamaCudaModel() = default;

int64_t LlamaCudaModel::graph_replays() const { return impl_->replays; }

std::vector<float> LlamaCudaModel::forward(const std::vector<ForwardItem>& items) {
  Impl& m = *impl_;
  const LlamaConfig& c = cfg_;
  const int64_t H = c.hidden_size, d = c.head_dim(), hq = c.num_attention_heads, hkv = c.num_key_value_heads;
  const int64_t I = c.intermediate_size, V = c.vocab_size, bs = m.block_size;
  const bool fast = cuda::fast_attention(d);
  // Host-side layout of the batch, validated as the CPU model does.
  std::vector<int32_t> tokens, pos, slots, table_offset, tables, last_rows, tile_first, tile_rows, decode_rows;
  int64_t max_context = 0;
  for (size_t n = 0; n < items.size(); ++n) {
    const auto& it = items[n];
    if (it.tokens.empty()) throw std::invalid_argument(fmt::format("item {}: no tokens", n));
    auto offset = static_cast<int32_t>(tables.size());
    tables.insert(tables.end(), it.block_table->begin(), it.block_table->end());
    const auto first = static_cast<int32_t>(tokens.size()), count = static_cast<int32_t>(it.tokens.size());
    for (int32_t i = 0; i < count; ++i) {
      int32_t tok = it.tokens[static_cast<size_t>(i)];
      if (tok < 0 || tok >= V)
        throw std::invalid_argument(fmt::format("item {}: token id {} is outside the vocabulary [0, {})", n, tok, V));
      int64_t p = it.start_position + i;
      if (p >= c.max_position_embeddings || p / bs >= static_cast<int64_t>(it.block_table->size()))
        throw std::invalid_argument(fmt::format("item {}: position {} has no KV block or is past the context", n, p));
      tokens.push_back(tok);
      pos.push_back(static_cast<int32_t>(p));
      slots.push_back((*it.block_table)[static_cast<size_t>(p / bs)] * static_cast<int32_t>(bs) + static_cast<int32_t>(p % bs));
      table_offset.push_back(offset);
    }
    // Prefill chunks of a tile's worth go to the tensor-core kernel; short ones and decodes run
    // row by row.
    if (fast && count >= kMinTileTokens) {
      for (int32_t r = 0; r < count; r += static_cast<int32_t>(cuda::kTileRows)) {
        tile_first.push_back(first + r);
        tile_rows.push_back(std::min(count - r, static_cast<int32_t>(cuda::kTileRows)));
      }
    } else {
      for (int32_t r = 0; r < count; ++r) decode_rows.push_back(first + r);
      max_context = std::max(max_context, it.start_position + count);
    }
    last_rows.push_back(first + count - 1);
  }
  const auto T = static_cast<int64_t>(tokens.size()), R = static_cast<int64_t>(items.size());
  // Long decode contexts split into ranges of kKeysPerSplit keys (more past kMaxSplits of them)
  // that run in parallel; a fixed range keeps a growing context's steps on one captured graph.
  const int64_t splits = fast ? std::clamp<int64_t>((max_context + kKeysPerSplit - 1) / kKeysPerSplit, 1, kMaxSplits) : 1;

  std::vector<int32_t> meta;
  std::vector<size_t> at;
  // The block tables go last: every other offset then depends only on the batch's sizes.
  for (const auto* part : {&tokens, &pos, &slots, &table_offset, &last_rows, &tile_first, &tile_rows, &decode_rows, &tables}) {
    at.push_back(meta.size());
    meta.insert(meta.end(), part->begin(), part->end());
  }
  const int32_t* dm = upload(m.meta, meta);
  const int32_t *dtok = dm + at[0], *dpos = dm + at[1], *dslot = dm + at[2], *dlast = dm + at[4];
  cuda::AttentionWork work{dpos, dm + at[3], dm + at[8], dm + at[5], dm + at[6], static_cast<int64_t>(tile_first.size()),
                           dm + at[7], static_cast<int64_t>(decode_rows.size()), splits,
                           splits < kMaxSplits ? kKeysPerSplit : (max_context + splits - 1) / splits};

  auto f32 = [](DeviceArray& a, int64_t n) { return static_cast<float*>(a.reserve(static_cast<size_t>(n) * 4)); };
  auto b16 = [](DeviceArray& a, int64_t n) { return static_cast<uint16_t*>(a.reserve(static_cast<size_t>(n) * 2)); };
  float* x = f32(m.x, T * H);
  uint16_t* xn = b16(m.xn, T * H);
  float* qkv = f32(m.qkv, T * qkv_rows(c));
  uint16_t* attn = b16(m.attn, T * hq * d);
  float* gate_up = f32(m.gate_up, T * 2 * I);  // unused where the matrix-vector kernel fuses SwiGLU
  uint16_t* act = b16(m.act, T * I);
  float* partial = splits > 1 ? f32(m.partial, work.decode_count * hq * splits * (d + 2)) : nullptr;
  auto* counters =
      splits > 1 ? static_cast<int*>(m.split_counters.reserve_zeroed(static_cast<size_t>(work.decode_count * hq) * 4)) : nullptr;
  const auto eps = static_cast<float>(c.rms_norm_eps);

  float* last = f32(m.last, R * H);
  float* logits = f32(m.logits, R * V);
  std::vector<int64_t> key = {T, R, work.tiles, work.decode_count, splits, work.keys_per_split};
  for (const DeviceArray* a : {&m.meta, &m.x, &m.xn, &m.qkv, &m.attn, &m.gate_up, &m.act, &m.partial, &m.split_counters, &m.last, &m.logits})
    key.push_back(reinterpret_cast<int64_t>(a->as<void>()));
  // The whole pass, from the embedding to the logits, on the device.
  m.run(key, [&] {
    cuda::embed(m.embed.as<uint16_t>(), dtok, T, H, x);
    for (size_t l = 0; l < m.layers.size(); ++l) {
      const auto& L = *m.layers[l];
      uint16_t *kc = m.kc[l]->as<uint16_t>(), *vc = m.vc[l]->as<uint16_t>();
      cuda::norm_gemm_qkv_rope(x, eps, xn, L.qkv.as<uint16_t>(), qkv, T, H, dpos, dslot, hq, hkv, d, m.inv_freq.as<float>(), kc,
                               vc);
      cuda::attention(qkv, kc, vc, attn, partial, counters, work, hq, hkv, d, bs);
      cuda::gemm(attn, L.o.as<uint16_t>(), x, T, H, hq * d, true);  // residual add fused (beta = 1)
      cuda::norm_gemm_swiglu(x, eps, xn, L.gate_up.as<uint16_t>(), gate_up, act, T, I, H);
      cuda::gemm(act, L.down.as<uint16_t>(), x, T, H, I, true);
    }
    cuda::gather_rows(x, dlast, R, H, last);
    cuda::rmsnorm(last, m.final_norm.as<float>(), R, H, eps, xn);
    cuda::gemm(xn, m.lm_head.as<uint16_t>(), logits, R, V, H, false);
  });
  std::vector<float> out(static_cast<size_t>(R * V));
  cuda::copy_to_host(out.data(), logits, out.size() * 4);
  return out;
}

}  // namespace xp::serving
