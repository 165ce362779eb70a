#include "serving/model/llama.h"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <chrono>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/data/dataset.h"
#include "core/runtime/files.h"
#include "core/tensor/ops.h"
#include "serving/model/safetensors.h"

namespace xp::serving {
namespace fs = std::filesystem;
using tensor::DType;
using tensor::Tensor;
using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const Mat>;

// ---------------------------------------------------------------------------------------------
// KV cache

KvCache::KvCache(const LlamaConfig& c, int64_t num_blocks, int64_t block_size, int64_t kv_heads, int64_t layers)
    : num_blocks_(num_blocks), block_size_(block_size), row_((kv_heads ? kv_heads : c.num_key_value_heads) * c.head_dim()) {
  size_t n = static_cast<size_t>(num_blocks * block_size * row_);
  k_.assign(static_cast<size_t>(layers ? layers : c.num_hidden_layers), std::vector<float>(n, 0.0f));
  v_ = k_;
}

// ---------------------------------------------------------------------------------------------
// Model

struct LlamaModel::Impl {
  struct Layer {
    Tensor in_norm, q, k, v, o, post_norm, gate, up, down;
  };
  Tensor embed, final_norm, lm_head;
  std::vector<Layer> layers;
  std::vector<Tensor> all;  // every weight, in load order
  std::vector<float> inv_freq;  // head_dim / 2, float32 as Hugging Face computes it
  dist::ProcessGroup* tp = nullptr;
  dist::ProcessGroup* kvp = nullptr;
  TensorShard shard;
  PipelineStage stage;
};

TensorShard TensorShard::of(const LlamaConfig& c, int rank, int size) {
  const int64_t n = size, hq = c.num_attention_heads, hkv = c.num_key_value_heads;
  if (n < 1 || rank < 0 || rank >= n) throw std::invalid_argument(fmt::format("rank {} of {}", rank, size));
  if (hq % n)
    throw std::invalid_argument(fmt::format("{} attention heads do not split {} ways (tensor parallelism splits by heads)", hq, n));
  if (hkv % n && n % hkv)
    throw std::invalid_argument(fmt::format("{} KV heads neither split {} ways nor divide it (replicated KV heads)", hkv, n));
  if (c.intermediate_size % n)
    throw std::invalid_argument(fmt::format("intermediate_size {} does not split {} ways", c.intermediate_size, n));
  if (c.vocab_size < n) throw std::invalid_argument(fmt::format("a vocabulary of {} does not split {} ways", c.vocab_size, n));
  TensorShard s{};
  s.heads = hq / n;
  s.head0 = rank * s.heads;
  s.kv_heads = hkv >= n ? hkv / n : 1;
  s.kv_head0 = hkv >= n ? rank * s.kv_heads : s.head0 / (hq / hkv);  // the KV head its query heads read
  s.inter = c.intermediate_size / n;
  s.inter0 = rank * s.inter;
  s.vocab0 = c.vocab_size * rank / n;
  s.vocab = c.vocab_size * (rank + 1) / n - s.vocab0;
  s.vocab_max = (c.vocab_size + n - 1) / n;
  return s;
}

namespace {

ConstMap mat(const Tensor& t) { return ConstMap(t.data<float>(), t.size(0), t.size(1)); }

// out (=|+=) x · Wᵀ. The output columns are split into fixed blocks, one OpenMP task each, so
// every output element is one dot product computed the same way whatever the thread count.
// (Eigen would run the few-row products of decoding, GEMVs, on a single core.)
void linear(const Mat& x, const Tensor& w, Mat& out, bool accumulate) {
  ConstMap W = mat(w);
  const Eigen::Index n = W.rows();
  if (!accumulate) out.resize(x.rows(), n);
  // Decode batches: one matrix-vector product per input row over a block of weight rows small
  // enough (≤ 256 KB) to stay in L2, so the block comes from memory once for all the rows.
  // Eigen's GEMM would pack the whole weight block first, which for a few rows costs several
  // times the product (a 2-row decode of a small model took 7× as long as a 1-row one). The
  // block depends on the weight's shape only, so results stay independent of the thread count.
  if (x.rows() <= LlamaModel::kMatVecRows) {
    const Eigen::Index rows_per_block = std::clamp<Eigen::Index>((256 << 10) / (4 * W.cols()), 16, 256);
    const Eigen::Index blocks = (n + rows_per_block - 1) / rows_per_block;
#pragma omp parallel for schedule(static)
    for (Eigen::Index b = 0; b < blocks; ++b) {
      const Eigen::Index c0 = b * rows_per_block, cn = std::min(rows_per_block, n - c0);
      const auto Wb = W.middleRows(c0, cn);
      for (Eigen::Index r = 0; r < x.rows(); ++r) {
        auto dst = out.row(r).segment(c0, cn).transpose();
        if (accumulate) dst.noalias() += Wb * x.row(r).transpose();
        else dst.noalias() = Wb * x.row(r).transpose();
      }
    }
    return;
  }
  // 128 columns: two blocks even for a 256-wide projection, so both cores of a small machine work.
  constexpr Eigen::Index kBlock = 128;
  const Eigen::Index blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (Eigen::Index b = 0; b < blocks; ++b) {
    Eigen::Index c0 = b * kBlock, cn = std::min(kBlock, n - c0);
    if (accumulate) out.middleCols(c0, cn).noalias() += x * W.middleRows(c0, cn).transpose();
    else out.middleCols(c0, cn).noalias() = x * W.middleRows(c0, cn).transpose();
  }
}

// HF: x * rsqrt(mean(x²) + eps) * w, in float32.
void rmsnorm_rows(const Mat& x, const Tensor& w, double eps, Mat& out) {
  out.resize(x.rows(), x.cols());
  const float* pw = w.data<float>();
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    float ss = 0;
    for (Eigen::Index c = 0; c < x.cols(); ++c) ss += x(r, c) * x(r, c);
    float scale = 1.0f / std::sqrt(ss / static_cast<float>(x.cols()) + static_cast<float>(eps));
    for (Eigen::Index c = 0; c < x.cols(); ++c) out(r, c) = pw[c] * (x(r, c) * scale);
  }
}

// Rotate-half RoPE (HF's convention) on every head of one row, in place.
void rope_row(float* row, int64_t heads, int64_t d, int64_t pos, const std::vector<float>& inv_freq) {
  int64_t half = d / 2;
  for (int64_t i = 0; i < half; ++i) {
    float angle = static_cast<float>(pos) * inv_freq[static_cast<size_t>(i)];
    float c = std::cos(angle), s = std::sin(angle);
    for (int64_t h = 0; h < heads; ++h) {
      float* x = row + h * d;
      float a = x[i], b = x[i + half];
      x[i] = a * c - b * s;
      x[i + half] = b * c + a * s;
    }
  }
}

}  // namespace

