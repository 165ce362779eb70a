// Tensor parallelism on the thread backend (TP = 2 and 4, GQA with KV heads < TP at 4), the
// shard layout, and the step plan the controller sends its workers.
#include <gtest/gtest.h>

#include "core/dist/thread_group.h"
#include "serving/model/safetensors.h"
#include "tests/serving/tensor_parallel_checks.h"
#include "tests/support/temp_dir.h"

namespace xp::serving {
namespace {

class TensorParallel : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { write_random_llama(dir_.path(), tp_checks::model_config(), 11); }
  testing::TempDir dir_;
};

TEST_P(TensorParallel, ForwardMatchesTheWholeModel) {
  dist::run_threads(GetParam(), dist::Seconds(30), [&](dist::ProcessGroup& g) { tp_checks::forward_matches_the_whole_model(g, dir_.path()); });
}

// KVP 2 on its own (2 ranks) and with TP 2 (4 ranks).
TEST_P(TensorParallel, KvParallelForwardMatchesTheWholeModel) {
  dist::run_threads(GetParam(), dist::Seconds(30),
                    [&](dist::ProcessGroup& g) { tp_checks::kv_parallel_forward_matches_the_whole_model(g, dir_.path()); });
}

TEST_P(TensorParallel, KvParallelEngineServesTheSameGreedyTokens) {
  const RankLayout layout{GetParam() / 2, 2, 1};  // KVP 2, then TP 2 × KVP 2
  dist::run_threads(GetParam(), dist::Seconds(30), [&](dist::ProcessGroup& g) {
    tp_checks::model_parallel_engine_serves_the_same_greedy_tokens(g, dir_.path(), layout);
  });
}

// Mnemosyne's SPP in the engine: 2 stages (SPP 2), then 2 stages × KVP 2; with and without
// sequence pipelining.
TEST_P(TensorParallel, PipelineStagesServeTheSameGreedyTokens) {
  const RankLayout layout{1, GetParam() / 2, 2};
  for (bool spp : {true, false})
    dist::run_threads(GetParam(), dist::Seconds(30), [&](dist::ProcessGroup& g) {
      tp_checks::model_parallel_engine_serves_the_same_greedy_tokens(g, dir_.path(), layout, spp);
    });
}

TEST_P(TensorParallel, EngineServesTheSameGreedyTokens) {
  dist::run_threads(GetParam(), dist::Seconds(30),
                    [&](dist::ProcessGroup& g) { tp_checks::engine_serves_the_same_greedy_tokens(g, dir_.path()); });
}

INSTANTIATE_TEST_SUITE_P(Degrees, TensorParallel, ::testing::Values(2, 4));

// A layout's ranks as threads (how engine_serve and engine_fidelity run one): the engine reports
// every batch with each KV-parallel group's view of it and whether it shared the pipeline with
// another; under SPP some do, and a scheduler that keeps one batch in flight on the same stages
// (how engine_fidelity calibrates) serves the same tokens with every batch alone.
TEST(RankThreads, EngineReportsEachBatchsGroupsAndWhetherItSharedThePipeline) {
  testing::TempDir dir;
  write_random_llama(dir.path(), tp_checks::model_config(), 11);
  const RankLayout layout{1, 2, 2};
  struct Seen {
    size_t iterations = 0, shared = 0, merged = 0, without_two_groups = 0;
    EngineResult result;
  };
  auto serve = [&](int64_t in_flight, bool spp) {
    Seen seen;
    run_ranks_in_threads(dir.path(), layout, 120, 16, dist::Seconds(30), 1, [&](std::unique_ptr<ModelRunner> runner) {
      seen.result = tp_checks::serve(std::move(runner), 2, in_flight, spp, [&](const EngineIteration& it) {
        ++seen.iterations;
        seen.shared += it.shared_pipeline;
        seen.without_two_groups += it.groups.size() != 2 || !(it.seconds > 0);
        seen.merged += std::any_of(it.groups.begin(), it.groups.end(), [](const BatchShape& g) { return !g.kvp_merges.empty(); });
      });
    });
    return seen;
  };
  const Seen pipelined = serve(2, true), alone = serve(1, false);
  ASSERT_EQ(pipelined.result.outputs.size(), 8u);
  EXPECT_EQ(pipelined.result.outputs, alone.result.outputs);
  EXPECT_EQ(pipelined.iterations, static_cast<size_t>(pipelined.result.iterations));
  EXPECT_GT(pipelined.shared, 0u);
  EXPECT_EQ(alone.shared, 0u);
  EXPECT_EQ(alone.result.most_in_flight, 1);
  EXPECT_EQ(pipelined.without_two_groups + alone.without_two_groups, 0u);
  EXPECT_GT(pipelined.merged, 0u);  // prompts past 32 tokens span both groups
}

TEST(TensorShard, SplitsHeadsMlpAndAnUnevenVocabulary) {
  LlamaConfig c = tp_checks::model_config();  // 4 heads, 2 KV heads, MLP 128, vocabulary 97
  TensorShard s = TensorShard::of(c, 1, 2);
  EXPECT_EQ(s.heads, 2);
  EXPECT_EQ(s.head0, 2);
  EXPECT_EQ(s.kv_heads, 1);
  EXPECT_EQ(s.kv_head0, 1);
  EXPECT_EQ(s.inter, 64);
  EXPECT_EQ(s.inter0, 64);
  EXPECT_EQ(s.vocab0 + s.vocab, 97);
  EXPECT_EQ(TensorShard::of(c, 0, 2).vocab + s.vocab, 97);
  EXPECT_EQ(s.vocab_max, 49);
}

TEST(TensorShard, KvHeadsFewerThanRanksAreReplicatedToTheRanksThatReadThem) {
  LlamaConfig c = tp_checks::model_config();  // query heads 0,1 read KV head 0; 2,3 read KV head 1
  for (int r = 0; r < 4; ++r) {
    TensorShard s = TensorShard::of(c, r, 4);
    EXPECT_EQ(s.heads, 1);
    EXPECT_EQ(s.kv_heads, 1);
    EXPECT_EQ(s.kv_head0, r / 2) << "rank " << r;
  }
}

TEST(TensorShard, ALayoutThatDoesNotSplitSaysWhy) {
  LlamaConfig c = tp_checks::model_config();
  EXPECT_THROW(
      {
        try {
          TensorShard::of(c, 0, 3);
        } catch (const std::invalid_argument& e) {
          EXPECT_NE(std::string(e.what()).find("4 attention heads do not split 3 ways"), std::string::npos) << e.what();
          throw;
        }
      },
      std::invalid_argument);
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.intermediate_size = 100;
  EXPECT_THROW(TensorShard::of(c, 0, 8), std::invalid_argument);  // 100 MLP columns
}

TEST(TensorParallelLoading, EachRankReadsOnlyItsSlices) {
  testing::TempDir dir;
  write_random_llama(dir.path(), tp_checks::model_config(), 11);
  SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir.path());
  dist::run_threads(2, dist::Seconds(30), [&](dist::ProcessGroup& g) {
    auto shard = LlamaModel::load(dir.path(), &g);
    const auto& w = shard->weights();  // embed, norm, lm_head, then per layer in_norm q k v o …
    EXPECT_EQ(w[2].shape(), (std::vector<int64_t>{g.rank() == 0 ? 48 : 49, 64}));  // 97 rows split 48 + 49
    EXPECT_EQ(w[4].shape(), (std::vector<int64_t>{32, 64}));                         // q: 2 heads of 16
    EXPECT_EQ(w[5].shape(), (std::vector<int64_t>{16, 64}));                         // k: 1 KV head
    EXPECT_EQ(w[7].shape(), (std::vector<int64_t>{64, 32}));                         // o: its heads' columns
    EXPECT_EQ(w[11].shape(), (std::vector<int64_t>{64, 64}));                        // down: its MLP columns
    // o's columns are the checkpoint's, bit for bit.
    tensor::Tensor o = ckpt.load("model.layers.0.self_attn.o_proj.weight");
    for (int64_t r = 0; r < 64; ++r)
      for (int64_t c = 0; c < 32; ++c)
        ASSERT_EQ(w[7].data<float>()[r * 32 + c], o.data<float>()[r * 64 + g.rank() * 32 + c]);
  });
}

