// The pipeline that compresses checkpoints beside training (compression/checkpoint_pipeline.h):
// overlapped with the caller or done at once, the same checkpoints finish, in order, with the
// same chains and the same files; a save sees the newest in flight and the codec's state before it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "compression/checkpoint_pipeline.h"
#include "core/runtime/rng.h"
#include "tests/support/temp_dir.h"

namespace xp::compression {
namespace {

std::shared_ptr<const CheckpointSnapshot> snapshot(int64_t step) {
  CheckpointSnapshot s;
  s.step = step;
  runtime::RngStream rng(5, static_cast<uint64_t>(step));
  nn::Tensor w = nn::Tensor::empty({32, 16}, tensor::DType::kF32);
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = static_cast<float>(0.1 * rng.normal());
  s.weights.emplace_back("0.weight", w);
  return std::make_shared<const CheckpointSnapshot>(std::move(s));
}

struct Outcome {
  std::vector<int64_t> steps;          // in the order they finished
  std::vector<CheckpointChain> chains;
  std::vector<std::string> files;
};

Outcome run(bool overlap, const testing::TempDir& dir) {
  CompressorOptions o;
  auto codec = make_codec("qd", o, [](const nn::StateDict&) { return 1.0; });  // deltas: a chain
  Outcome out;
  CheckpointChain last;
  {
    CheckpointPipeline pipeline(*codec, [](const nn::StateDict&) { return 1.0; },
                                {dir.path(), OptimizerStatePolicy::kFp32, overlap, 2},
                                [&](const FinishedCheckpoint& done) {
                                  out.steps.push_back(done.stored.step);
                                  out.chains.push_back(done.stored.chain);
                                  last = done.stored.chain;
                                });
    for (int64_t step = 10; step <= 50; step += 10) pipeline.submit(snapshot(step), last);
    pipeline.finish_all();
    EXPECT_TRUE(pipeline.empty());
  }
  for (int64_t step = 10; step <= 50; step += 10) out.files.push_back(dir.read(fmt::format("step-{:08d}.bin", step)));
  return out;
}

TEST(CheckpointPipeline, OverlappedCompressionFinishesTheSameChainsAndFilesInOrder) {
  testing::TempDir a, b;
  Outcome overlapped = run(true, a), at_once = run(false, b);
  EXPECT_EQ(overlapped.steps, (std::vector<int64_t>{10, 20, 30, 40, 50}));
  EXPECT_EQ(overlapped.steps, at_once.steps);
  EXPECT_EQ(overlapped.chains, at_once.chains);
  EXPECT_EQ(overlapped.files, at_once.files);
  EXPECT_EQ(overlapped.chains.back().size(), 5u);  // a base and four deltas
}

TEST(CheckpointPipeline, ASaveSeesTheCheckpointInFlightAndTheCodecStateBeforeIt) {
  testing::TempDir dir;
  auto codec = make_codec("dynaquant", CompressorOptions{}, [](const nn::StateDict&) { return 1.0; });
  CheckpointPipeline pipeline(*codec, [](const nn::StateDict&) { return 1.0; },
                              {dir.path(), OptimizerStatePolicy::kFp32, true, 4}, [](const FinishedCheckpoint&) {});
  EXPECT_EQ(pipeline.in_flight(), nullptr);
  const std::vector<std::byte> before = pipeline.codec_state();
  pipeline.submit(snapshot(10), {});
  EXPECT_TRUE(pipeline.can_save());  // one in flight, taken while the codec was idle
  ASSERT_NE(pipeline.in_flight(), nullptr);
  EXPECT_EQ(pipeline.in_flight()->step, 10);
  EXPECT_EQ(pipeline.codec_state(), before);
  pipeline.finish_all();
  EXPECT_EQ(pipeline.in_flight(), nullptr);
  EXPECT_NE(pipeline.codec_state(), before);  // the search moved on
}

}  // namespace
}  // namespace xp::compression