LlamaModel::LlamaModel(LlamaConfig config, std::vector<Tensor> weights, dist::ProcessGroup* tp, dist::ProcessGroup* kvp,
                       PipelineStage stage)
    : cfg_(std::move(config)), impl_(new Impl) {
  if (stage.stages < 1 || stage.stage < 0 || stage.stage >= stage.stages || cfg_.num_hidden_layers % stage.stages)
    throw std::invalid_argument(fmt::format("{} layers do not split into pipeline stage {} of {}", cfg_.num_hidden_layers,
                                            stage.stage, stage.stages));
  impl_->stage = stage;
  impl_->tp = tp && tp->size() > 1 ? tp : nullptr;
  impl_->kvp = kvp && kvp->size() > 1 ? kvp : nullptr;
  impl_->shard = TensorShard::of(cfg_, impl_->tp ? tp->rank() : 0, impl_->tp ? tp->size() : 1);
  impl_->all = weights;
  // weights: embed, final_norm, lm_head, then 9 per layer (in_norm, q, k, v, o, post_norm, gate, up, down).
  size_t i = 0;
  impl_->embed = weights[i++];
  impl_->final_norm = weights[i++];
  impl_->lm_head = weights[i++];
  for (int64_t l = stage.first_layer(cfg_); l < stage.end_layer(cfg_); ++l) {
    Impl::Layer L;
    for (Tensor* t : {&L.in_norm, &L.q, &L.k, &L.v, &L.o, &L.post_norm, &L.gate, &L.up, &L.down}) *t = weights[i++];
    impl_->layers.push_back(std::move(L));
  }
  impl_->inv_freq = cfg_.rope_inverse_frequencies();
}

LlamaModel::~LlamaModel() = default;

