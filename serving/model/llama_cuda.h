// The CUDA backend of the Llama model: the same forward() contract as LlamaModel (a flattened
// batch of prefill chunks and decodes over a paged KV cache), with bf16 weights and cuBLAS
// GEMMs accumulating in f32, and our own kernels for embedding, RMSNorm, RoPE, SwiGLU, KV-cache
// writes and paged attention (online softmax over the block table). Activations and the KV
// cache stay f32. Built under EXP_CUDA; elsewhere constructing one throws. The CPU LlamaModel is
// the reference it is tested against (tests labelled `cuda`). Not thread-safe.
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
  ~LlamaCudaModel();
  LlamaCudaModel(const LlamaCudaModel&) = delete;
  LlamaCudaModel& operator=(const LlamaCudaModel&) = delete;

  const LlamaConfig& config() const { return cfg_; }
  // As LlamaModel::forward; the KV cache is the model's own. Logits come back to the host.
  std::vector<float> forward(const std::vector<ForwardItem>& items);

 private:
  struct Impl;
  LlamaConfig cfg_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xp::serving
