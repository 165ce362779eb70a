// The CUDA backend of the Llama model: the same forward() contract as LlamaModel (a flattened
// batch of prefill chunks and decodes over a paged KV cache), with bf16 weights (q/k/v and
// gate/up fused into one matrix each) and f32 accumulation: a bandwidth-bound matrix-vector
// kernel for decode batches of up to 4 rows, cuBLAS above; our kernels for embedding, RMSNorm,
// RoPE + KV-cache write, SwiGLU and paged attention (tensor-core flash attention for prefill
// chunks, split-context attention for decodes). Activations stay f32, the KV cache is bf16.
// Built under EXP_CUDA; elsewhere constructing one throws. The CPU LlamaModel is the reference
// it is tested against (tests labelled `cuda`). Not thread-safe.
#pragma once
#include <memory>
#include <vector>

#include "serving/model/llama.h"

namespace xp::serving {

bool llama_cuda_available();

class LlamaCudaModel {
 public:
  // Uploads `cpu`'s weights (as bf16) and allocates a KV cache of `num_kv_blocks` blocks.
  LlamaCudaModel(const LlamaModel& cpu, int64_t num_kv_blocks, int64_t block_size);
  // Random bf16 weights made on the device (uniform, ±1/√fan-in; norms 1): benchmarks of large
  // shapes (Llama-2-7B) need no checkpoint and no host copy. Deterministic for a seed.
  LlamaCudaModel(const LlamaConfig& config, uint64_t seed, int64_t num_kv_blocks, int64_t block_size);
  ~LlamaCudaModel();
  LlamaCudaModel(const LlamaCudaModel&) = delete;
  LlamaCudaModel& operator=(const LlamaCudaModel&) = delete;

  const LlamaConfig& config() const { return cfg_; }
  // As LlamaModel::forward; the KV cache is the model's own. Logits come back to the host.
  // A batch whose shape repeats (decode steps) replays a CUDA graph of the whole pass from its
  // second occurrence on; the results are those of running it eagerly.
  std::vector<float> forward(const std::vector<ForwardItem>& items);
  int64_t graph_replays() const;  // forward passes run as a graph so far

 private:
  struct Impl;
  LlamaConfig cfg_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xp::serving
