// The Llama family (Llama-2/3, Mistral, Yi, …) for the engine: configured from a Hugging Face
// config.json, weights from safetensors (f32/f16/bf16, widened to f32 for this CPU reference), a
// paged KV cache addressed by the block manager's tables, and a forward pass over a flattened batch
// of prefill chunks and decodes (docs/scheduling.md, "A prompt in chunks"): each chunk attends to
// the cached prefix and causally to itself (mask aligned bottom-right). Linear layers run on Eigen
// with OpenMP over fixed blocks of output columns (the reduction is never split, so the thread
// count does not change results; set it with OMP_NUM_THREADS or set_num_threads). A model is
// immutable after loading; forward() writes only the KV cache.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dist/process_group.h"
#include "core/runtime/rng.h"
#include "core/tensor/tensor.h"

namespace xp::serving {

struct LlamaConfig {
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;
  int64_t vocab_size = 32000;
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  // Llama-3 RoPE scaling ("rope_type": "llama3"); factor 1 = none.
  double rope_factor = 1.0, rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position = 8192;
  std::string torch_dtype = "float32";

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // RoPE inverse frequencies (head_dim / 2 of them), Llama-3 scaling applied; both backends use these.
  std::vector<float> rope_inverse_frequencies() const;
  // Throws naming the file and the field (unsupported architecture included).
  static LlamaConfig from_json_file(const std::filesystem::path& path);
  // The same from config.json's text; `path` names it in errors.
  static LlamaConfig from_json(std::string_view text, const std::filesystem::path& path);
  std::string to_json() const;
};

// Which part of a model one tensor-parallel rank holds (Megatron-style): its query heads, the
// KV heads they read (each rank its own when kv heads ≥ TP, else the one its query heads share,
// replicated), its columns of the MLP, its rows of the vocabulary. Throws std::invalid_argument
// saying why `c` cannot be split `size` ways.
struct TensorShard {
  int64_t heads, head0;        // query heads [head0, head0 + heads)
  int64_t kv_heads, kv_head0;  // KV heads held
  int64_t inter, inter0;       // MLP columns
  int64_t vocab, vocab0;       // LM-head rows (the split may be uneven by one)
  int64_t vocab_max;           // the largest rank's share, for the gather
  static TensorShard of(const LlamaConfig& c, int rank, int size);
};

// Which layers one pipeline stage runs (Mnemosyne's SPP, docs/mnemosyne.md): stage s of P runs
// layers [s·L/P, (s+1)·L/P) (P must divide L); stage 0 embeds the tokens, the last computes the logits.
struct PipelineStage {
  int64_t stage = 0, stages = 1;
  int64_t first_layer(const LlamaConfig& c) const { return stage * c.num_hidden_layers / stages; }
  int64_t end_layer(const LlamaConfig& c) const { return (stage + 1) * c.num_hidden_layers / stages; }
  bool last() const { return stage == stages - 1; }
};

// K and V for every layer (of a pipeline stage: its layers): [num_blocks, block_size, kv_heads,
// head_dim] f32 each; `kv_heads` = 0 for the config's (a tensor-parallel rank holds only its own).
class KvCache {
 public:
  KvCache(const LlamaConfig& c, int64_t num_blocks, int64_t block_size, int64_t kv_heads = 0, int64_t layers = 0);
  float* k(int64_t layer, int64_t slot) { return k_[static_cast<size_t>(layer)].data() + slot * row_; }
  float* v(int64_t layer, int64_t slot) { return v_[static_cast<size_t>(layer)].data() + slot * row_; }
  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }

 private:
  int64_t num_blocks_, block_size_, row_;
  std::vector<std::vector<float>> k_, v_;
};

// Under KV parallelism (Mnemosyne's KVP, docs/mnemosyne.md), the contiguous part of a sequence's
// KV one rank holds: from position `first_position`, `cached` tokens before this pass (-1: all
// of start_position, as without KVP); `appends`: this rank stores the new tokens (the last group).
struct KvSlice {
  int64_t first_position = 0;
  int64_t cached = -1;
  bool appends = true;
};

// One sequence's work in a forward pass.
struct ForwardItem {
  ForwardItem() = default;
  ForwardItem(std::span<const int32_t> new_tokens, int64_t start, const std::vector<int32_t>* table, KvSlice slice = {})
      : tokens(new_tokens), start_position(start), block_table(table), kv(slice) {}
  std::span<const int32_t> tokens;         // the new tokens (a prefill chunk, or one decode token)
  int64_t start_position = 0;              // tokens already in the KV cache for this sequence
  const std::vector<int32_t>* block_table = nullptr;  // KV blocks of this sequence (this rank's slice's)
  KvSlice kv;                              // this rank's slice under KV parallelism
};