const std::vector<Tensor>& LlamaModel::weights() const { return impl_->all; }
KvCache LlamaModel::make_kv_cache(int64_t num_blocks, int64_t block_size) const {
  return KvCache(cfg_, num_blocks, block_size, impl_->shard.kv_heads, static_cast<int64_t>(impl_->layers.size()));
}
const PipelineStage& LlamaModel::pipeline_stage() const { return impl_->stage; }
int LlamaModel::tensor_parallel() const { return impl_->tp ? impl_->tp->size() : 1; }

std::unique_ptr<LlamaModel> LlamaModel::load(const fs::path& dir, dist::ProcessGroup* tp, dist::ProcessGroup* kvp,
                                             PipelineStage stage) {
  LlamaConfig c = LlamaConfig::from_json_file(dir / "config.json");
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir);
  const bool sharded = tp && tp->size() > 1;
  TensorShard s;
  try {
    s = TensorShard::of(c, sharded ? tp->rank() : 0, sharded ? tp->size() : 1);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(fmt::format("{}: {}", (dir / "config.json").string(), e.what()));
  }
  int64_t h = c.hidden_size, d = c.head_dim(), kv = c.num_key_value_heads * d, inter = c.intermediate_size;
  std::vector<Tensor> w;
  // A whole tensor, or rows (dim 0) / columns (dim 1) [start, start + count) of it.
  auto take = [&](const std::string& name, std::vector<int64_t> shape, int dim = 0, int64_t start = 0, int64_t count = -1) {
    const SafetensorsEntry& e = ckpt.entry(name);
    if (e.shape != shape)
      throw std::runtime_error(fmt::format("{}: tensor '{}' has shape {}, but config.json implies {}", e.file.string(), name,
                                           tensor::shape_str(e.shape), tensor::shape_str(shape)));
    w.push_back(count < 0 || !sharded ? ckpt.load(name, DType::kF32) : ckpt.load_slice(name, dim, start, count, DType::kF32));
  };
  take("model.embed_tokens.weight", {c.vocab_size, h});
  take("model.norm.weight", {h});
  const std::string head = c.tie_word_embeddings || !ckpt.has("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight";
  if (!sharded && head != "lm_head.weight") w.push_back(w[0]);
  else take(head, {c.vocab_size, h}, 0, s.vocab0, s.vocab);
  if (c.num_hidden_layers % stage.stages)
    throw std::runtime_error(fmt::format("{}: {} layers do not split into {} pipeline stages", (dir / "config.json").string(),
                                         c.num_hidden_layers, stage.stages));
  for (int64_t l = stage.first_layer(c); l < stage.end_layer(c); ++l) {
    std::string p = fmt::format("model.layers.{}.", l);
    take(p + "input_layernorm.weight", {h});
    take(p + "self_attn.q_proj.weight", {h, h}, 0, s.head0 * d, s.heads * d);
    take(p + "self_attn.k_proj.weight", {kv, h}, 0, s.kv_head0 * d, s.kv_heads * d);
    take(p + "self_attn.v_proj.weight", {kv, h}, 0, s.kv_head0 * d, s.kv_heads * d);
    take(p + "self_attn.o_proj.weight", {h, h}, 1, s.head0 * d, s.heads * d);
    take(p + "post_attention_layernorm.weight", {h});
    take(p + "mlp.gate_proj.weight", {inter, h}, 0, s.inter0, s.inter);
    take(p + "mlp.up_proj.weight", {inter, h}, 0, s.inter0, s.inter);
    take(p + "mlp.down_proj.weight", {h, inter}, 1, s.inter0, s.inter);
  }
  return std::make_unique<LlamaModel>(c, std::move(w), tp, kvp, stage);
}

namespace {

// The operators of one layer that are not a single library call.
struct LayerOps {
  const LlamaConfig& c;
  const std::vector<float>& inv_freq;
  int64_t hq, hkv;  // the query and KV heads this rank holds (all of them without tensor parallelism)

  // attn_rope: rotate-half RoPE of every query and key row at its position.
  void rope(Mat& q, Mat& k, const std::vector<int64_t>& pos) const {
    for (Eigen::Index t = 0; t < q.rows(); ++t) {
      rope_row(q.row(t).data(), hq, c.head_dim(), pos[static_cast<size_t>(t)], inv_freq);
      rope_row(k.row(t).data(), hkv, c.head_dim(), pos[static_cast<size_t>(t)], inv_freq);
    }
  }

