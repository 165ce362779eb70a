#include "serving/model/llama_cuda.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

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
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

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

std::vector<float> f32_values(const tensor::Tensor& t) {
  tensor::Tensor f = t.to(tensor::DType::kF32).contiguous();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

}  // namespace

struct LlamaCudaModel::Impl {
  struct Layer {
    DeviceArray in_norm, q, k, v, o, post_norm, gate, up, down;
  };
  DeviceArray embed, final_norm, lm_head, inv_freq;
  std::vector<std::unique_ptr<Layer>> layers;
  std::vector<std::unique_ptr<DeviceArray>> kc, vc;
  int64_t blocks = 0, block_size = 16;
  // Per-forward scratch.
  DeviceArray tokens, pos, slots, table_offset, tables, last_rows, x, xn, q, k, v, attn, attn_bf, g, u, act, last, logits;
};

bool llama_cuda_available() { return tensor::cuda_available(); }

LlamaCudaModel::LlamaCudaModel(const LlamaModel& cpu, int64_t num_kv_blocks, int64_t block_size)
    : cfg_(cpu.config()), impl_(new Impl) {
  if (!llama_cuda_available()) throw std::runtime_error("no CUDA device is visible");
  const auto& w = cpu.weights();
  Impl& m = *impl_;
  upload(m.embed, bf16_bits(w[0]));
  upload(m.final_norm, f32_values(w[1]));
  upload(m.lm_head, bf16_bits(w[2]));
  size_t i = 3;
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    auto L = std::make_unique<Impl::Layer>();
    upload(L->in_norm, f32_values(w[i++]));
    for (DeviceArray* a : {&L->q, &L->k, &L->v, &L->o}) upload(*a, bf16_bits(w[i++]));
    upload(L->post_norm, f32_values(w[i++]));
    for (DeviceArray* a : {&L->gate, &L->up, &L->down}) upload(*a, bf16_bits(w[i++]));
    m.layers.push_back(std::move(L));
  }
  int64_t d = cfg_.head_dim();
  upload(m.inv_freq, cfg_.rope_inverse_frequencies());
  m.blocks = num_kv_blocks;
  m.block_size = block_size;
  size_t kv_bytes = static_cast<size_t>(num_kv_blocks * block_size * cfg_.num_key_value_heads * d) * sizeof(float);
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    m.kc.push_back(std::make_unique<DeviceArray>());
    m.vc.push_back(std::make_unique<DeviceArray>());
    cuda::zero(m.kc.back()->reserve(kv_bytes), kv_bytes);
    cuda::zero(m.vc.back()->reserve(kv_bytes), kv_bytes);
  }
}

LlamaCudaModel::~LlamaCudaModel() = default;

