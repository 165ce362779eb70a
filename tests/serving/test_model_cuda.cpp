// The CUDA Llama against the CPU reference (label cuda: skips where no GPU is visible). The CPU
// runs f32 arithmetic on the bf16 checkpoint's values; the GPU feeds its GEMMs bf16 activations
// with f32 accumulation, so logits agree to bf16 rounding: |Δ| ≤ 0.05 (logits here are O(1–10)).
#include <gtest/gtest.h>

#include <cmath>

#include "serving/model/llama_cuda.h"
#include "tests/support/temp_dir.h"

namespace xp::serving {
namespace {

LlamaConfig small() {
  LlamaConfig c;
  c.hidden_size = 256;
  c.intermediate_size = 640;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;  // head_dim 64
  c.num_key_value_heads = 2;
  c.vocab_size = 500;
  c.max_position_embeddings = 512;
  c.rope_factor = 4.0;
  c.rope_original_max_position = 128;
  return c;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

std::vector<int32_t> prompt(int n) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + 11) % 500);
  return t;
}

class CudaModel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!llama_cuda_available()) GTEST_SKIP() << "no CUDA device visible";
    write_random_llama(dir_.path(), small(), 8, tensor::DType::kBF16);
    cpu_ = LlamaModel::load(dir_.path());
  }
  testing::TempDir dir_;
  std::unique_ptr<LlamaModel> cpu_;
};

}  // namespace

TEST_F(CudaModel, PrefillAndDecodeMatchTheCpuReference) {
  LlamaCudaModel gpu(*cpu_, 16, 16);
  KvCache cache(small(), 16, 16);
  auto toks = prompt(70);
  std::vector<int32_t> table = {3, 1, 7, 0, 5};
  auto ref = cpu_->forward({{std::span<const int32_t>(toks), 0, &table}}, cache);
  auto got = gpu.forward({{std::span<const int32_t>(toks), 0, &table}});
  EXPECT_LE(max_abs_diff(got, ref), 0.05);
  int32_t next = 42;
  ref = cpu_->forward({{std::span<const int32_t>(&next, 1), 70, &table}}, cache);
  got = gpu.forward({{std::span<const int32_t>(&next, 1), 70, &table}});
  EXPECT_LE(max_abs_diff(got, ref), 0.05);
}

TEST_F(CudaModel, ChunkedPrefillMatchesOneShot) {
  auto toks = prompt(61);
  std::vector<int32_t> table = {0, 1, 2, 3};
  LlamaCudaModel a(*cpu_, 8, 16), b(*cpu_, 8, 16);
  auto full = a.forward({{std::span<const int32_t>(toks), 0, &table}});
  std::vector<float> chunked;
  int64_t start = 0;
  for (int64_t c : {9, 16, 1, 35}) {
    chunked = b.forward({{std::span<const int32_t>(toks.data() + start, static_cast<size_t>(c)), start, &table}});
    start += c;
  }
  EXPECT_LE(max_abs_diff(full, chunked), 1e-2);  // bf16 GEMM inputs: chunk size changes cuBLAS tiling
}

TEST_F(CudaModel, MixedBatchMatchesTheCpuBatch) {
  LlamaCudaModel gpu(*cpu_, 16, 16);
  KvCache cache(small(), 16, 16);
  auto p1 = prompt(20), p2 = prompt(33);
  std::vector<int32_t> t1 = {0, 1}, t2 = {4, 5, 6};
  std::vector<ForwardItem> batch = {{std::span<const int32_t>(p1), 0, &t1}, {std::span<const int32_t>(p2), 0, &t2}};
  EXPECT_LE(max_abs_diff(gpu.forward(batch), cpu_->forward(batch, cache)), 0.05);
}

TEST(CudaModelWithoutGpu, ConstructionSaysWhy) {
  if (llama_cuda_available()) GTEST_SKIP() << "a GPU is present";
  testing::TempDir d;
  LlamaConfig c = small();
  c.num_hidden_layers = 1;
  write_random_llama(d.path(), c, 1);
  auto cpu = LlamaModel::load(d.path());
  EXPECT_THROW(LlamaCudaModel(*cpu, 4, 16), std::runtime_error);
}

}  // namespace xp::serving
