// The binarized-topology experiment end to end through `exp` on the digits set: a run stopped by
// SIGTERM resumes to the same tables, accuracy and final weights (bit for bit) as an
// uninterrupted run, and bad input is refused with errors naming the key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/results/results_file.h"
#include "tests/support/exp_cli.h"

namespace xp::cli {
namespace {

using ::testing::HasSubstr;
using testing::kConfigs;
using testing::Ran;

const std::string kTopology = kConfigs + "/experiment/binarized_topology.yaml";
const std::vector<std::string> kDigits = {
    "data.dataset=digits", "network.layers=[64,128,128,10]", "network.init_p=0.01", "network.norm=soft_invert",
    "train.epochs=60",     "train.batch_size=50",             "train.lr=0.01",       "train.checkpoint_every=7",
    "eval.sweep_every=20", "eval.on_step=0.5"};

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += " " + a;
  return s;
}

class NetworksCli : public ::testing::Test {
 protected:
  // One OpenMP thread per run (inherited by the spawned `exp`): ctest runs tests side by side on
  // the CI's two cores, and spinning OpenMP teams would fight over them.
  NetworksCli() { setenv("OMP_NUM_THREADS", "1", 1); }
  Ran exp(const std::string& args) { return testing::run_exp(dir_, args); }
  // A run of the topology experiment with `overrides` exits 2 (bad config), naming `key` and `hint`.
  void expect_refused(const std::string& overrides, const char* key, const char* hint) {
    Ran r = exp("run " + kTopology + " " + overrides);
    EXPECT_EQ(r.rc, 2) << overrides;
    EXPECT_THAT(r.err, HasSubstr(key));
    EXPECT_THAT(r.err, HasSubstr(hint));
  }
  std::filesystem::path path(const std::string& rel) const { return dir_ / rel; }
  xp::testing::TempDir dir_;
};

// A run killed (SIGKILL: no chance to save) after a checkpoint inside an epoch resumes to the
// uninterrupted run bit for bit, that epoch's training loss and accuracy included: the
// checkpoint carries the epoch's running sums (it once held only the weights, and the resumed
// epoch reported the batches after the checkpoint alone: 0.896 against 0.935).
TEST_F(NetworksCli, KilledMidEpochTopologyRunResumesBitForBit) {
  Ran full = exp("run " + kTopology + joined(kDigits) + " hydra.run.dir=full");
  ASSERT_EQ(full.rc, 0) << full.err;
  EXPECT_THAT(full.out, HasSubstr("circuit_accuracy"));

  std::vector<std::string> argv = {"run", kTopology};
  argv.insert(argv.end(), kDigits.begin(), kDigits.end());
  argv.push_back("hydra.run.dir=" + path("killed").string());
  // The checkpoint 7 batches into epoch 3 (step id epoch·10⁶ + batch).
  const int rc = testing::run_exp_until_checkpoint(argv, path("killed.err"),
                                                   path("killed/checkpoints/ckpt-000003000007.ckpt"), SIGKILL);
  ASSERT_EQ(rc, -1) << "the run finished before it could be killed: " << dir_.read("killed.err");
  Ran resumed = exp("run --resume killed");
  ASSERT_EQ(resumed.rc, 0) << resumed.err;

  auto a = results::ResultsReader::open(path("full/results.h5"));
  auto b = results::ResultsReader::open(path("killed/results.h5"));
  ASSERT_TRUE(b->complete());
  for (const char* key : {"final_state_xxh3"})
    EXPECT_EQ(std::get<std::string>(*a->attr("/summary", key)), std::get<std::string>(*b->attr("/summary", key)));
  for (const char* key : {"test_accuracy", "active_share", "circuit_accuracy", "nor_agreement_min"})
    EXPECT_EQ(std::get<double>(*a->attr("/summary", key)), std::get<double>(*b->attr("/summary", key))) << key;
  for (const char* table : {"/train/layers", "/sweep", "/nor", "/predictions"})
    EXPECT_EQ(a->read_table(table).values, b->read_table(table).values) << table;
  // Every per-epoch column but the timing one (train_seconds, the last).
  auto ea = a->read_table("/train/epochs"), eb = b->read_table("/train/epochs");
  ASSERT_EQ(ea.rows, 60);
  ASSERT_EQ(eb.rows, 60);
  for (size_t col = 0; col + 1 < ea.values.size(); ++col) EXPECT_EQ(ea.values[col], eb.values[col]) << col;
}

// A finished run leaves its final weights; `network.init_from` with `train.epochs=0` re-analyses
// them without training, to the same figures and per-sample predictions.
TEST_F(NetworksCli, SavedFinalWeightsReanalyseToTheSameFigures) {
  const std::string quick = " data.dataset=digits network.layers=[64,64,64,10] network.init_p=0.01 train.epochs=20"
                            " train.batch_size=50 eval.on_step=0.5";
  Ran trained = exp("run " + kTopology + quick + " hydra.run.dir=trained");
  ASSERT_EQ(trained.rc, 0) << trained.err;
  ASSERT_TRUE(std::filesystem::exists(path("trained/final_model.bin")));
  Ran again = exp("run " + kTopology + quick + " train.epochs=0 network.init_from=" + path("trained/final_model.bin").string() +
                  " hydra.run.dir=again");
  ASSERT_EQ(again.rc, 0) << again.err;
  auto a = results::ResultsReader::open(path("trained/results.h5"));
  auto b = results::ResultsReader::open(path("again/results.h5"));
  for (const char* key : {"test_accuracy", "active_share", "circuit_accuracy", "circuit_tie_share", "nor_agreement_min"})
    EXPECT_EQ(std::get<double>(*a->attr("/summary", key)), std::get<double>(*b->attr("/summary", key))) << key;
  for (const char* table : {"/nor", "/predictions"})
    EXPECT_EQ(a->read_table(table).values, b->read_table(table).values) << table;
  EXPECT_EQ(a->read_table("/predictions").rows, 497);
}

TEST_F(NetworksCli, NoEpochsWithoutSavedWeightsIsRefused) {
  expect_refused("data.dataset=digits network.layers=[64,32,10] train.epochs=0", "train.epochs", "init_from");
}

// Singularity's promise on one machine (docs/parallelism.md, threads): a run on 2 workers killed
// mid-epoch, its directory moved elsewhere and resumed there on 1 worker (`--workers 1`), ends
// bit for bit where an uninterrupted 1-worker run does: weights, per-epoch losses, every table.
TEST_F(NetworksCli, RunKilledOnTwoWorkersResumesElsewhereOnOneBitForBit) {
  const std::vector<std::string> job = {"data.dataset=digits", "network.layers=[64,128,128,10]", "network.init_p=0.01",
                                        "train.epochs=8", "train.batch_size=50", "train.lr=0.01", "train.checkpoint_every=5",
                                        "train.logical_ranks=4", "eval.sweep_every=4", "eval.on_step=0.5"};
  Ran alone = exp("run " + kTopology + joined(job) + " train.workers=1 hydra.run.dir=alone");
  ASSERT_EQ(alone.rc, 0) << alone.err;

  std::vector<std::string> argv = {"run", kTopology};
  argv.insert(argv.end(), job.begin(), job.end());
  argv.push_back("train.workers=2");
  argv.push_back("hydra.run.dir=" + path("two").string());
  const int rc = testing::run_exp_until_checkpoint(argv, path("two.err"), path("two/checkpoints/ckpt-000002000005.ckpt"), SIGKILL);
  ASSERT_EQ(rc, -1) << "the run finished before it could be killed: " << dir_.read("two.err");
  std::filesystem::rename(path("two"), path("moved"));
  Ran resumed = exp("run --resume moved --workers 1");
  ASSERT_EQ(resumed.rc, 0) << resumed.err;

  auto a = results::ResultsReader::open(path("alone/results.h5"));
  auto b = results::ResultsReader::open(path("moved/results.h5"));
  ASSERT_TRUE(b->complete());
  EXPECT_EQ(std::get<std::string>(*a->attr("/summary", "final_state_xxh3")),
            std::get<std::string>(*b->attr("/summary", "final_state_xxh3")));
  for (const char* table : {"/train/layers", "/sweep", "/nor", "/predictions"})
    EXPECT_EQ(a->read_table(table).values, b->read_table(table).values) << table;
  auto ea = a->read_table("/train/epochs"), eb = b->read_table("/train/epochs");
  ASSERT_EQ(eb.rows, 8);
  for (size_t col = 0; col + 1 < ea.values.size(); ++col) EXPECT_EQ(ea.values[col], eb.values[col]) << col;
}

TEST_F(NetworksCli, ResumingOnMoreWorkersThanLogicalRanksIsRefused) {
  Ran first = exp("run " + kTopology + " data.dataset=digits network.layers=[64,32,10] train.epochs=1 train.logical_ranks=2"
                  " hydra.run.dir=small");
  ASSERT_EQ(first.rc, 0) << first.err;
  std::filesystem::remove(path("small/results.h5"));  // as if it had been killed before finishing
  Ran r = exp("run --resume small --workers 3");
  EXPECT_NE(r.rc, 0);
  EXPECT_THAT(r.err, HasSubstr("logical_ranks"));
}

TEST_F(NetworksCli, LayersThatDoNotFitTheDatasetAreRefusedNamingTheKey) {
  expect_refused("data.dataset=digits network.layers=[784,100,10]", "network.layers", "64");
}

TEST_F(NetworksCli, UnknownNormIsRefusedWithTheChoices) {
  expect_refused("network.norm=layer_norm", "network.norm", "hard_invert");
}

TEST_F(NetworksCli, UnknownOptimizerIsRefusedWithTheChoices) {
  expect_refused("train.optimizer=lamb", "train.optimizer", "adamw");
}

TEST_F(NetworksCli, EdgePopupOnTheGpuIsRefusedNamingTheKey) {
  expect_refused("network.method=edge_popup train.device=cuda", "train.device", "edge_popup");
}

TEST_F(NetworksCli, TrainingOnAMissingGpuSaysSo) {
  Ran r = exp("run " + kTopology + " data.dataset=digits network.layers=[64,32,10] train.device=cuda train.epochs=1 "
              "hydra.run.dir=r");
  if (r.rc == 0) GTEST_SKIP() << "a GPU is present: the run trained there";
  EXPECT_THAT(r.err, HasSubstr("train.device is cuda but no GPU is visible"));
}

TEST_F(NetworksCli, MissingDatasetNamesTheFile) {
  Ran r = exp("run " + kTopology + " data.path=/nonexistent train.epochs=1 hydra.run.dir=r");
  EXPECT_NE(r.rc, 0);
  EXPECT_THAT(r.err, HasSubstr("/nonexistent/train-images-idx3-ubyte.gz"));
}

}  // namespace
}  // namespace xp::cli
