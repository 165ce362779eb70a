// Tensor parallelism against one process, written once over the ProcessGroup interface and run
// on threads (test_tensor_parallel.cpp) and under mpirun -np 2 and 4 (test_tensor_parallel_mpi.cpp).
// Every rank also loads the whole model and computes the reference itself.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>

#include "core/dist/process_group.h"
#include "serving/engine/engine.h"
#include "tests/support/tiny_llama.h"

namespace xp::serving::tp_checks {

// Two layers, 4 query heads over 2 KV heads (TP = 4 replicates KV heads), a prime vocabulary of
// 97 (the LM head splits unevenly).
inline LlamaConfig model_config() { return testing::tiny_llama(512); }

inline std::vector<int32_t> tokens(int n, uint64_t seed) {
  runtime::RngStream r(seed, 0);
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(r.below(97)));
  return t;
}

inline size_t argmax(const float* p, size_t n) { return static_cast<size_t>(std::max_element(p, p + n) - p); }

// A prefill in two chunks, then a mixed batch of a decode and another prompt, then decodes:
// the shard's logits are the whole model's within 1e-4, with the same argmax, on every rank.
inline void forward_matches_the_whole_model(dist::ProcessGroup& g, const std::filesystem::path& dir) {
  auto whole = LlamaModel::load(dir);
  auto shard = LlamaModel::load(dir, &g);
  ASSERT_EQ(shard->tensor_parallel(), g.size());
  KvCache cw = whole->make_kv_cache(16, 16), cs = shard->make_kv_cache(16, 16);
  const std::vector<int32_t> a = tokens(37, 1), b = tokens(20, 2), ta = {3, 1, 4}, tb = {9, 2};
  std::vector<std::vector<ForwardItem>> passes = {
      {{std::span<const int32_t>(a.data(), 30), 0, &ta}},
      {{std::span<const int32_t>(a.data() + 30, 7), 30, &ta}},
      {{std::span<const int32_t>(a.data() + 36, 1), 37, &ta}, {std::span<const int32_t>(b), 0, &tb}},
      {{std::span<const int32_t>(b.data() + 5, 1), 20, &tb}, {std::span<const int32_t>(a.data() + 2, 1), 38, &ta}},
  };
  const size_t vocab = 97;
  for (size_t p = 0; p < passes.size(); ++p) {
    std::vector<float> want = whole->forward(passes[p], cw), got = shard->forward(passes[p], cs);
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(got[i] - want[i])));
    EXPECT_LE(worst, 1e-4) << "pass " << p << " on rank " << g.rank() << " of " << g.size();
    for (size_t i = 0; i < got.size() / vocab; ++i)
      EXPECT_EQ(argmax(got.data() + i * vocab, vocab), argmax(want.data() + i * vocab, vocab)) << "pass " << p << " item " << i;
  }
}

// 8 requests of 5–64 prompt and 3–32 output tokens through the engine (under KV parallelism
// `kv_groups` groups of 32 tokens of each sequence; up to `stages` batches in flight through the
// pipeline stages, sequence-pipelined with `spp`), each iteration reported to `on_iteration`.
inline EngineResult serve(std::unique_ptr<ModelRunner> runner, int64_t kv_groups = 1, int64_t stages = 1, bool spp = false,
                          std::function<void(const EngineIteration&)> on_iteration = {}) {
  SchedulerConfig s;
  s.type = "sarathi";
  s.chunk_size = 32;
  s.max_model_len = 512;
  s.max_num_seqs = 8;
  s.kv_parallel = kv_groups;
  s.max_tokens_per_kvp_group = 32;
  s.pipeline_stages = stages;
  s.sequence_pipeline_parallel = spp;
  Engine e(std::move(runner), s, 120, SamplingParams{}, 7, nullptr);
  if (on_iteration) e.on_iteration(std::move(on_iteration));
  runtime::RngStream rng(5, 0);
  for (uint64_t i = 0; i < 8; ++i) {
    int64_t p = 5 + static_cast<int64_t>(rng.below(60)), d = 3 + static_cast<int64_t>(rng.below(30));
    std::vector<int32_t> prompt;
    for (int64_t k = 0; k < p; ++k) prompt.push_back(static_cast<int32_t>(rng.below(97)));
    e.add({i, 0.0, p, d}, prompt);
  }
  return e.run();
}

// The engine on rank 0 with workers on the other ranks serves the greedy tokens one process does.
inline void engine_serves_the_same_greedy_tokens(dist::ProcessGroup& g, const std::filesystem::path& dir) {
  auto shard = LlamaModel::load(dir, &g);
  if (g.rank() != 0) return serve_model_parallel_worker(*shard, g, 120, 16);
  EngineResult got = serve(model_parallel_runner(*shard, g, 120, 16));
  auto whole = LlamaModel::load(dir);
  EngineResult want = serve(cpu_runner(*whole, 120, 16));
  ASSERT_EQ(got.outputs.size(), 8u);
  EXPECT_EQ(got.outputs, want.outputs);
}

