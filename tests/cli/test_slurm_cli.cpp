// `exp run` under a real Slurm cluster (CTest label slurm): one node on loopback, started for the
// test by scripts/slurm_cluster.sh (munged, slurmctld, slurmd; every file in a scratch folder)
// and stopped after it. Tensor-parallel ranks launched by srun — directly, and from a batch
// script as a cluster user writes it — serve the tokens one process serves.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <thread>

#include "core/results/results_file.h"
#include "tests/support/exp_cli.h"
#include "tests/support/run_results.h"

namespace xp::cli {
namespace fs = std::filesystem;
using testing::kConfigs;
using testing::Ran;

namespace {

const std::string kCluster = std::string(EXP_SOURCE_DIR) + "/scripts/slurm_cluster.sh";

class SlurmLaunch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || std::system("command -v slurmctld > /dev/null && command -v munged > /dev/null") != 0)
      GTEST_SKIP() << "needs root and slurm-wlm + munge (scripts/install_deps.sh)";
    Ran c = sh(kCluster + " start " + (dir_ / "cluster").string());
    ASSERT_EQ(c.rc, 0) << c.err;
    started_ = true;
    setenv("SLURM_CONF", (dir_ / "cluster/slurm.conf").c_str(), 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    ASSERT_EQ(testing::run_exp(dir_, "run " + kConfigs + "/experiment/make_model.yaml model.hidden_size=64 "
                                     "model.num_hidden_layers=2 model.num_attention_heads=4 model.num_key_value_heads=2 "
                                     "model.intermediate_size=128 model.vocab_size=301 hydra.run.dir=made output_dir=" +
                                     (dir_ / "m").string()).rc, 0);
  }
  void TearDown() override {
    if (HasFailure() && started_)  // what the daemons said, for a failure on a CI machine
      for (const char* log : {"slurmctld.log", "slurmd.log"})
        std::cerr << "--- " << log << "\n" << sh("tail -n 30 cluster/log/" + std::string(log)).out;
    if (started_) sh(kCluster + " stop " + (dir_ / "cluster").string());
    unsetenv("SLURM_CONF");
  }
  Ran sh(const std::string& cmd) const {
    int status = std::system(("cd " + dir_.path().string() + " && " + cmd + " > sh.out 2> sh.err").c_str());
    return {WEXITSTATUS(status), dir_.read("sh.out"), dir_.read("sh.err")};
  }
  std::string serve(const std::string& run_dir, int tp) const {
    return fmt::format("{} run {}/experiment/engine_serve.yaml model_dir={} workload.num_requests=10 "
                       "deployment.tensor_parallel={} hydra.run.dir={}",
                       testing::kExp, kConfigs, (dir_ / "m").string(), tp, (dir_ / run_dir).string());
  }
  std::vector<double> tokens(const std::string& run_dir) const {
    EXPECT_TRUE(testing::run_complete(dir_ / run_dir / "results.h5")) << run_dir;
    return testing::engine_outputs(dir_ / run_dir);
  }
  std::string submit_sweep(const std::string& sweep) const;
  // Polls `done` every `every` until it holds or `deadline` passes.
  static void wait_until(const std::function<bool()>& done, std::chrono::steady_clock::time_point deadline,
                         std::chrono::milliseconds every = std::chrono::milliseconds(5)) {
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(every);
  }
  testing::TempDir dir_;
  bool started_ = false;
};

}  // namespace

TEST_F(SlurmLaunch, SrunTasksServeTheTokensOfOneProcess) {
  ASSERT_EQ(sh(serve("one", 1)).rc, 0);
  Ran r = sh("timeout 120 srun --mpi=pmix -n 2 " + serve("srun", 2));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("× 2 (tensor parallel)"), std::string::npos) << r.out;
  EXPECT_EQ(tokens("srun"), tokens("one"));
}

