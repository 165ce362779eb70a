// The engine under the shared schedulers: preemption and chunking never change the tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "serving/engine/engine.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_llama.h"

namespace xp::serving {
namespace {

LlamaConfig tiny() { return testing::tiny_llama(512); }

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_random_llama(dir_.path(), tiny(), 21);
    model_ = LlamaModel::load(dir_.path());
  }

  EngineResult serve(const std::string& type, int64_t chunk, int64_t blocks, SamplingParams sampling = {},
                     std::set<int32_t> stop_ids = {}) {
    SchedulerConfig s;
    s.type = type;
    s.chunk_size = chunk;
    s.max_model_len = 512;
    s.max_num_seqs = 16;
    Engine e(*model_, s, blocks, sampling, 7, nullptr);
    e.stop_at(std::move(stop_ids));
    runtime::RngStream rng(5, 0);
    for (uint64_t i = 0; i < 12; ++i) {
      int64_t p = 5 + static_cast<int64_t>(rng.below(60)), d = 3 + static_cast<int64_t>(rng.below(40));
      std::vector<int32_t> prompt;
      for (int64_t k = 0; k < p; ++k) prompt.push_back(static_cast<int32_t>(rng.below(97)));
      e.add({i, 0.0, p, d}, prompt);
    }
    return e.run();
  }

  testing::TempDir dir_;
  std::unique_ptr<LlamaModel> model_;
};

}  // namespace

TEST_F(EngineTest, EveryRequestGetsItsTokens) {
  EngineResult r = serve("sarathi", 32, 200);
  ASSERT_EQ(r.outputs.size(), 12u);
  EXPECT_GT(r.iterations, 0);
  for (const auto& [id, out] : r.outputs)
    for (int32_t t : out) EXPECT_TRUE(t >= 0 && t < 97);
}

// Without ignore-EOS a request ends at its first end-of-sequence token (kept, as Hugging Face's
// generate keeps it): each output is the ignore-EOS output cut there.
TEST_F(EngineTest, StopsAtEndOfSequenceIdsWhenAsked) {
  EngineResult all = serve("sarathi", 32, 200);
  const int32_t eos = all.outputs.at(0).at(1);  // request 0's second token
  EngineResult cut = serve("sarathi", 32, 200, {}, {eos});
  ASSERT_EQ(cut.outputs.size(), all.outputs.size());
  int shorter = 0;
  for (const auto& [id, out] : all.outputs) {
    auto end = std::find(out.begin(), out.end(), eos);
    const std::vector<int32_t> expect(out.begin(), end == out.end() ? end : end + 1);
    EXPECT_EQ(cut.outputs.at(id), expect) << "request " << id;
    shorter += expect.size() < out.size();
  }
  EXPECT_GE(shorter, 1);
  EXPECT_EQ(cut.outputs.at(0).size(), std::find(all.outputs.at(0).begin(), all.outputs.at(0).end(), eos) - all.outputs.at(0).begin() + 1);
}

TEST_F(EngineTest, ForcedPreemptionsProduceExactlyTheSameTokens) {
  for (SamplingParams sp : {SamplingParams{}, SamplingParams{0.8, 20, 0.9}}) {
    EngineResult roomy = serve("sarathi", 32, 200, sp);
    EngineResult tight = serve("sarathi", 32, 12, sp);  // 12 blocks of 16: recompute preemptions
    EXPECT_EQ(roomy.preemptions, 0);
    EXPECT_GT(tight.preemptions, 0);
    EXPECT_EQ(roomy.outputs, tight.outputs) << "temperature " << sp.temperature;
  }
}

TEST_F(EngineTest, ChunkingAndPolicyDoNotChangeGreedyTokens) {
  EngineResult a = serve("sarathi", 8, 200);
  EngineResult b = serve("sarathi", 512, 200);
  EngineResult c = serve("vllm", 512, 200);
  EngineResult d = serve("orca", 512, 400);
  EXPECT_EQ(a.outputs, b.outputs);
  EXPECT_EQ(a.outputs, c.outputs);
  EXPECT_EQ(a.outputs, d.outputs);
}

TEST_F(EngineTest, MetricsComeFromWallClockTimestamps) {
  SchedulerConfig s;
  s.max_model_len = 512;
  MetricsConfig mc;
  ServingMetrics metrics(mc, nullptr, "/serving");
  Engine e(*model_, s, 100, {}, 1, &metrics);
  e.add({0, 0.0, 3, 5}, {1, 2, 3});
  e.add({1, 0.05, 4, 2}, {4, 5, 6, 7});  // arrives later: the engine waits for it
  EngineResult r = e.run();
  EXPECT_EQ(metrics.num_finished(), 2);
  EXPECT_GE(r.wall_s, 0.05);
  EXPECT_GT(metrics.ttft().max(), 0);
  EXPECT_EQ(r.outputs.at(0).size(), 5u);
}

TEST_F(EngineTest, RequestsTheModelCannotServeAreRejectedAndTheOthersServed) {
  // Before, the forward pass threw mid-run on the first such request, ending every request.
  SchedulerConfig s;
  s.max_model_len = 512;
  auto serve = [&](bool with_bad) {
    Engine e(*model_, s, 100, {}, 1, nullptr);
    std::vector<std::string> why;
    e.add({0, 0.0, 3, 5}, {1, 2, 3});
    if (with_bad) {
      why.push_back(e.add({1, 0.0, 3, 4}, {1, 97, 3}));               // vocabulary is [0, 97)
      why.push_back(e.add({2, 0.0, 2, 4}, {-1, 3}));
      why.push_back(e.add({3, 0.0, 500, 14}, std::vector<int32_t>(500, 7)));  // 513 positions > 512
      why.push_back(e.add({4, 0.0, 0, 4}, {}));
      why.push_back(e.add({5, 0.0, 2, 0}, {1, 2}));
      EXPECT_EQ(e.add({6, 0.0, 500, 13}, std::vector<int32_t>(500, 7)), "");  // exactly 512 positions
    }
    e.add({7, 0.0, 4, 2}, {4, 5, 6, 7});
    return std::pair{e.run(), why};
  };
  auto [r, why] = serve(true);
  ASSERT_EQ(why.size(), 5u);
  EXPECT_EQ(why[0], "token id 97 at prompt position 1 is outside the vocabulary [0, 97)");
  EXPECT_EQ(why[1], "token id -1 at prompt position 0 is outside the vocabulary [0, 97)");
  EXPECT_NE(why[2].find("500 prompt + 14 output tokens need more positions than the model's context of 512"), std::string::npos);
  EXPECT_EQ(why[3], "the prompt is empty");
  EXPECT_EQ(why[4], "asks for 0 output tokens (at least 1)");
  EXPECT_EQ(r.rejected.size(), 5u);
  EXPECT_EQ(r.rejected.at(3), why[2]);
  ASSERT_EQ(r.outputs.size(), 3u);
  EXPECT_EQ(r.outputs.at(6).size(), 13u);
  auto [alone, none] = serve(false);
  EXPECT_TRUE(alone.rejected.empty());
  EXPECT_EQ(r.outputs.at(0), alone.outputs.at(0));  // greedy: the rejected ones changed nothing
  EXPECT_EQ(r.outputs.at(7), alone.outputs.at(7));
}

}  // namespace xp::serving