  // attn_kv_cache_save: each new token's K and V into its paged slot.
  void save_kv(const Mat& k, const Mat& v, const std::vector<int64_t>& slots, int64_t layer, KvCache& cache) const {
    const int64_t row = hkv * c.head_dim();
    for (Eigen::Index t = 0; t < k.rows(); ++t) {
      if (slots[static_cast<size_t>(t)] < 0) continue;  // another KV-parallel rank stores it
      std::copy_n(k.row(t).data(), row, cache.k(layer, slots[static_cast<size_t>(t)]));
      std::copy_n(v.row(t).data(), row, cache.v(layer, slots[static_cast<size_t>(t)]));
    }
  }

  // attn_prefill / attn_decode: each item attends over its cached sequence; query i sees keys
  // 0..start+i (causal, aligned bottom-right). The items' heads are split into OpenMP tasks: a
  // decode is one task (its keys gathered as whole cache rows: a task per head would stride
  // through the same rows once per head, 8% slower at 32 decodes), a prompt chunk one task per
  // KV head (its products are large; one task would leave the other cores idle). The split
  // depends on the batch alone and Eigen runs single-threaded inside a parallel region, so each
  // head is computed the same way on any thread and results do not depend on the thread count.
  //
  // Under KV parallelism an item's keys are this rank's slice of its sequence (ForwardItem::kv):
  // `lse` gets each row's and head's log-sum-exp of the scores (−∞ where the slice has no key the
  // row may see), for the merge across the group.
  void attend(const std::vector<ForwardItem>& items, const Mat& q, int64_t layer, KvCache& cache, Mat& attn, Mat& lse) const {
    const int64_t d = c.head_dim(), bs = cache.block_size();
    const int64_t group = hq / hkv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    attn.resize(q.rows(), hq * d);
    lse.resize(q.rows(), hq);
    struct Task {
      const ForwardItem* item;
      int64_t first_row, kv_head, kv_heads;
    };
    std::vector<Task> tasks;
    int64_t first_row = 0;
    for (const auto& it : items) {
      const auto n = static_cast<int64_t>(it.tokens.size());
      if (n == 1) tasks.push_back({&it, first_row, 0, hkv});
      else
        for (int64_t h = 0; h < hkv; ++h) tasks.push_back({&it, first_row, h, 1});
      first_row += n;
    }
#pragma omp parallel
    {
      Mat kc, vc, s;  // per thread, reused across its tasks
#pragma omp for schedule(dynamic)
      for (size_t t = 0; t < tasks.size(); ++t) {
        const Task& task = tasks[t];
        const ForwardItem& it = *task.item;
        const int64_t n = static_cast<int64_t>(it.tokens.size()), width = task.kv_heads * d;
        const int64_t cached = it.kv.cached < 0 ? it.start_position : it.kv.cached;
        const int64_t len = cached + (it.kv.appends ? n : 0);  // keys in this rank's slice
        kc.resize(len, width);
        vc.resize(len, width);
        for (int64_t p = 0; p < len; ++p) {
          const int64_t slot = (*it.block_table)[static_cast<size_t>(p / bs)] * bs + p % bs;
          std::copy_n(cache.k(layer, slot) + task.kv_head * d, width, kc.row(p).data());
          std::copy_n(cache.v(layer, slot) + task.kv_head * d, width, vc.row(p).data());
        }
        for (int64_t kvh = 0; kvh < task.kv_heads; ++kvh)
          for (int64_t g = 0; g < group; ++g) {
            const int64_t h = (task.kv_head + kvh) * group + g;
            s.noalias() = (q.block(task.first_row, h * d, n, d) * kc.middleCols(kvh * d, d).transpose()) * scale;
            for (int64_t i = 0; i < n; ++i) {
              // Keys past the query's position are masked out (the slice's key j is at first + j).
              const int64_t visible = std::clamp<int64_t>(it.start_position + i + 1 - it.kv.first_position, 0, len);
              auto row = s.row(i);
              if (visible == 0) {
                row.setZero();
                lse(task.first_row + i, h) = -std::numeric_limits<float>::infinity();
                continue;
              }
              const float m = row.head(visible).maxCoeff();
              row.head(visible) = (row.head(visible).array() - m).exp().matrix();  // vectorised exp
              row.tail(len - visible).setZero();
              const float sum = row.head(visible).sum();
              row /= sum;
              lse(task.first_row + i, h) = m + std::log(sum);
            }
            attn.block(task.first_row, h * d, n, d).noalias() = s * vc.middleCols(kvh * d, d);
          }
      }
    }
  }
};

// KV parallelism: each rank of `kvp` attended over its slice of the keys; the exact result is the
// partial outputs weighted by exp(their log-sum-exp − the total's), the algebra of online softmax
// (FlashInfer's attention-state merge). Gathered, and summed in rank order on every rank, so every
// rank holds the same bits.
void merge_kv_parallel(dist::ProcessGroup& kvp, Mat& attn, const Mat& lse, int64_t head_dim) {
  const int n = kvp.size();
  const auto rows = attn.rows(), heads = lse.cols();
  std::vector<float> mine(static_cast<size_t>(attn.size() + lse.size()));
  std::copy_n(attn.data(), attn.size(), mine.begin());
  std::copy_n(lse.data(), lse.size(), mine.begin() + attn.size());
  const std::vector<float> all = kvp.all_gather(std::span<const float>(mine));
  const size_t stride = mine.size();
  auto part_o = [&](int r) { return Eigen::Map<const Mat>(all.data() + static_cast<size_t>(r) * stride, rows, attn.cols()); };
  auto part_lse = [&](int r) { return Eigen::Map<const Mat>(all.data() + static_cast<size_t>(r) * stride + attn.size(), rows, heads); };
  for (Eigen::Index i = 0; i < rows; ++i)
    for (Eigen::Index h = 0; h < heads; ++h) {
      float top = -std::numeric_limits<float>::infinity();
      for (int r = 0; r < n; ++r) top = std::max(top, part_lse(r)(i, h));
      auto out = attn.row(i).segment(h * head_dim, head_dim);
      out.setZero();
      if (top == -std::numeric_limits<float>::infinity()) continue;  // no rank holds a visible key
      float total = 0;
      for (int r = 0; r < n; ++r) {
        const float w = std::exp(part_lse(r)(i, h) - top);
        total += w;
        out += w * part_o(r).row(i).segment(h * head_dim, head_dim);
      }
      out /= total;
    }
}

// Each rank's [items, its vocabulary rows] logits, padded to the largest share, gathered and
// laid side by side in vocabulary order: [items, vocab] on every rank.
void gather_vocabulary(const LlamaConfig& c, const TensorShard& s, dist::ProcessGroup& tp, Mat& logits) {
  const int n = tp.size();
  const Eigen::Index items = logits.rows();
  Mat padded = Mat::Zero(items, s.vocab_max);
  padded.leftCols(s.vocab) = logits;
  std::vector<float> all = tp.all_gather(std::span<const float>(padded.data(), static_cast<size_t>(padded.size())));
  logits.resize(items, c.vocab_size);
  for (int r = 0; r < n; ++r) {
    const TensorShard o = TensorShard::of(c, r, n);
    logits.middleCols(o.vocab0, o.vocab) =
        Eigen::Map<const Mat>(all.data() + static_cast<size_t>(r) * static_cast<size_t>(padded.size()), items, s.vocab_max)
            .leftCols(o.vocab);
  }
}

// Under tensor parallelism, the all-reduces inside attn_post_proj and mlp_down_proj.
constexpr const char* kAttnAllReduce = "attn_post_proj.all_reduce";
constexpr const char* kMlpAllReduce = "mlp_down_proj.all_reduce";

// mlp_act: SiLU(gate) ⊙ up, in place in `g`.
void swiglu(Mat& g, const Mat& u) { g = (g.array() / (1.0f + (-g.array()).exp()) * u.array()).matrix(); }

}  // namespace