TEST(StepPlan, RoundTripsThroughItsBytes) {
  std::vector<int32_t> a = {5, 6, 7}, b = {8}, ta = {0, 3}, tb = {9};
  StepPlan p = StepPlan::of({{std::span<const int32_t>(a), 0, &ta}, {std::span<const int32_t>(b), 40, &tb}});
  StepPlan q = StepPlan::decode(p.encode());
  ASSERT_EQ(q.items.size(), 2u);
  EXPECT_EQ(q.kind, StepPlan::Kind::kForward);
  EXPECT_EQ(q.items[0].tokens, a);
  EXPECT_EQ(q.items[1].start_position, 40);
  EXPECT_EQ(q.items[1].block_table, tb);
  std::vector<ForwardItem> items = q.forward_items();
  EXPECT_EQ(items[0].tokens.size(), 3u);
  EXPECT_EQ(*items[0].block_table, ta);
}

// Pipeline stages: each holds its layers (and cache); the first embeds, the last computes the
// logits, in between the hidden states pass on. Two stages chained are the whole model.
TEST(PipelineStages, ChainedStagesAreTheWholeModel) {
  testing::TempDir dir;
  write_random_llama(dir.path(), tp_checks::model_config(), 11);
  auto whole = LlamaModel::load(dir.path());
  auto first = LlamaModel::load(dir.path(), nullptr, nullptr, {0, 2}), second = LlamaModel::load(dir.path(), nullptr, nullptr, {1, 2});
  KvCache cw = whole->make_kv_cache(8, 16), c0 = first->make_kv_cache(8, 16), c1 = second->make_kv_cache(8, 16);
  const std::vector<int32_t> a = tp_checks::tokens(21, 3), table = {2, 5};
  for (auto [start, n] : {std::pair<int64_t, int64_t>{0, 20}, {20, 1}}) {
    const std::vector<ForwardItem> items = {{std::span<const int32_t>(a.data() + start, static_cast<size_t>(n)), start, &table}};
    const std::vector<float> want = whole->forward(items, cw);
    const std::vector<float> hidden = first->forward(items, c0, std::span<const float>());
    EXPECT_EQ(hidden.size(), static_cast<size_t>(n * tp_checks::model_config().hidden_size));
    EXPECT_EQ(second->forward(items, c1, hidden), want);  // the same operations in the same order
  }
  EXPECT_THROW(LlamaModel::load(dir.path(), nullptr, nullptr, {0, 3}), std::runtime_error);  // 2 layers, 3 stages
}

