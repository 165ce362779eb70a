// `exp run` launched by mpirun (CTest label mpi): tensor-parallel ranks serve the tokens one
// process serves, only rank 0 writes, and a rank that dies or stops ends the whole launch with an
// error naming it and no result marked complete.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "tests/support/exp_cli.h"
#include "core/results/results_file.h"
#include "tests/support/run_results.h"

namespace xp::cli {
namespace fs = std::filesystem;
using testing::kConfigs;
using testing::Ran;

namespace {

const std::string kServe = kConfigs + "/experiment/engine_serve.yaml";

pid_t find_rank(const std::string& mark, int rank);

class MpiLaunch : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("OMP_NUM_THREADS", "1", 1);
    ASSERT_EQ(exp("run " + kConfigs + "/experiment/make_model.yaml model.hidden_size=64 model.num_hidden_layers=2 "
                  "model.num_attention_heads=4 model.num_key_value_heads=2 model.intermediate_size=128 "
                  "model.vocab_size=301 model.max_position_embeddings=2048 hydra.run.dir=made output_dir=" +
                  (dir_ / "m").string()).rc, 0);
  }
  Ran exp(const std::string& args) { return testing::run_exp(dir_, args); }
  // `mpirun -np N exp ARGS`, bounded in time; `mark` tags the ranks' environment so a test can
  // find them.
  std::string mpirun(int np, const std::string& args, const std::string& mark = "none") const {
    return fmt::format("cd {} && timeout 120 mpirun --allow-run-as-root --oversubscribe -np {} -x EXP_TEST_MARK={} {} run {}",
                       dir_.path().string(), np, mark, testing::kExp, args);
  }
  Ran launch(int np, const std::string& args) {
    int status = std::system((mpirun(np, args) + " > out.txt 2> err.txt").c_str());
    return {WEXITSTATUS(status), dir_.read("out.txt"), dir_.read("err.txt")};
  }
  std::string serve_args(const std::string& run_dir, const std::string& extra = "") const {
    return kServe + " model_dir=" + (dir_ / "m").string() + " hydra.run.dir=" + run_dir + " workload.num_requests=12 " + extra;
  }
  std::vector<double> tokens(const std::string& run_dir) const { return testing::engine_outputs(dir_ / run_dir); }
  // `exp run` launched on `np` ranks with `layout` overrides serves the tokens of run "one" (one
  // process), names the layout (`label`) in its report, and rank 0 alone reports and writes.
  void serves_tokens_of_one_process(int np, const std::string& layout, const std::string& label) {
    const std::string run = fmt::format("launch{}", ++launches_);
    Ran r = launch(np, serve_args(run, layout));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find(label), std::string::npos) << r.out;
    EXPECT_EQ(tokens(run), tokens("one")) << np << " ranks: " << layout;
    EXPECT_TRUE(complete(dir_ / run / "results.h5"));
    EXPECT_EQ(r.out.find("results:"), r.out.rfind("results:")) << r.out;
  }
  int launches_ = 0;
  static bool complete(const fs::path& file) { return testing::run_complete(file); }
  struct Faulted {
    int rc = 0;
    double seconds = 0;  // from the signal to the end of the launch
  };
  // Starts `mpirun` line `command` (its ranks tagged `mark`), waits for `ready` to exist and then
  // `settle` longer, sends `signal` to rank `rank`, and waits for the launch to end.
  Faulted signal_rank(const std::string& command, const std::string& mark, const fs::path& ready,
                      std::chrono::milliseconds settle, int rank, int signal) {
    const pid_t sh = start(command);
    wait_for(ready);
    std::this_thread::sleep_for(settle);
    signal_marked(mark, rank, signal);
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = end_of(sh);
    return {rc, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
  }
  // `command` (an mpirun line) started in the background, its output to out.txt and err.txt.
  pid_t start(const std::string& command) const {
    const std::string cmd = command + " > out.txt 2> err.txt";
    pid_t sh = -1;
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    EXPECT_EQ(posix_spawn(&sh, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ), 0);
    return sh;
  }
  static void wait_for(const fs::path& ready) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!testing::reached(ready) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  static void signal_marked(const std::string& mark, int rank, int signal) {
    const pid_t target = find_rank(mark, rank);
    EXPECT_GT(target, 0) << "rank " << rank << " not found";
    if (target > 0) kill(target, signal);
  }
  static int end_of(pid_t sh) {
    int status = 0;
    waitpid(sh, &status, 0);
    return WEXITSTATUS(status);
  }
  testing::TempDir dir_;
};