std::vector<float> LlamaModel::forward(const std::vector<ForwardItem>& items, KvCache& cache) const {
  return forward(items, cache, nullptr);
}

std::vector<float> LlamaModel::forward(const std::vector<ForwardItem>& items, KvCache& cache,
                                       std::span<const float> hidden) const {
  return forward(items, cache, nullptr, hidden);
}

std::vector<float> LlamaModel::forward(const std::vector<ForwardItem>& items, KvCache& cache, OperatorMs* times,
                                       std::span<const float> hidden) const {
  // With `times`, each operator's wall time is added under its name (Vidur's); the clock reads
  // cost about 50 ns an operator.
  auto timed = [times](const char* op, auto&& f) {
    if (!times) return f();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    (*times)[op] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  const LlamaConfig& c = cfg_;
  const int64_t H = c.hidden_size, bs = cache.block_size();
  int64_t T = 0;
  for (const auto& it : items) T += static_cast<int64_t>(it.tokens.size());
  // Rows: token embeddings; positions and KV slots per row.
  Mat x(T, H);
  const PipelineStage& stage = impl_->stage;
  if (stage.stage > 0) {  // the previous stage's hidden states
    if (static_cast<int64_t>(hidden.size()) != T * H)
      throw std::invalid_argument(fmt::format("pipeline stage {} got {} hidden values for {} tokens of width {}", stage.stage,
                                              hidden.size(), T, H));
    x = Eigen::Map<const Mat>(hidden.data(), T, H);
  }
  std::vector<int64_t> pos(static_cast<size_t>(T)), slot(static_cast<size_t>(T));
  int64_t r = 0;
  for (size_t n = 0; n < items.size(); ++n) {
    const auto& it = items[n];
    if (it.tokens.empty()) throw std::invalid_argument(fmt::format("item {}: no tokens", n));
    for (size_t i = 0; i < it.tokens.size(); ++i, ++r) {
      int32_t tok = it.tokens[i];
      if (tok < 0 || tok >= c.vocab_size)
        throw std::invalid_argument(fmt::format("item {}: token id {} is outside the vocabulary [0, {})", n, tok, c.vocab_size));
      int64_t p = it.start_position + static_cast<int64_t>(i);
      if (p >= c.max_position_embeddings)
        throw std::invalid_argument(fmt::format("item {}: position {} is past the context of {} tokens", n, p,
                                                c.max_position_embeddings));
      pos[static_cast<size_t>(r)] = p;
      if (stage.stage == 0) x.row(r) = mat(impl_->embed).row(tok);
      slot[static_cast<size_t>(r)] = -1;  // under KV parallelism only the last group stores new KV
      if (!it.kv.appends) continue;
      const int64_t local = p - it.kv.first_position;  // position in this rank's slice
      if (!it.block_table || local < 0 || local / bs >= static_cast<int64_t>(it.block_table->size()))
        throw std::invalid_argument(fmt::format("item {}: no KV block for position {}", n, p));
      slot[static_cast<size_t>(r)] = (*it.block_table)[static_cast<size_t>(local / bs)] * bs + local % bs;
    }
  }
  LayerOps ops{c, impl_->inv_freq, impl_->shard.heads, impl_->shard.kv_heads};
  Mat xn, q, k, v, attn, lse, g, u, part;
  // out += in · Wᵀ; under tensor parallelism each rank holds W's columns for its heads (or MLP
  // columns), so the partial products are summed across the group first.
  // The all-reduce is timed apart as well (inside the operator's time), for profile_forward.
  auto row_parallel = [&](const Mat& in, const Tensor& w, Mat& out, const char* all_reduce_op) {
    if (!impl_->tp) return linear(in, w, out, true);  // the residual add fused in
    linear(in, w, part, false);
    timed(all_reduce_op, [&] { impl_->tp->all_reduce_sum(std::span<float>(part.data(), static_cast<size_t>(part.size()))); });
    out += part;
  };
  for (int64_t l = 0; l < static_cast<int64_t>(impl_->layers.size()); ++l) {  // this stage's layers; l indexes its cache
    const auto& L = impl_->layers[static_cast<size_t>(l)];
    timed("input_layernorm", [&] { rmsnorm_rows(x, L.in_norm, c.rms_norm_eps, xn); });
    timed("attn_pre_proj", [&] {
      linear(xn, L.q, q, false);
      linear(xn, L.k, k, false);
      linear(xn, L.v, v, false);
    });
    timed("attn_rope", [&] { ops.rope(q, k, pos); });
    timed("attn_kv_cache_save", [&] { ops.save_kv(k, v, slot, l, cache); });
    timed("attention", [&] {
      ops.attend(items, q, l, cache, attn, lse);
      if (impl_->kvp) merge_kv_parallel(*impl_->kvp, attn, lse, c.head_dim());
    });
    timed("attn_post_proj", [&] { row_parallel(attn, L.o, x, kAttnAllReduce); });
    timed("post_attention_layernorm", [&] { rmsnorm_rows(x, L.post_norm, c.rms_norm_eps, xn); });
    timed("mlp_up_proj", [&] {
      linear(xn, L.gate, g, false);
      linear(xn, L.up, u, false);
    });
    timed("mlp_act", [&] { swiglu(g, u); });
    timed("mlp_down_proj", [&] { row_parallel(g, L.down, x, kMlpAllReduce); });
  }
  if (!stage.last()) return std::vector<float>(x.data(), x.data() + x.size());  // on to the next stage
  // Logits of each item's last token.
  Mat logits;
  timed("lm_head", [&] {
    Mat last(static_cast<Eigen::Index>(items.size()), H);
    int64_t row = -1;
    for (size_t n = 0; n < items.size(); ++n) {
      row += static_cast<int64_t>(items[n].tokens.size());
      last.row(static_cast<Eigen::Index>(n)) = x.row(row);
    }
    rmsnorm_rows(last, impl_->final_norm, c.rms_norm_eps, xn);
    linear(xn, impl_->lm_head, logits, false);
    if (impl_->tp) gather_vocabulary(c, impl_->shard, *impl_->tp, logits);
  });
  return std::vector<float>(logits.data(), logits.data() + logits.size());
}

// ---------------------------------------------------------------------------------------------
// Profiling (the engine's profile mode): operator times from forward passes of synthetic batches.

namespace {

// One timed run of `f` in milliseconds, after an untimed warm-up (first-touch allocations) and
// `before` (outside the timing).
template <class F, class Before>
double time_once_ms(F&& f, Before&& before) {
  f();
  before();
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Before the timed run, reads every weight a forward pass reads (the layers and the LM head;
// the embedding only by rows), up to 256 MiB — more than any CPU's last-level cache, so a larger
// model's read evicts everything without taking seconds per repetition. That leaves the caches
// as a forward leaves them when it comes back to the operator: a model that fits in the
// last-level cache finds its weights there, a larger one reads them from memory. Repeating an
// operator back to back would instead time layer 0's weights hot in cache, several times faster
// than a forward over a model larger than the cache runs it.
double LlamaModel::time_as_in_a_forward(const std::function<void()>& f) const {
  auto read_weights = [this] {
    constexpr int64_t kMaxFloats = (int64_t{256} << 20) / 4;
    const bool tied = impl_->lm_head.data<float>() == impl_->embed.data<float>();
    float sink = 0;
    int64_t read = 0;
    for (const Tensor& t : impl_->all) {
      if (!tied && t.data<float>() == impl_->embed.data<float>()) continue;
      const float* p = t.data<float>();
      const int64_t n = std::min(t.numel(), kMaxFloats - read);
      float acc = 0;
      for (int64_t i = 0; i < n; i += 16) acc += p[i];  // one load per 64-byte line
      sink += acc;
      if ((read += n) == kMaxFloats) break;
    }
    volatile float keep = sink;
    (void)keep;
#ifdef _OPENMP
    // Wake the other threads, asleep while this one read: in a forward pass they are still
    // spinning from the previous operator when the next begins, and a wake-up costs about as
    // much as one of a one-row decode's small operators.
#pragma omp parallel
    { (void)0; }
#endif
  };
  return time_once_ms(f, read_weights);
}

LlamaModel::OperatorMs LlamaModel::profile_forward(int64_t batch, int64_t new_tokens, int64_t kv) const {
  const int64_t bs = 16, blocks_per_seq = (kv + new_tokens + bs - 1) / bs;
  KvCache cache = make_kv_cache(batch * blocks_per_seq, bs);
  // The blocks in no particular order, as a paged cache holds them once requests have come and
  // gone: decodes of 16-24 sequences over 250 keys ran 3-4% slower than over blocks in order.
  const std::vector<int64_t> blocks = data::permutation(batch * blocks_per_seq, runtime::RngStream(0x6b76, 0));
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch));
  std::vector<int32_t> tokens(static_cast<size_t>(new_tokens), 1);
  std::vector<ForwardItem> items;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < blocks_per_seq; ++i)
      tables[static_cast<size_t>(b)].push_back(static_cast<int32_t>(blocks[static_cast<size_t>(b * blocks_per_seq + i)]));
    items.push_back({std::span<const int32_t>(tokens), kv, &tables[static_cast<size_t>(b)]});
  }
  OperatorMs ms;
  const double whole = time_as_in_a_forward([&] {
    ms.clear();  // keep the timed run's, not the warm-up's
    forward(items, cache, &ms);
  });
  const auto layers = static_cast<double>(cfg_.num_hidden_layers);
  OperatorMs out;
  for (const auto& [op, t] : ms) out[op] = op == "lm_head" ? t : t / layers;
  // A tensor-parallel shard's projections without their all-reduce, which the simulator takes
  // from the network profile (as Vidur's operator profiles leave it out).
  for (auto [op, all_reduce] : {std::pair{"attn_post_proj", kAttnAllReduce}, std::pair{"mlp_down_proj", kMlpAllReduce}}) {
    if (auto it = out.find(all_reduce); it != out.end()) {
      out[op] = std::max(0.0, out[op] - it->second);
      out.erase(it);
    }
  }
  out["add"] = 0;  // fused into attn_post_proj and mlp_down_proj
  out["forward"] = whole;
  return out;
}