class LlamaModel {
 public:
  // `path`: a folder with config.json and model.safetensors (or the sharded index). With a
  // tensor-parallel group of several ranks, this rank reads only its TensorShard's slices.
  // With a KV-parallel group, each rank holds a slice of every sequence's KV (ForwardItem::kv):
  // every rank runs the whole pass (the query goes to every group), attends over its own slice,
  // and the group merges the partial outputs exactly by their log-sum-exp.
  // With a pipeline stage, it reads and runs only that stage's layers (and every stage the
  // embedding, final norm and LM head).
  static std::unique_ptr<LlamaModel> load(const std::filesystem::path& path, dist::ProcessGroup* tp = nullptr,
                                          dist::ProcessGroup* kvp = nullptr, PipelineStage stage = {});
  // `weights` in load order (weights()), shaped as `tp`'s rank's shard when a group is given;
  // forward() then takes part in the groups' collectives, which every rank must call alike.
  LlamaModel(LlamaConfig config, std::vector<tensor::Tensor> weights, dist::ProcessGroup* tp = nullptr,
             dist::ProcessGroup* kvp = nullptr, PipelineStage stage = {});
  ~LlamaModel();

  const LlamaConfig& config() const { return cfg_; }  // the whole model's, also on a shard
  // A paged KV cache for this model's KV heads (a tensor-parallel shard holds only its own).
  KvCache make_kv_cache(int64_t num_blocks, int64_t block_size) const;
  int tensor_parallel() const;
  // Linear layers over up to this many rows (decode batches) run as matrix-vector products,
  // larger ones as GEMMs: the cost per row jumps past it, so the profile times both sides.
  static constexpr int64_t kMatVecRows = 8;
  // The f32 weights in load order: embedding, final norm, LM head, then per layer input norm,
  // q, k, v, o, post-attention norm, gate, up, down (for other backends to upload).
  const std::vector<tensor::Tensor>& weights() const;
  // Runs the batch, writing each new token's K and V into `cache`; returns the logits of each
  // item's last token ([items, vocab], row-major; every tensor-parallel rank gets them all:
  // o_proj and down_proj end in an all-reduce, the LM head's vocabulary slices in an all-gather). Token ids outside the vocabulary and
  // positions past max_position_embeddings throw std::invalid_argument naming the item.
  std::vector<float> forward(const std::vector<ForwardItem>& items, KvCache& cache) const;
  // A pipeline stage's part of the pass: stage 0 starts from the tokens, a later stage from
  // `hidden`, the previous stage's output ([tokens, hidden_size]); the last stage returns the
  // logits as forward() does, the others their hidden states.
  std::vector<float> forward(const std::vector<ForwardItem>& items, KvCache& cache, std::span<const float> hidden) const;
  const PipelineStage& pipeline_stage() const;

  // Profile mode: one timed forward pass, in milliseconds per operator (the profiler repeats
  // and aggregates), over `batch` sequences of `new_tokens` each after `kv` cached tokens. Each
  // operator is timed inside the pass, so that caches, thread wake-ups and temporaries are as
  // when serving, and averaged over the layers, under Vidur's names ("attention" for the
  // attention itself); "lm_head" (final norm and LM head, once per pass) and "forward" (the
  // whole pass: what the operators leave out, embedding and gathers, shows there). Before it
  // every weight a forward reads is read, so the weights are in cache only if the whole model
  // fits there. On a tensor-parallel shard, every rank of the group calls it alike (the pass's
  // collectives), and the projections' times leave out their all-reduce.
  using OperatorMs = std::map<std::string, double>;
  OperatorMs profile_forward(int64_t batch, int64_t new_tokens, int64_t kv) const;

 private:
  // forward(), adding each operator's time to `times` when given.
  std::vector<float> forward(const std::vector<ForwardItem>& items, KvCache& cache, OperatorMs* times,
                             std::span<const float> hidden = {}) const;
  // One timed run of `f` (ms) after every weight a forward reads has been read (the caches as a
  // forward leaves them).
  double time_as_in_a_forward(const std::function<void()>& f) const;
  struct Impl;
  LlamaConfig cfg_;
  std::unique_ptr<Impl> impl_;
};

// Threads the linear layers use (0 = all cores).
void set_num_threads(int n);

struct SamplingParams {
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = all
  double top_p = 1.0;        // nucleus mass
};

// Samples one token. With a counter-based stream seeked per (request, token index), the choice
// is the same whatever else ran in the batch and however often the request was preempted.
int32_t sample_token(std::span<const float> logits, const SamplingParams& p, runtime::RngStream& rng);

// The checkpoint's end-of-sequence ids: "eos_token_id" (one id or a list) of
// generation_config.json, else of config.json; empty when neither names any.
std::set<int32_t> eos_token_ids(const std::filesystem::path& model_dir);

// A random-weight model of any shape in exactly the Hugging Face layout (config.json +
// model.safetensors), so tests and benchmarks need no download.
void write_random_llama(const std::filesystem::path& dir, const LlamaConfig& c, uint64_t seed,
                        tensor::DType dtype = tensor::DType::kF32);

}  // namespace xp::serving