// The pid of the process whose environment holds EXP_TEST_MARK=mark and OMPI_COMM_WORLD_RANK=rank.
pid_t find_rank(const std::string& mark, int rank) {
  DIR* proc = opendir("/proc");
  pid_t found = -1;
  while (dirent* e = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream in(fmt::format("/proc/{}/environ", pid), std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(in)), {}), var;
    bool marked = false, ranked = false;
    for (size_t at = 0; at < env.size(); at += var.size() + 1) {
      var = env.substr(at, env.find('\0', at) - at);
      marked |= var == "EXP_TEST_MARK=" + mark;
      ranked |= var == fmt::format("OMPI_COMM_WORLD_RANK={}", rank);
    }
    if (marked && ranked) found = pid;
  }
  closedir(proc);
  return found;
}

}  // namespace

TEST_F(MpiLaunch, TwoAndFourRanksServeTheTokensOfOneProcess) {
  ASSERT_EQ(exp("run " + serve_args("one")).rc, 0);
  for (int np : {2, 4})
    serves_tokens_of_one_process(np, fmt::format("deployment.tensor_parallel={}", np),
                                            fmt::format("× {} (tensor parallel)", np));
}

// Mnemosyne's KV parallelism (KVP 2 on 2 ranks, TP 2 × KVP 2 on 4; prompts of up to 256 tokens
// span both groups of 128) and sequence pipeline parallelism (2 stages, 2 stages × KVP 2).
TEST_F(MpiLaunch, KvParallelAndPipelineStagesServeTheTokensOfOneProcess) {
  ASSERT_EQ(exp("run " + serve_args("one")).rc, 0);
  const std::string groups = "deployment.kv_parallel=2 deployment.max_num_tokens_per_kvp_group=128";
  serves_tokens_of_one_process(2, groups, "× 2 (KV parallel)");
  serves_tokens_of_one_process(4, "deployment.tensor_parallel=2 " + groups, "× 2 (KV parallel)");
  const std::string stages = "deployment.pipeline_parallel=2 deployment.sequence_pipeline_parallel=true";
  serves_tokens_of_one_process(2, stages, "× 2 (sequence-pipeline stages)");
  serves_tokens_of_one_process(4, stages + " " + groups, "× 2 (sequence-pipeline stages)");
}