void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
#else
  (void)n;
#endif
}

// ---------------------------------------------------------------------------------------------
// Sampling and random models

int32_t sample_token(std::span<const float> logits, const SamplingParams& p, runtime::RngStream& rng) {
  const auto n = static_cast<int64_t>(logits.size());
  if (p.temperature <= 0) return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<std::pair<float, int32_t>> cand;
  cand.reserve(logits.size());
  for (int64_t i = 0; i < n; ++i) cand.emplace_back(logits[static_cast<size_t>(i)], static_cast<int32_t>(i));
  std::sort(cand.begin(), cand.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  if (p.top_k > 0 && p.top_k < n) cand.resize(static_cast<size_t>(p.top_k));
  double m = cand.front().first, total = 0;
  std::vector<double> w(cand.size());
  for (size_t i = 0; i < cand.size(); ++i) total += w[i] = std::exp((cand[i].first - m) / p.temperature);
  size_t keep = cand.size();
  if (p.top_p < 1.0) {  // smallest prefix whose mass reaches top_p
    double acc = 0;
    for (size_t i = 0; i < cand.size(); ++i) {
      acc += w[i] / total;
      if (acc >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    total = 0;
    for (size_t i = 0; i < keep; ++i) total += w[i];
  }
  double u = rng.uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    if (u < w[i]) return cand[i].second;
    u -= w[i];
  }
  return cand[keep - 1].second;
}

void write_random_llama(const fs::path& dir, const LlamaConfig& c, uint64_t seed, DType dtype) {
  fs::create_directories(dir);
  runtime::RngStream rng(seed, 0);
  std::map<std::string, Tensor> w;
  auto normal = [&](const std::string& name, std::vector<int64_t> shape, double std) {
    Tensor t = Tensor::empty(shape, DType::kF32);
    tensor::fill_normal(t, rng, 0.0, std);
    w[name] = t.to(dtype);
  };
  auto norm = [&](const std::string& name) {
    Tensor t = Tensor::empty({c.hidden_size}, DType::kF32);
    tensor::fill_normal(t, rng, 1.0, 0.05);
    w[name] = t.to(dtype);
  };
  int64_t h = c.hidden_size, kv = c.num_key_value_heads * c.head_dim();
  normal("model.embed_tokens.weight", {c.vocab_size, h}, 1.0);
  norm("model.norm.weight");
  if (!c.tie_word_embeddings) normal("lm_head.weight", {c.vocab_size, h}, 0.05);
  double s = 1.0 / std::sqrt(static_cast<double>(h));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    std::string p = fmt::format("model.layers.{}.", l);
    norm(p + "input_layernorm.weight");
    normal(p + "self_attn.q_proj.weight", {h, h}, s);
    normal(p + "self_attn.k_proj.weight", {kv, h}, s);
    normal(p + "self_attn.v_proj.weight", {kv, h}, s);
    normal(p + "self_attn.o_proj.weight", {h, h}, s);
    norm(p + "post_attention_layernorm.weight");
    normal(p + "mlp.gate_proj.weight", {c.intermediate_size, h}, s);
    normal(p + "mlp.up_proj.weight", {c.intermediate_size, h}, s);
    normal(p + "mlp.down_proj.weight", {h, c.intermediate_size}, 1.0 / std::sqrt(static_cast<double>(c.intermediate_size)));
  }
  LlamaConfig out = c;
  out.torch_dtype = dtype == DType::kF32 ? "float32" : dtype == DType::kF16 ? "float16" : "bfloat16";
  runtime::write_file_atomic(dir / "config.json", out.to_json());
  write_safetensors(dir / "model.safetensors", w, {{"format", "pt"}});
}

}  // namespace xp::serving
