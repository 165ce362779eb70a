// `exp run` launched by mpirun (CTest label mpi): tensor-parallel ranks serve the tokens one
// process serves, only rank 0 writes, and a rank that dies or stops ends the whole launch with an
// error naming it and no result marked complete.
#include <dirent.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/support/exp_cli.h"
#include "tests/support/run_results.h"

namespace xp::cli {
namespace fs = std::filesystem;
using testing::kConfigs;
using testing::Ran;

namespace {

const std::string kServe = kConfigs + "/experiment/engine_serve.yaml";

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
  static bool complete(const fs::path& file) { return testing::run_complete(file); }
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
  for (int np : {2, 4}) {
    const std::string run = fmt::format("tp{}", np);
    Ran r = launch(np, serve_args(run, fmt::format("deployment.tensor_parallel={}", np)));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find(fmt::format("× {} (tensor parallel)", np)), std::string::npos) << r.out;
    EXPECT_EQ(tokens(run), tokens("one")) << np << " ranks";
    EXPECT_TRUE(complete(dir_ / run / "results.h5"));
    // Rank 0 alone reports and writes: one report, one log line saying where the run went.
    EXPECT_EQ(r.out.find("results:"), r.out.rfind("results:")) << r.out;
  }
}

TEST_F(MpiLaunch, ALaunchOfAnotherSizeThanTheConfigIsRefusedBeforeAnythingRuns) {
  Ran r = launch(2, serve_args("bad"));  // tensor_parallel stays 1
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("mpirun started 2 ranks, but deployment.tensor_parallel is 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("set deployment.tensor_parallel=2"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

TEST_F(MpiLaunch, AnExperimentOfOneProcessIsRefused) {
  Ran r = launch(2, kConfigs + "/experiment/linear_regression.yaml hydra.run.dir=lr");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("mpirun started 2 ranks, but linear_regression runs in one process"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "lr"));
}

// A long run (arrivals over ~20 s) so that the fault lands mid-serving.
class MpiFaults : public MpiLaunch {
 protected:
  // Starts the launch, waits until rank 0 serves, applies `fault` to rank 1, and returns the
  // launch's exit status and how long it took to end after the fault.
  std::pair<int, double> fault_rank_1(int signal, const std::string& extra) {
    const std::string mark = fmt::format("{}", ::getpid() * 100 + signal);
    const std::string cmd = mpirun(2, serve_args("r", "deployment.tensor_parallel=2 workload.num_requests=40 "
                                                      "workload.qps=2 " + extra), mark) + " > out.txt 2> err.txt";
    pid_t sh = -1;
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    EXPECT_EQ(posix_spawn(&sh, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ), 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(dir_ / "r/results.h5") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // serving now
    const pid_t worker = find_rank(mark, 1);
    EXPECT_GT(worker, 0) << "rank 1 not found";
    if (worker > 0) kill(worker, signal);
    const auto t0 = std::chrono::steady_clock::now();
    int status = 0;
    waitpid(sh, &status, 0);
    return {WEXITSTATUS(status), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
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

}  // namespace xp::cli