TEST_F(SlurmLaunch, ABatchScriptOfSrunServesTheTokensOfOneProcess) {
  ASSERT_EQ(sh(serve("one", 1)).rc, 0);
  dir_.write("job.sh", "#!/bin/bash\n#SBATCH --ntasks=2 --time=00:05:00\nsrun --mpi=pmix " + serve("batch", 2) + "\n");
  Ran r = sh("timeout 120 sbatch --wait --output=" + (dir_ / "job.out").string() + " job.sh");
  ASSERT_EQ(r.rc, 0) << r.err << dir_.read("job.out");
  EXPECT_EQ(tokens("batch"), tokens("one"));
  EXPECT_NE(dir_.read("job.out").find("results:"), std::string::npos);
}

// Training on logical ranks under Slurm (docs/parallelism.md, docs/reliability.md): tasks of a job
// train the bits of one process; `scancel --signal=TERM` stops every task after the same step
// with a checkpoint (exit 75, no requeue), and the run resumes on another task count.
std::string train(const fs::path& run_dir, const std::string& extra = "") {
  return fmt::format("{} run {}/experiment/binarized_topology.yaml data.dataset=digits network.layers=[64,256,256,10] "
                     "network.init_p=0.01 train.epochs=30 train.batch_size=50 train.lr=0.01 train.checkpoint_every=5 "
                     "train.logical_ranks=4 eval.sweep_every=10 eval.on_step=0.5 hydra.run.dir={} {}",
                     testing::kExp, kConfigs, run_dir.string(), extra);
}

// Submits train()'s config as a sweep (`sweep` overrides, e.g. seeds) under the Slurm launcher, each
// job 2 tasks, into <dir>/sweep; returns the array's id ("" after a failed expectation).
std::string SlurmLaunch::submit_sweep(const std::string& sweep) const {
  Ran submitted = sh(train(dir_ / "unused", sweep + " hydra/launcher=slurm hydra.launcher.tasks_per_node=2 "
                                                     "hydra.launcher.timeout_min=10 "
                                                     "\"hydra.launcher.setup=['export SLURM_MPI_TYPE=pmix']\" "
                                                     "hydra.sweep.dir=" + (dir_ / "sweep").string()) + " -m");
  EXPECT_EQ(submitted.rc, 0) << submitted.err << submitted.out;
  const auto at = submitted.out.find("Slurm array ");
  EXPECT_NE(at, std::string::npos) << submitted.out;
  if (submitted.rc != 0 || at == std::string::npos) return "";
  return submitted.out.substr(at + 12, submitted.out.find(' ', at + 12) - at - 12);
}

std::string final_state(const fs::path& run_dir) {
  auto r = results::ResultsReader::open(run_dir / "results.h5");
  return std::get<std::string>(*r->attr("/summary", "final_state_xxh3"));
}