std::vector<float> LlamaCudaModel::forward(const std::vector<ForwardItem>& items) {
  Impl& m = *impl_;
  const LlamaConfig& c = cfg_;
  const int64_t H = c.hidden_size, d = c.head_dim(), hq = c.num_attention_heads, hkv = c.num_key_value_heads;
  const int64_t I = c.intermediate_size, V = c.vocab_size, bs = m.block_size;
  // Host-side layout of the batch, validated as the CPU model does.
  std::vector<int32_t> tokens, pos, slots, table_offset, tables, last_rows;
  for (size_t n = 0; n < items.size(); ++n) {
    const auto& it = items[n];
    if (it.tokens.empty()) throw std::invalid_argument(fmt::format("item {}: no tokens", n));
    auto offset = static_cast<int32_t>(tables.size());
    tables.insert(tables.end(), it.block_table->begin(), it.block_table->end());
    for (size_t i = 0; i < it.tokens.size(); ++i) {
      int32_t tok = it.tokens[i];
      if (tok < 0 || tok >= V)
        throw std::invalid_argument(fmt::format("item {}: token id {} is outside the vocabulary [0, {})", n, tok, V));
      int64_t p = it.start_position + static_cast<int64_t>(i);
      if (p >= c.max_position_embeddings || p / bs >= static_cast<int64_t>(it.block_table->size()))
        throw std::invalid_argument(fmt::format("item {}: position {} has no KV block or is past the context", n, p));
      tokens.push_back(tok);
      pos.push_back(static_cast<int32_t>(p));
      slots.push_back((*it.block_table)[static_cast<size_t>(p / bs)] * static_cast<int32_t>(bs) + static_cast<int32_t>(p % bs));
      table_offset.push_back(offset);
    }
    last_rows.push_back(static_cast<int32_t>(tokens.size()) - 1);
  }
  const auto T = static_cast<int64_t>(tokens.size()), R = static_cast<int64_t>(items.size());
  auto* dtok = upload(m.tokens, tokens);
  auto* dpos = upload(m.pos, pos);
  auto* dslot = upload(m.slots, slots);
  auto* doff = upload(m.table_offset, table_offset);
  auto* dtab = upload(m.tables, tables);
  auto* dlast = upload(m.last_rows, last_rows);
  auto f32 = [](DeviceArray& a, int64_t n) { return static_cast<float*>(a.reserve(static_cast<size_t>(n) * 4)); };
  auto b16 = [](DeviceArray& a, int64_t n) { return static_cast<uint16_t*>(a.reserve(static_cast<size_t>(n) * 2)); };
  float* x = f32(m.x, T * H);
  uint16_t* xn = b16(m.xn, T * std::max(H, I));
  float *q = f32(m.q, T * hq * d), *k = f32(m.k, T * hkv * d), *v = f32(m.v, T * hkv * d), *attn = f32(m.attn, T * hq * d);
  uint16_t* attn_bf = b16(m.attn_bf, T * hq * d);
  float *g = f32(m.g, T * I), *u = f32(m.u, T * I);
  uint16_t* act = b16(m.act, T * I);

  cuda::embed(m.embed.as<uint16_t>(), dtok, T, H, x);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto& L = *m.layers[static_cast<size_t>(l)];
    cuda::rmsnorm(x, L.in_norm.as<float>(), T, H, static_cast<float>(c.rms_norm_eps), xn);
    cuda::gemm(xn, L.q.as<uint16_t>(), q, T, hq * d, H, false);
    cuda::gemm(xn, L.k.as<uint16_t>(), k, T, hkv * d, H, false);
    cuda::gemm(xn, L.v.as<uint16_t>(), v, T, hkv * d, H, false);
    cuda::rope(q, k, dpos, T, hq, hkv, d, m.inv_freq.as<float>());
    float *kc = m.kc[static_cast<size_t>(l)]->as<float>(), *vc = m.vc[static_cast<size_t>(l)]->as<float>();
    cuda::kv_write(k, v, dslot, T, hkv * d, kc, vc);
    cuda::attention(q, kc, vc, attn, dpos, doff, dtab, T, hq, hkv, d, bs);
    cuda::to_bf16(attn, T * hq * d, attn_bf);
    cuda::gemm(attn_bf, L.o.as<uint16_t>(), x, T, H, hq * d, true);  // residual add fused (beta = 1)
    cuda::rmsnorm(x, L.post_norm.as<float>(), T, H, static_cast<float>(c.rms_norm_eps), xn);
    cuda::gemm(xn, L.gate.as<uint16_t>(), g, T, I, H, false);
    cuda::gemm(xn, L.up.as<uint16_t>(), u, T, I, H, false);
    cuda::swiglu(g, u, T * I, act);
    cuda::gemm(act, L.down.as<uint16_t>(), x, T, H, I, true);
  }
  float* last = f32(m.last, R * H);
  cuda::gather_rows(x, dlast, R, H, last);
  cuda::rmsnorm(last, m.final_norm.as<float>(), R, H, static_cast<float>(c.rms_norm_eps), xn);
  float* logits = f32(m.logits, R * V);
  cuda::gemm(xn, m.lm_head.as<uint16_t>(), logits, R, V, H, false);
  std::vector<float> out(static_cast<size_t>(R * V));
  cuda::copy_to_host(out.data(), logits, out.size() * 4);
  return out;
}

}  // namespace xp::serving
