// The dynaquant experiment end to end through `exp` on the digits set: ten failures restored from
// compressed checkpoints with both ratios reported, restores from uncompressed checkpoints
// reproducing the uninterrupted run bit for bit (docs/dynaquant.md), restores reaching every
// worker thread, the optimizer-state policies, a SIGTERM-stopped or SIGKILLed run resuming to
// the uninterrupted result, compression overlapped with training giving the run of waiting for
// it, the baselines, one-shot compress/decompress and bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/results/results_file.h"
#include "tests/support/exp_cli.h"

namespace xp::cli {
namespace {

using ::testing::HasSubstr;
using testing::kConfigs;
using testing::Ran;

const std::string kDynaquant = kConfigs + "/experiment/dynaquant.yaml";
const std::string kDigits =
    " data.dataset=digits network.layers=[64,32,10] data.validation=300 train.epochs=20 train.batch_size=32";

class CompressionCli : public ::testing::Test {
 protected:
  CompressionCli() { setenv("OMP_NUM_THREADS", "1", 1); }  // see test_networks_cli.cpp
  Ran exp(const std::string& args) { return testing::run_exp(dir_, args); }
  auto open(const std::string& run) { return results::ResultsReader::open(dir_ / run / "results.h5"); }
  template <class R>
  double summary(R& r, const char* key) {
    return std::get<double>(*r->attr("/summary", key));
  }
  // Same final weights, ratios, search evaluations and table rows but the timing columns.
  void expect_same_run(const std::string& run_a, const std::string& run_b) {
    auto a = open(run_a), b = open(run_b);
    ASSERT_TRUE(b->complete());
    EXPECT_EQ(std::get<std::string>(*a->attr("/summary", "final_weights_xxh3")),
              std::get<std::string>(*b->attr("/summary", "final_weights_xxh3")));
    for (const char* key : {"test_accuracy", "weights_ratio", "full_state_ratio", "peak_ratio"})
      EXPECT_EQ(summary(a, key), summary(b, key)) << key;
    EXPECT_EQ(std::get<int64_t>(*a->attr("/summary", "search_evaluations")),
              std::get<int64_t>(*b->attr("/summary", "search_evaluations")));
    EXPECT_EQ(a->read_table("/epochs").values, b->read_table("/epochs").values);
    // Failures: all but on_disk_step (column 2), which checkpoint had finished compressing when
    // the failure struck: a matter of timing, as it would be for a real failure.
    auto fa = a->read_table("/failures"), fb = b->read_table("/failures");
    ASSERT_EQ(fa.values.size(), fb.values.size());
    for (size_t col = 0; col < fa.values.size(); ++col)
      if (col != 2) {
        EXPECT_EQ(fa.values[col], fb.values[col]) << "failures column " << col;
      }
    auto ca = a->read_table("/checkpoints"), cb = b->read_table("/checkpoints");
    ASSERT_EQ(ca.rows, cb.rows);
    for (size_t col = 0; col < 15; ++col) EXPECT_EQ(ca.values[col], cb.values[col]) << "column " << col;  // 15, 16: seconds
  }
  // Runs the digits config as `run` until its compressed checkpoint of step 80 is on disk (after
  // the first failure, at step 58), sends `signal`, and returns the exit status.
  int run_until_step_80(const std::string& run, int signal) {
    std::vector<std::string> argv{"run", kDynaquant};
    std::istringstream overrides(kDigits);
    for (std::string o; overrides >> o;) argv.push_back(o);
    argv.push_back("hydra.run.dir=" + (dir_.path() / run).string());
    return testing::run_exp_until_checkpoint(argv, dir_.path() / (run + ".err"),
                                             dir_.path() / run / "compressed/step-00000080.bin", signal);
  }
  xp::testing::TempDir dir_;
};

TEST_F(CompressionCli, TenFailuresRestoreFromCompressedCheckpoints) {
  Ran r = exp("run " + kDynaquant + kDigits + " hydra.run.dir=dq");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto res = open("dq");
  EXPECT_EQ(std::get<int64_t>(*res->attr("/summary", "failures")), 10);
  EXPECT_EQ(res->read_table("/checkpoints").rows, 40);
  EXPECT_GT(summary(res, "weights_ratio"), 2.0);
  EXPECT_GT(summary(res, "full_state_ratio"), 1.0);
  EXPECT_LT(summary(res, "full_state_ratio"), summary(res, "weights_ratio"));
  EXPECT_GT(summary(res, "test_accuracy"), 0.85);
  // Every restored checkpoint is within ε of its live model on the validation set.
  auto t = res->read_table("/checkpoints");
  for (int64_t i = 0; i < t.rows; ++i) {
    const double live = t.values[13][static_cast<size_t>(i)], restored = t.values[14][static_cast<size_t>(i)];
    EXPECT_GE(restored, live * 0.95 - 1e-9) << "checkpoint " << i;
  }
  EXPECT_TRUE(std::filesystem::exists(dir_ / "dq/compressed/step-00000016.bin"));
  // A simulated failure waits for the checkpoints in flight and restores the newest; a real one
  // would restore the newest already on disk and redo the steps since: both are recorded.
  auto f = res->read_table("/failures");  // step, restored_step, on_disk_step, ...
  double lost = 0;
  for (size_t i = 0; i < static_cast<size_t>(f.rows); ++i) {
    EXPECT_LE(f.values[2][i], f.values[1][i]) << "failure " << i;
    EXPECT_LE(f.values[1][i], f.values[0][i]) << "failure " << i;
    lost += f.values[0][i] - f.values[2][i];
  }
  EXPECT_EQ(static_cast<double>(std::get<int64_t>(*res->attr("/summary", "real_failure_lost_steps"))), lost);
  EXPECT_GE(summary(res, "real_failure_lost_seconds"), 0.0);
  // Contention is clamped at zero; the measured difference, noise and all, sits beside it.
  EXPECT_EQ(summary(res, "compression_contention_seconds"), std::max(0.0, summary(res, "compression_contention_seconds_raw")));
}

TEST_F(CompressionCli, AValidationSetLargerThanTheDataIsAConfigErrorAndWritesNothing) {
  Ran r = exp("run " + kDynaquant + " data.dataset=digits network.layers=[64,32,10] data.validation=2000 hydra.run.dir=dq");
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("data.validation"));
  EXPECT_THAT(r.err, HasSubstr("cannot hold out 2000 of the 1300 digits training samples"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "dq"));
}

TEST_F(CompressionCli, RestoresFromUncompressedCheckpointsReproduceTheUninterruptedRun) {
  ASSERT_EQ(exp("run " + kDynaquant + kDigits + " compression.method=none train.failures=10 hydra.run.dir=failed").rc, 0);
  ASSERT_EQ(exp("run " + kDynaquant + kDigits + " compression.method=none train.failures=0 hydra.run.dir=clean").rc, 0);
  auto a = open("failed"), b = open("clean");
  EXPECT_EQ(std::get<std::string>(*a->attr("/summary", "final_weights_xxh3")),
            std::get<std::string>(*b->attr("/summary", "final_weights_xxh3")));
  EXPECT_EQ(summary(a, "test_accuracy"), summary(b, "test_accuracy"));
}

// A restore writes the weights into the trained model in place; the second worker thread must
// train the next step on them too (it once kept the weights of before the failure until the next
// update, so a run on two threads left the one-thread result).
TEST_F(CompressionCli, RestoredWeightsReachEveryWorkerThread) {
  ASSERT_EQ(exp("run " + kDynaquant + kDigits + " train.workers=1 hydra.run.dir=one").rc, 0);
  ASSERT_EQ(exp("run " + kDynaquant + kDigits + " train.workers=2 hydra.run.dir=two").rc, 0);
  expect_same_run("one", "two");
}

TEST_F(CompressionCli, SmallerOptimizerStatePoliciesRaiseTheFullStateRatio) {
  // Ten restores through each policy's lossy moments cost little accuracy against raw fp32.
  double previous = 0.0, fp32_accuracy = 0.0;
  for (const char* policy : {"fp32", "fp16", "quantize_like_weights"}) {
    Ran r = exp("run " + kDynaquant + kDigits + " train.epochs=4 compression.optimizer_state=" + policy +
                " hydra.run.dir=" + policy);
    ASSERT_EQ(r.rc, 0) << policy << r.err;
    auto res = open(policy);
    EXPECT_GT(summary(res, "full_state_ratio"), previous) << policy;
    if (fp32_accuracy == 0.0) fp32_accuracy = summary(res, "test_accuracy");
    EXPECT_GT(summary(res, "test_accuracy"), fp32_accuracy - 0.05) << policy;
    previous = summary(res, "full_state_ratio");
    EXPECT_TRUE(std::filesystem::exists(dir_ / policy / "compressed/step-00000016.optim.bin"));
  }
  EXPECT_GT(previous, 3.0);  // 3.3 measured on this 2,410-parameter model (biases and small tensors stay raw)
}

TEST_F(CompressionCli, AStoppedRunResumesToTheUninterruptedResult) {
  ASSERT_EQ(exp("run " + kDynaquant + kDigits + " hydra.run.dir=full").rc, 0);
  const int rc = run_until_step_80("stopped", SIGTERM);
  ASSERT_EQ(rc, 75) << "the run finished before it could be stopped: " << dir_.read("stopped.err");
  Ran resumed = exp("run --resume stopped");
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  expect_same_run("full", "stopped");
}

TEST_F(CompressionCli, AKilledRunRecompressesTheCheckpointThatWasInFlight) {
  // With compression.overlap every periodic save is taken while its checkpoint is still being
  // compressed; a resume from it compresses that checkpoint again, to the same bytes.
  ASSERT_EQ(exp("run " + kDynaquant + kDigits + " hydra.run.dir=full").rc, 0);
  const int rc = run_until_step_80("killed", SIGKILL);
  ASSERT_EQ(rc, -1) << "the run finished before it could be killed: " << dir_.read("killed.err");
  Ran resumed = exp("run --resume killed");
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  expect_same_run("full", "killed");
}

TEST_F(CompressionCli, OverlappedCompressionGivesTheRunOfWaitingForIt) {
  ASSERT_EQ(exp("run " + kDynaquant + kDigits + " compression.overlap=true hydra.run.dir=overlapped").rc, 0);
  ASSERT_EQ(exp("run " + kDynaquant + kDigits + " compression.overlap=false hydra.run.dir=waiting").rc, 0);
  expect_same_run("waiting", "overlapped");
  // Waiting, the training loop stalls for all the compression work (plus the snapshots) and no
  // step runs beside a compression; overlapped, steps do (40 checkpoints, each far longer to
  // compress than a digits step).
  auto w = open("waiting"), o = open("overlapped");
  EXPECT_GE(summary(w, "compression_stall_seconds"), summary(w, "compression_seconds"));
  EXPECT_EQ(std::get<int64_t>(*w->attr("/summary", "steps_beside_compression")), 0);
  EXPECT_GT(std::get<int64_t>(*o->attr("/summary", "steps_beside_compression")), 0);
}

TEST_F(CompressionCli, BaselinesRunThroughTheSameLoop) {
  for (const char* m : {"zstd", "uniform8_zstd", "cnr", "qd", "lc"}) {
    Ran r = exp("run " + kDynaquant + kDigits + " train.epochs=4 compression.method=" + m + " hydra.run.dir=" + m);
    ASSERT_EQ(r.rc, 0) << m << r.err;
    auto res = open(m);
    EXPECT_GT(summary(res, "weights_ratio"), m == std::string("zstd") ? 1.0 : 3.0) << m;
    EXPECT_GT(summary(res, "test_accuracy"), 0.5) << m;
    // Their rows hold the levels each chose and leave DynaQuant's pruning and protection empty.
    auto t = res->read_table("/checkpoints");  // ..., 6 bins, 7 prune_fraction, 8 prune_metric, 9 protect_fraction
    for (size_t i = 0; i < static_cast<size_t>(t.rows); ++i) {
      const double levels = t.values[6][i];
      if (m == std::string("zstd")) EXPECT_EQ(levels, -1) << m;
      else if (m == std::string("uniform8_zstd")) EXPECT_EQ(levels, 256) << m;
      else EXPECT_TRUE(levels >= 2 && levels <= 256) << m << " " << levels;
      EXPECT_TRUE(std::isnan(t.values[7][i])) << m;
      EXPECT_EQ(t.values[8][i], -1) << m;
      EXPECT_TRUE(std::isnan(t.values[9][i])) << m;
    }
  }
}

TEST_F(CompressionCli, TheBinsTableFindsTheFewestBinsForEachQuantizer) {
  Ran r = exp("run " + kDynaquant + kDigits + " train.epochs=4 train.failures=0 compression.method=none compression.bins_table=true hydra.run.dir=bins");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto res = open("bins");
  auto t = res->read_table("/bins_needed");  // step, drop, ours, ours protected, uniform, cnr
  ASSERT_GE(t.rows, 3);
  ASSERT_EQ(t.rows % 3, 0);  // the three drops per measured checkpoint
  for (int64_t i = 0; i < t.rows; ++i)
    for (size_t col : {2, 3, 4, 5}) {
      const double bins = t.values[col][static_cast<size_t>(i)];
      EXPECT_TRUE(bins == -1 || (bins >= 2 && bins <= 256)) << "row " << i << " column " << col;
      // A larger allowed drop never needs more bins (rows go 0.1%, 1%, 5% per checkpoint).
      if (i % 3 > 0 && bins > 0 && t.values[col][static_cast<size_t>(i - 1)] > 0) {
        EXPECT_LE(bins, t.values[col][static_cast<size_t>(i - 1)]);
      }
    }
  for (const char* q : {"ours", "ours_protected", "uniform", "cnr"}) {
    const double mean = summary(res, fmt::format("mean_bins_{}_drop_0.05", q).c_str());
    EXPECT_GE(mean, 2.0) << q;
    EXPECT_LE(mean, 256.0) << q;
  }
}

TEST_F(CompressionCli, CompressAndDecompressASafetensorsCheckpoint) {
  ASSERT_EQ(exp("run " + kConfigs + "/experiment/make_model.yaml model.hidden_size=64 model.num_hidden_layers=2 "
                "model.num_attention_heads=4 model.num_key_value_heads=2 model.intermediate_size=128 "
                "model.vocab_size=500 output_dir=model hydra.run.dir=make").rc, 0);
  Ran c = exp("compress model m.dqck --bins 16");
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_THAT(c.out, HasSubstr("ratio"));
  EXPECT_LT(std::filesystem::file_size(dir_ / "m.dqck"), std::filesystem::file_size(dir_ / "model/model.safetensors") / 4);
  Ran d = exp("decompress m.dqck back.safetensors");
  ASSERT_EQ(d.rc, 0) << d.err;
  EXPECT_TRUE(std::filesystem::exists(dir_ / "back.safetensors"));
  // A flipped byte is refused and nothing is written.
  std::string bytes = dir_.read("m.dqck");
  bytes[bytes.size() / 2] ^= 0x01;
  std::ofstream(dir_ / "bad.dqck", std::ios::binary) << bytes;
  Ran bad = exp("decompress bad.dqck out.safetensors");
  EXPECT_EQ(bad.rc, 1);
  EXPECT_THAT(bad.err, HasSubstr("corrupt"));
  EXPECT_THAT(bad.err, HasSubstr("bad.dqck"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.safetensors"));
}

TEST_F(CompressionCli, BadEpsilonIsRefusedNamingTheKey) {
  Ran r = exp("run " + kDynaquant + " compression.epsilon=1.5");
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr("compression.epsilon"));
  r = exp("run " + kDynaquant + kDigits + " network.model=lenet");
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr("network.model"));
}

}  // namespace
}  // namespace xp::cli