TEST_F(SlurmLaunch, SrunTasksTrainTheBitsOfOneProcess) {
  ASSERT_EQ(sh(train(dir_ / "one", "train.workers=1")).rc, 0);
  Ran r = sh("timeout 120 srun --mpi=pmix -n 2 " + train(dir_ / "srun"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(testing::run_complete(dir_ / "srun/results.h5"));
  EXPECT_EQ(final_state(dir_ / "srun"), final_state(dir_ / "one"));
}

TEST_F(SlurmLaunch, AJobCancelledWithTermStopsEveryTaskAndResumesOnAnotherCount) {
  ASSERT_EQ(sh(train(dir_ / "one", "train.workers=1")).rc, 0);
  dir_.write("job.sh", "#!/bin/bash\n#SBATCH --ntasks=2 --time=00:05:00\nsrun --mpi=pmix " + train(dir_ / "b") + "\n");
  Ran submitted = sh("sbatch --parsable --output=" + (dir_ / "job.out").string() + " job.sh");
  ASSERT_EQ(submitted.rc, 0) << submitted.err;
  const std::string id = submitted.out.substr(0, submitted.out.find_first_of("\n;"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  wait_until([&] { return testing::reached(dir_ / "b/checkpoints/ckpt-000002000005.ckpt"); }, deadline);
  ASSERT_EQ(sh("scancel --signal=TERM " + id).rc, 0);
  // The job ends by itself (the tasks save and exit 75): wait for Slurm to forget it.
  wait_until([&] { return sh("squeue -h -j " + id).out.find(id) == std::string::npos; }, deadline,
             std::chrono::milliseconds(100));
  ASSERT_FALSE(testing::run_complete(dir_ / "b/results.h5")) << dir_.read("job.out");
  EXPECT_NE(dir_.read("job.out").find("checkpoint saved"), std::string::npos) << dir_.read("job.out");
  Ran resumed = sh("timeout 120 srun -n 1 " + std::string(testing::kExp) + " run --resume " + (dir_ / "b").string());
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  EXPECT_TRUE(testing::run_complete(dir_ / "b/results.h5"));
  EXPECT_EQ(final_state(dir_ / "b"), final_state(dir_ / "one"));
}

// A sweep submitted as a job array whose jobs each run as 2 tasks (hydra.launcher.tasks_per_node):
// job 0 gets the time-limit signal mid-run (USR1 to its batch shell, as --signal=B:USR1 sends
// it), checkpoints on both tasks, requeues itself and finishes; both jobs end with the bits of
// an uninterrupted one-process run of the same config.
TEST_F(SlurmLaunch, AnArrayOfTwoTaskJobsRequeuedOnTheTimeLimitSignalEndsAsUninterruptedRuns) {
  for (int seed : {0, 1}) ASSERT_EQ(sh(train(dir_ / fmt::format("one{}", seed), fmt::format("seed={} train.workers=1", seed))).rc, 0);
  const std::string array = submit_sweep("seed=0,1 hydra.launcher.array_parallelism=1");
  ASSERT_FALSE(array.empty());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(150);
  wait_until([&] { return testing::reached(dir_ / "sweep/0/checkpoints/ckpt-000002000005.ckpt"); }, deadline);
  ASSERT_EQ(sh("scancel --batch --signal=USR1 " + array + "_0").rc, 0);
  wait_until([&] { return sh("squeue -h -r -j " + array).out.find(array) == std::string::npos; }, deadline,
             std::chrono::milliseconds(200));
  const std::string log0 = sh("cat sweep/.slurm/" + array + "_0.out sweep/.slurm/" + array + "_0.err").out;
  EXPECT_NE(log0.find("requeued Slurm job " + array + "_0"), std::string::npos) << log0;
  for (int seed : {0, 1}) {
    const fs::path job = dir_ / "sweep" / std::to_string(seed);
    ASSERT_TRUE(testing::run_complete(job / "results.h5")) << job << "\n" << log0;
    EXPECT_EQ(final_state(job), final_state(dir_ / fmt::format("one{}", seed))) << job;
  }
}

// An admin's `scontrol requeue` of a running two-task job (Slurm ends it with TERM, puts it back
// in the queue and starts it again): both tasks checkpoint after the same step and exit 75; the
// run does not requeue itself as well (no "could not requeue"), and when Slurm starts the job again
// it resumes from that checkpoint and ends with the bits of an uninterrupted one-process run.
TEST_F(SlurmLaunch, AJobRequeuedByAnAdminResumesFromItsCheckpointAsAnUninterruptedRun) {
  ASSERT_EQ(sh(train(dir_ / "one", "seed=0 train.workers=1")).rc, 0);
  const std::string array = submit_sweep("seed=0");
  ASSERT_FALSE(array.empty());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(150);
  wait_until([&] { return testing::reached(dir_ / "sweep/0/checkpoints/ckpt-000002000005.ckpt"); }, deadline);
  ASSERT_EQ(sh("scontrol requeue " + array + "_0").rc, 0);
  wait_until([&] { return sh("squeue -h -r -j " + array).out.find(array) == std::string::npos; }, deadline,
             std::chrono::milliseconds(200));
  const std::string log = sh("cat sweep/.slurm/" + array + "_0.out sweep/.slurm/" + array + "_0.err").out;
  EXPECT_NE(log.find("checkpoint saved"), std::string::npos) << log;
  EXPECT_NE(log.find("resuming"), std::string::npos) << log;
  EXPECT_EQ(log.find("could not requeue"), std::string::npos) << log;
  const fs::path job = dir_ / "sweep/0";
  ASSERT_TRUE(testing::run_complete(job / "results.h5")) << log;
  EXPECT_EQ(final_state(job), final_state(dir_ / "one"));
}

}  // namespace xp::cli