// Mnemosyne's KV parallelism with tensor parallelism: world = TP × KVP ranks, rank = kvp·TP + tp
// (Vajra's order; KVP = 2 here). Sequence `a` is split 32 tokens per group, its chunks stopping at
// the boundary as the scheduler's do, and every token after 32 stored by the last group; `b` lives
// on the last group alone. Every rank's logits are the whole model's within 1e-4, same argmax.
inline void kv_parallel_forward_matches_the_whole_model(dist::ProcessGroup& world, const std::filesystem::path& dir) {
  constexpr int kvp = 2;
  constexpr int64_t per_group = 32;
  const int tp = world.size() / kvp, group = world.rank() / tp;
  auto tp_group = world.split(group, "tensor_parallel");
  auto kvp_group = world.split(world.rank() % tp, "kv_parallel");
  auto whole = LlamaModel::load(dir);
  auto shard = LlamaModel::load(dir, tp_group.get(), kvp_group.get());
  KvCache cw = whole->make_kv_cache(16, 16), cs = shard->make_kv_cache(16, 16);
  const std::vector<int32_t> a = tokens(48, 1), b = tokens(22, 2);
  const std::vector<int32_t> whole_a = {3, 1, 4, 5}, whole_b = {9, 2};
  // This rank's blocks: a's first 32 tokens on group 0, the rest on group 1; b on group 1.
  const std::vector<int32_t> slice_a = group == 0 ? std::vector<int32_t>{3, 1} : std::vector<int32_t>{4, 6, 8},
                             slice_b = group == kvp - 1 ? std::vector<int32_t>{9, 2} : std::vector<int32_t>{};
  auto a_item = [&](int64_t start, int64_t n) {  // a's tokens [start, start + n) as this rank sees them
    const int64_t first = group * per_group, filling = std::min<int64_t>(start / per_group, kvp - 1);
    const int64_t cached = std::clamp<int64_t>(start - first, 0, group == kvp - 1 ? start : per_group);
    return std::pair{ForwardItem(std::span<const int32_t>(a.data() + start, static_cast<size_t>(n)), start, &whole_a),
                     ForwardItem(std::span<const int32_t>(a.data() + start, static_cast<size_t>(n)), start, &slice_a,
                                 KvSlice{first, cached, group == filling})};
  };
  auto b_item = [&](int64_t start, int64_t n) {
    const bool here = group == kvp - 1;
    return std::pair{ForwardItem(std::span<const int32_t>(b.data() + start, static_cast<size_t>(n)), start, &whole_b),
                     ForwardItem(std::span<const int32_t>(b.data() + start, static_cast<size_t>(n)), start, &slice_b,
                                 KvSlice{0, here ? start : 0, here})};
  };
  using Pass = std::vector<std::pair<ForwardItem, ForwardItem>>;
  const std::vector<Pass> passes = {
      {a_item(0, 30)},                  // group 0 fills
      {a_item(30, 2), b_item(0, 20)},   // to its boundary; b's prompt on group 1
      {a_item(32, 13)},                 // group 1 takes over: its chunk attends to both groups
      {a_item(45, 1), b_item(20, 1)},   // decodes: a's over both groups, b's over one
      {b_item(21, 1), a_item(46, 1)},
  };
  for (size_t p = 0; p < passes.size(); ++p) {
    std::vector<ForwardItem> w, mine;
    for (const auto& [x, y] : passes[p]) {
      w.push_back(x);
      mine.push_back(y);
    }
    std::vector<float> want = whole->forward(w, cw), got = shard->forward(mine, cs);
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(got[i] - want[i])));
    EXPECT_LE(worst, 1e-4) << "pass " << p << " on rank " << world.rank() << " of " << world.size();
    for (size_t i = 0; i < got.size() / 97; ++i)
      EXPECT_EQ(argmax(got.data() + i * 97, 97), argmax(want.data() + i * 97, 97)) << "pass " << p << " item " << i;
  }
}

// The engine over `layout`'s ranks (rank 0 the controller) serves the greedy tokens one process
// does: under KVP prompts span both groups of 32 tokens and decodes grow the last; under pipeline
// stages several batches are in flight and, with `spp`, a prompt's chunks follow each other out
// of the first stage.
inline void model_parallel_engine_serves_the_same_greedy_tokens(dist::ProcessGroup& world, const std::filesystem::path& dir,
                                                                RankLayout layout, bool spp = false) {
  RankGroups groups = split_ranks(world, layout, dist::Seconds(30));
  auto part = load_rank_part(dir, world.rank(), layout, groups);
  if (world.rank() != 0) return serve_model_parallel_worker(*part, world, 120, 16, layout, groups.stage.get());
  EngineResult got = serve(model_parallel_runner(*part, world, 120, 16, layout, groups.stage.get()), layout.kv_parallel,
                           layout.pipeline_stages, spp);
  auto whole = LlamaModel::load(dir);
  EngineResult want = serve(cpu_runner(*whole, 120, 16));
  ASSERT_EQ(got.outputs.size(), 8u);
  EXPECT_EQ(got.outputs, want.outputs);
  EXPECT_EQ(got.most_in_flight, layout.pipeline_stages);  // the stages worked on different batches at once
}

}  // namespace xp::serving::tp_checks