TEST_F(MpiLaunch, ALaunchOfAnotherSizeThanTheConfigIsRefusedBeforeAnythingRuns) {
  Ran r = launch(2, serve_args("bad"));  // tensor_parallel stays 1
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("mpirun started 2 ranks, but deployment.tensor_parallel × kv_parallel × pipeline_parallel is 1"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("set deployment.tensor_parallel × kv_parallel × pipeline_parallel = 2"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

TEST_F(MpiLaunch, AnExperimentOfOneProcessIsRefused) {
  Ran r = launch(2, kConfigs + "/experiment/serving_sim.yaml workload.num_requests=10 hydra.run.dir=sim");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("mpirun started 2 ranks, but serving_sim runs in one process"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "sim"));
}

// A long run (arrivals over ~20 s) so that the fault lands mid-serving.
class MpiFaults : public MpiLaunch {
 protected:
  // Starts the launch, waits until rank 0 serves, applies `fault` to rank 1, and returns the
  // launch's exit status and how long it took to end after the fault.
  Faulted fault_rank_1(int signal, const std::string& extra) {
    const std::string mark = fmt::format("{}", ::getpid() * 100 + signal);
    return signal_rank(mpirun(2, serve_args("r", "deployment.tensor_parallel=2 workload.num_requests=40 workload.qps=2 " + extra), mark),
                       mark, dir_ / "r/results.h5", std::chrono::milliseconds(1500) /* serving by then */, 1, signal);
  }
};

TEST_F(MpiFaults, AWorkerKilledMidRunEndsTheLaunchNamingItAndNothingIsComplete) {
  auto [rc, seconds] = fault_rank_1(SIGKILL, "");
  const std::string err = dir_.read("err.txt");
  EXPECT_NE(rc, 0) << err;
  EXPECT_NE(rc, 124) << "the launch hung until timeout(1) ended it";
  EXPECT_NE(err.find("rank 1"), std::string::npos) << err;
  EXPECT_LT(seconds, 30);
  EXPECT_FALSE(complete(dir_ / "r/results.h5"));
}

TEST_F(MpiFaults, AStoppedWorkerTimesOutNamingItAndNothingIsComplete) {
  auto [rc, seconds] = fault_rank_1(SIGSTOP, "deployment.collective_timeout_s=2");
  const std::string err = dir_.read("err.txt");
  EXPECT_NE(rc, 0) << err;
  EXPECT_NE(rc, 124) << "the launch hung until timeout(1) ended it";
  EXPECT_NE(err.find("timed out after 2 s waiting for rank 1"), std::string::npos) << err;
  EXPECT_LT(seconds, 30);
  EXPECT_FALSE(complete(dir_ / "r/results.h5"));
}

// Training on logical ranks across processes (docs/parallelism.md): the processes of a launch train
// the bits of one process; a stop asked of one process is taken by all after the same step; a
// run moves between process counts and directories and ends where an uninterrupted run does.
class MpiTraining : public MpiLaunch {
 protected:
  void SetUp() override { setenv("OMP_NUM_THREADS", "1", 1); }
  std::string job(const std::string& run_dir, const std::string& extra = "") const {
    return kConfigs + "/experiment/binarized_topology.yaml data.dataset=digits network.layers=[64,256,256,10] "
           "network.init_p=0.01 train.epochs=30 train.batch_size=50 train.lr=0.01 train.checkpoint_every=5 "
           "train.logical_ranks=4 eval.sweep_every=10 eval.on_step=0.5 hydra.run.dir=" + run_dir + " " + extra;
  }
  std::string summary(const std::string& run_dir, const char* key) const {
    auto r = results::ResultsReader::open(dir_ / run_dir / "results.h5");
    return std::get<std::string>(*r->attr("/summary", key));
  }
};

TEST_F(MpiTraining, TwoAndFourProcessesTrainTheBitsOfOne) {
  ASSERT_EQ(exp("run " + job("one", "train.workers=1")).rc, 0);
  for (int np : {2, 4}) {
    const std::string run = fmt::format("np{}", np);
    Ran r = launch(np, job(run));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(summary(run, "final_state_xxh3"), summary("one", "final_state_xxh3")) << np << " processes";
    EXPECT_EQ(r.out.find("results:"), r.out.rfind("results:")) << "rank 0 alone reports: " << r.out;
  }
}

// Any training experiment on the logical world gets it: linear_regression's 4 logical ranks on 2
// processes fit every step's loss and the final weights of 1 process.
TEST_F(MpiTraining, LinearRegressionOnTwoProcessesFitsTheBitsOfOne) {
  const std::string lr = kConfigs + "/experiment/linear_regression.yaml train.steps=60 train.logical_ranks=4 ";
  ASSERT_EQ(exp("run " + lr + "hydra.run.dir=one").rc, 0);
  Ran r = launch(2, lr + "hydra.run.dir=two");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto one = results::ResultsReader::open(dir_ / "one/results.h5"), two = results::ResultsReader::open(dir_ / "two/results.h5");
  EXPECT_TRUE(two->complete());
  EXPECT_EQ(two->read_table("/train/steps").values, one->read_table("/train/steps").values);
  EXPECT_EQ(two->attr("/summary", "final_mse"), one->attr("/summary", "final_mse"));
}

// DynaQuant on 2 processes: both train, compress and restore alike; process 0 writes. The final
// weights, every ratio and the checkpoint and failure tables equal one process's.
TEST_F(MpiTraining, DynaquantOnTwoProcessesTrainsCompressesAndRestoresTheBitsOfOne) {
  const std::string dq = kConfigs + "/experiment/dynaquant.yaml data.dataset=digits network.layers=[64,32,10] "
                         "data.validation=300 train.epochs=6 train.batch_size=32 train.failures=3 train.logical_ranks=2 ";
  ASSERT_EQ(exp("run " + dq + "train.workers=1 hydra.run.dir=one").rc, 0);
  Ran r = launch(2, dq + "hydra.run.dir=two");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto one = results::ResultsReader::open(dir_ / "one/results.h5"), two = results::ResultsReader::open(dir_ / "two/results.h5");
  EXPECT_TRUE(two->complete());
  for (const char* key : {"final_weights_xxh3", "method"})
    EXPECT_EQ(std::get<std::string>(*two->attr("/summary", key)), std::get<std::string>(*one->attr("/summary", key))) << key;
  for (const char* key : {"test_accuracy", "weights_ratio", "full_state_ratio"})
    EXPECT_EQ(std::get<double>(*two->attr("/summary", key)), std::get<double>(*one->attr("/summary", key))) << key;
  EXPECT_EQ(two->read_table("/epochs").values, one->read_table("/epochs").values);
  auto c1 = one->read_table("/checkpoints"), c2 = two->read_table("/checkpoints");
  ASSERT_EQ(c2.rows, c1.rows);
  for (size_t col = 0; col < c1.values.size(); ++col)  // all but the timing columns (encode_s, decode_s)
    if (c1.columns[col].units != "s") {
      EXPECT_EQ(c2.values[col], c1.values[col]) << c1.columns[col].name;
    }
  EXPECT_EQ(two->read_table("/failures").rows, 3);
  auto files = [&](const std::string& run) {  // name -> bytes of each compressed file
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(dir_ / run / "compressed")) out[e.path().filename().string()] = dir_.read_file(e.path());
    return out;
  };
  EXPECT_EQ(files("two"), files("one"));
}

// Singularity's acceptance test (docs/parallelism.md) across processes: run B on 2 processes is stopped
// by SIGTERM sent to one of them (both stop after the same step, exit 75), moved to another
// directory, resumed on 1 process and killed there by SIGKILL, and finished on 2 processes; its
// weights, per-epoch losses and every table equal run A's (1 process, uninterrupted).
TEST_F(MpiTraining, RunStoppedOnTwoProcessesResumesOnOneThenTwoBitForBit) {
  ASSERT_EQ(exp("run " + job("a", "train.workers=1")).rc, 0);
  const std::string mark = fmt::format("{}", ::getpid());
  const int rc = signal_rank(mpirun(2, job("b"), mark), mark, dir_ / "b/checkpoints/ckpt-000003000015.ckpt",
                             std::chrono::milliseconds(0), 1, SIGTERM).rc;
  ASSERT_EQ(rc, 75) << dir_.read("err.txt");
  ASSERT_FALSE(complete(dir_ / "b/results.h5"));
  fs::rename(dir_ / "b", dir_ / "moved");
  std::vector<std::string> one = {"run", "--resume", (dir_ / "moved").string(), "--workers", "1"};
  const int killed = testing::run_exp_until_checkpoint(one, dir_ / "one.err", dir_ / "moved/checkpoints/ckpt-000011000005.ckpt", SIGKILL);
  ASSERT_EQ(killed, -1) << "finished before it could be killed: " << dir_.read("one.err");
  Ran finished = launch(2, "--resume " + (dir_ / "moved").string());
  ASSERT_EQ(finished.rc, 0) << finished.err;
  ASSERT_TRUE(complete(dir_ / "moved/results.h5"));

  EXPECT_EQ(summary("moved", "final_state_xxh3"), summary("a", "final_state_xxh3"));
  auto a = results::ResultsReader::open(dir_ / "a/results.h5");
  auto b = results::ResultsReader::open(dir_ / "moved/results.h5");
  for (const char* table : {"/train/layers", "/sweep", "/nor", "/predictions"})
    EXPECT_EQ(a->read_table(table).values, b->read_table(table).values) << table;
  auto ea = a->read_table("/train/epochs"), eb = b->read_table("/train/epochs");
  ASSERT_EQ(eb.rows, 30);
  for (size_t col = 0; col + 1 < ea.values.size(); ++col) EXPECT_EQ(ea.values[col], eb.values[col]) << col;
}

// A process killed inside the checkpoint write: rank 0 writes checkpoint (2, 5) into a pipe the
// test reads, so SIGKILL reaches it with part of the checkpoint written (the rest waits in the
// pipe); the test then leaves the bytes that arrived as the cut-short file a crash leaves. The
// launch ends with an error and nothing complete; resumed on 2 processes the run starts from the
// last whole checkpoint, writes (2, 5) over the cut-short one, and ends with the bits of an
// uninterrupted run.
TEST_F(MpiTraining, AProcessKilledInsideTheCheckpointWriteResumesFromTheLastWholeOne) {
  ASSERT_EQ(exp("run " + job("a", "train.workers=1")).rc, 0);
  const std::string mark = fmt::format("{}", ::getpid() + 3);
  const pid_t sh = start(mpirun(2, job("b", "train.collective_timeout_s=5"), mark));
  const fs::path checkpoints = dir_ / "b/checkpoints", cut = checkpoints / "ckpt-000002000005.tmp";
  wait_for(checkpoints / "ckpt-000001000005.ckpt");
  ASSERT_EQ(::mkfifo(cut.c_str(), 0644), 0) << std::strerror(errno);
  const int fd = ::open(cut.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(fd, 0);
  pollfd ready{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&ready, 1, 60'000), 1) << "the checkpoint was never written";
  std::vector<char> arrived(4096);
  const ssize_t got = ::read(fd, arrived.data(), arrived.size());
  ASSERT_GT(got, 0);
  signal_marked(mark, 0, SIGKILL);  // blocked writing the rest (the checkpoint is larger than the pipe)
  EXPECT_NE(end_of(sh), 0) << dir_.read("err.txt");
  ::close(fd);
  fs::remove(cut);
  std::ofstream(cut, std::ios::binary).write(arrived.data(), got);
  ASSERT_FALSE(complete(dir_ / "b/results.h5"));
  Ran finished = launch(2, "--resume " + (dir_ / "b").string());
  ASSERT_EQ(finished.rc, 0) << finished.err;
  ASSERT_TRUE(complete(dir_ / "b/results.h5"));
  EXPECT_EQ(summary("b", "final_state_xxh3"), summary("a", "final_state_xxh3"));
  EXPECT_FALSE(fs::exists(cut));
}

TEST_F(MpiTraining, AStoppedProcessTimesOutNamingItAndNothingIsComplete) {
  const std::string mark = fmt::format("{}", ::getpid() + 7);
  auto [rc, seconds] = signal_rank(mpirun(2, job("s", "train.collective_timeout_s=2"), mark), mark,
                                   dir_ / "s/checkpoints/ckpt-000001000005.ckpt", std::chrono::milliseconds(0), 1, SIGSTOP);
  const std::string err = dir_.read("err.txt");
  EXPECT_NE(rc, 0) << err;
  EXPECT_NE(rc, 124) << "the launch hung until timeout(1) ended it";
  EXPECT_NE(err.find("waiting for rank 1"), std::string::npos) << err;
  EXPECT_LT(seconds, 30);
  EXPECT_FALSE(complete(dir_ / "s/results.h5"));
}

}  // namespace xp::cli
