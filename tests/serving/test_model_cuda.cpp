// The CUDA Llama against the CPU reference (label cuda: skips where no GPU is visible). The CPU
// runs f32 arithmetic on the bf16 checkpoint's values; the GPU feeds its GEMMs and attention bf16
// activations (and keeps K/V in bf16) with f32 accumulation, so logits agree to bf16 rounding:
// |Δ| ≤ 0.05 (logits here are O(1–10)). Each comparison prints its measured difference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

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

// Head size 128 with grouped queries (2 query heads per KV head): the shape of Llama-2/3 heads.
LlamaConfig wide_heads() {
  LlamaConfig c = small();
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.num_hidden_layers = 2;
  return c;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& ref, double bound, const char* what) {
  double diff = max_abs_diff(got, ref);
  std::printf("  %s: max |Δ logits| = %.4g (bound %.3g)\n", what, diff, bound);
  EXPECT_LE(diff, bound) << what;
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
    cpu_ = make(small());
  }
  std::unique_ptr<LlamaModel> make(const LlamaConfig& c) {
    auto dir = std::make_unique<testing::TempDir>();
    write_random_llama(dir->path(), c, 8, tensor::DType::kBF16);
    auto m = LlamaModel::load(dir->path());
    dirs_.push_back(std::move(dir));
    return m;
  }
  // Prefills each prompt on both backends (block tables 0.., one after another), then runs one
  // decode step for all of them as one batch; returns {gpu, cpu} logits of that step.
  std::pair<std::vector<float>, std::vector<float>> decode_after(const LlamaModel& cpu, const std::vector<int>& lengths) {
    const int64_t bs = 16;
    int64_t blocks = 0;
    for (int n : lengths) blocks += n / bs + 1;
    LlamaCudaModel gpu(cpu, blocks, bs);
    KvCache cache(cpu.config(), blocks, bs);
    tables_.assign(lengths.size(), {});
    prompts_.clear();
    int32_t next_block = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      for (int b = 0; b <= lengths[i] / bs; ++b) tables_[i].push_back(next_block++);
      prompts_.push_back(prompt(lengths[i]));
      std::vector<ForwardItem> one = {{std::span<const int32_t>(prompts_.back()), 0, &tables_[i]}};
      cpu.forward(one, cache);
      gpu.forward(one);
    }
    std::vector<ForwardItem> step;
    for (size_t i = 0; i < lengths.size(); ++i)
      step.push_back({std::span<const int32_t>(&kNext, 1), lengths[i], &tables_[i]});
    auto got = gpu.forward(step);
    return {got, cpu.forward(step, cache)};
  }
  static constexpr int32_t kNext = 42;
  std::vector<std::unique_ptr<testing::TempDir>> dirs_;
  std::vector<std::vector<int32_t>> tables_, prompts_;
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
  expect_close(got, ref, 0.05, "70-token prefill");
  int32_t next = 42;
  ref = cpu_->forward({{std::span<const int32_t>(&next, 1), 70, &table}}, cache);
  got = gpu.forward({{std::span<const int32_t>(&next, 1), 70, &table}});
  expect_close(got, ref, 0.05, "decode after it");
}

TEST_F(CudaModel, LongPrefillAfterACachedPrefixMatchesTheCpuReferenceAtHeadSize128) {
  auto cpu = make(wide_heads());
  LlamaCudaModel gpu(*cpu, 16, 16);
  KvCache cache(wide_heads(), 16, 16);
  auto toks = prompt(187);
  std::vector<int32_t> table = {9, 2, 14, 0, 5, 11, 3, 7, 1, 12, 4, 8};
  // 37 cached tokens (not a block multiple), then a 150-token chunk: tiles of 64, 64 and 22 rows.
  for (auto [start, count] : {std::pair<int64_t, size_t>{0, 37}, {37, 150}}) {
    std::vector<ForwardItem> chunk = {{std::span<const int32_t>(toks.data() + start, count), start, &table}};
    auto ref = cpu->forward(chunk, cache);
    expect_close(gpu.forward(chunk), ref, 0.05, start == 0 ? "37-token prefix" : "150-token chunk after it");
  }
}

TEST_F(CudaModel, RepeatedDecodeStepsReplayAGraphAndMatchTheCpuReference) {
  // Batches of 1 (our matrix-vector kernel) and 5 rows (cuBLAS, captured too), 5 steps each:
  // the first step of a shape runs eagerly, the second captures it, every later one replays.
  for (int batch : {1, 5}) {
    LlamaCudaModel gpu(*cpu_, 16, 16);
    KvCache cache(small(), 16, 16);
    std::vector<std::vector<int32_t>> tables;
    auto toks = prompt(30);
    for (int b = 0; b < batch; ++b) {
      tables.push_back({3 * b, 3 * b + 1, 3 * b + 2});
      std::vector<ForwardItem> one = {{std::span<const int32_t>(toks), 0, &tables.back()}};
      cpu_->forward(one, cache);
      gpu.forward(one);
    }
    std::vector<int32_t> next(static_cast<size_t>(batch), 42);
    const int64_t before = gpu.graph_replays();  // the prompts' repeated shape replays too
    for (int step = 0; step < 5; ++step) {
      std::vector<ForwardItem> items;
      for (int b = 0; b < batch; ++b) items.push_back({std::span<const int32_t>(&next[static_cast<size_t>(b)], 1), 30 + step, &tables[static_cast<size_t>(b)]});
      expect_close(gpu.forward(items), cpu_->forward(items, cache), 0.05, batch == 1 ? "decode step, batch 1" : "decode step, batch 5");
      for (auto& t : next) t = (t * 7 + step) % 500;
    }
    EXPECT_EQ(gpu.graph_replays() - before, 4) << "batch " << batch;
  }
}