TEST(StepPlan, CarriesEachKvParallelGroupsViewOfTheBatch) {
  std::vector<int32_t> a = {5, 6}, t0 = {1, 2}, t1 = {7}, none;
  StepPlan p = StepPlan::decode(StepPlan::of(std::vector<std::vector<ForwardItem>>{
                                                 {{std::span<const int32_t>(a), 40, &t0, KvSlice{0, 32, false}}},
                                                 {{std::span<const int32_t>(a), 40, &t1, KvSlice{32, 8, true}}}})
                                    .encode());
  EXPECT_EQ(p.groups, 2u);
  std::vector<ForwardItem> g1 = p.forward_items(1);
  ASSERT_EQ(g1.size(), 1u);
  EXPECT_EQ(*g1[0].block_table, t1);
  EXPECT_EQ(g1[0].kv.first_position, 32);
  EXPECT_EQ(g1[0].kv.cached, 8);
  EXPECT_TRUE(g1[0].kv.appends);
  EXPECT_FALSE(p.forward_items(0)[0].kv.appends);
}

TEST(StepPlan, MalformedBytesAreRefusedNotRead) {
  std::vector<int32_t> a = {5, 6, 7}, ta = {0};
  std::vector<std::byte> bytes = StepPlan::of({{std::span<const int32_t>(a), 0, &ta}}).encode();
  EXPECT_THROW(StepPlan::decode(std::span<const std::byte>(bytes.data(), bytes.size() - 1)), std::runtime_error);
  bytes.push_back(std::byte{0});
  EXPECT_THROW(StepPlan::decode(bytes), std::runtime_error);
  bytes[0] = std::byte{9};
  EXPECT_THROW(StepPlan::decode(bytes), std::runtime_error);
}

TEST(TensorParallelFaults, AControllerThatStopsSendingIsNamedByItsWorkers) {
  testing::TempDir dir;
  write_random_llama(dir.path(), tp_checks::model_config(), 11);
  try {
    dist::run_threads(2, dist::Seconds(0.5), [&](dist::ProcessGroup& g) {
      auto shard = LlamaModel::load(dir.path(), &g);
      if (g.rank() == 1) return serve_model_parallel_worker(*shard, g, 8, 16);
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a controller stuck before its first step
    });
    FAIL() << "no error";
  } catch (const dist::CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("broadcast on group 'world (threads)', rank 1 of 2 timed out after 0.5 s waiting for rank 0"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace xp::serving