TEST_F(CudaModel, DecodesOverLongContextsSplitAndMatchTheCpuReference) {
  // Contexts of 301, 18 and 451 keys: 8 ranges of 64, the short row's later ones empty.
  auto [got, ref] = decode_after(*cpu_, {300, 17, 450});
  expect_close(got, ref, 0.05, "decode batch of 3 over long contexts");
}

TEST_F(CudaModel, DecodeBatchesAboveTheMatrixVectorKernelsLimitMatchTheCpuReference) {
  auto [got, ref] = decode_after(*cpu_, {5, 40, 16, 33, 1, 70});  // 6 rows: cuBLAS GEMMs
  expect_close(got, ref, 0.05, "decode batch of 6");
}

TEST_F(CudaModel, UnusualHeadSizesRunThePlainKernelAndMatchTheCpuReference) {
  LlamaConfig c = small();
  c.hidden_size = 192;  // head size 48: neither 64 nor 128
  auto cpu = make(c);
  auto [got, ref] = decode_after(*cpu, {40, 3});
  expect_close(got, ref, 0.05, "head size 48");
}

TEST_F(CudaModel, NormWeightsFoldedIntoTheNextMatricesStillScaleEachColumn) {
  // The GPU folds each layer's RMSNorm weights into the q/k/v and gate/up columns. Weights from
  // 0.25 to 1.75 (the checkpoint's are ~1 ± 0.05) make a missed or misplaced fold visible.
  std::vector<tensor::Tensor> w = cpu_->weights();
  const int64_t layers = small().num_hidden_layers;
  for (int64_t l = 0; l < layers; ++l)
    for (size_t i : {3 + 9 * static_cast<size_t>(l), 8 + 9 * static_cast<size_t>(l)}) {  // input, post-attention norms
      w[i] = w[i].clone();
      float* g = w[i].data<float>();
      for (int64_t c = 0; c < w[i].numel(); ++c) g[c] *= 0.25f + 0.25f * static_cast<float>((c * 5 + i) % 7);
    }
  LlamaModel cpu(small(), w);
  auto [got, ref] = decode_after(cpu, {40, 3});  // prefills on cuBLAS, the decode on the fused kernel
  expect_close(got, ref, 0.05, "decode with varied norm weights");
  std::vector<int32_t> table = {0, 1, 2, 3};
  KvCache cache(small(), 4, 16);
  auto toks = prompt(50);
  std::vector<ForwardItem> item = {{std::span<const int32_t>(toks), 0, &table}};
  expect_close(LlamaCudaModel(cpu, 4, 16).forward(item), cpu.forward(item, cache), 0.05, "prefill with varied norm weights");
}

TEST_F(CudaModel, RandomDeviceWeightsAreDeterministicForASeed) {
  LlamaConfig c = wide_heads();
  LlamaCudaModel a(c, 7, 4, 16), b(c, 7, 4, 16), other(c, 8, 4, 16);
  auto toks = prompt(20);
  std::vector<int32_t> table = {0, 1};
  std::vector<ForwardItem> item = {{std::span<const int32_t>(toks), 0, &table}};
  auto la = a.forward(item);
  ASSERT_EQ(la.size(), static_cast<size_t>(c.vocab_size));
  for (float v : la) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(la, b.forward(item));
  EXPECT_NE(la, other.forward(item));
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
  // Chunks of 9 and 1 rows run the per-row kernel (f32 queries and probabilities), 16 and 35 the
  // tiled one (bf16 operands), and cuBLAS tiles each row count differently: the chunkings agree
  // to bf16 rounding, as the backends do.
  expect_close(full, chunked, 0.05, "chunked vs one-shot");
}

TEST_F(CudaModel, MixedBatchMatchesTheCpuBatch) {
  LlamaCudaModel gpu(*cpu_, 16, 16);
  KvCache cache(small(), 16, 16);
  auto p1 = prompt(20), p2 = prompt(33);
  std::vector<int32_t> t1 = {0, 1}, t2 = {4, 5, 6};
  std::vector<ForwardItem> batch = {{std::span<const int32_t>(p1), 0, &t1}, {std::span<const int32_t>(p2), 0, &t2}};
  expect_close(gpu.forward(batch), cpu_->forward(batch, cache), 0.05, "mixed batch");
}

TEST(CudaModelWithoutGpu, ConstructionSaysWhy) {
  if (llama_cuda_available()) GTEST_SKIP() << "a GPU is present";
  testing::TempDir d;
  LlamaConfig c = small();
  c.num_hidden_layers = 1;
  write_random_llama(d.path(), c, 1);
  auto cpu = LlamaModel::load(d.path());
  EXPECT_THROW(LlamaCudaModel(*cpu, 4, 16), std::runtime_error);
  EXPECT_THROW(LlamaCudaModel(c, 1, 4, 16), std::runtime_error);
}

}  // namespace xp::serving
