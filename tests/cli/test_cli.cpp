// End-to-end tests of the `exp` binary, run as a user would: in a scratch directory, with the
// repository's configs. Label: integration.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <set>
#include <thread>

#include "core/results/results_file.h"
#include "tests/support/exp_cli.h"
#include "tests/support/run_results.h"

namespace xp::cli {
namespace fs = std::filesystem;

namespace {

using testing::kConfigs;
using testing::kExp;
using testing::Ran;
const std::string kLinReg = std::string(EXP_SOURCE_DIR) + "/configs/experiment/linear_regression.yaml";
const std::string kQuickstart = std::string(EXP_SOURCE_DIR) + "/configs/quickstart.yaml";

class Cli : public ::testing::Test {
 protected:
  // Runs `exp ARGS` in the scratch directory; `env` is prepended as shell assignments.
  Ran exp(const std::string& args, const std::string& env = "") { return testing::run_exp(dir_, args, env); }
  fs::path path(const std::string& rel) const { return dir_ / rel; }
  testing::TempDir dir_;
};

const std::string kSmall = "train.steps=20 train.checkpoint_every=5";

}  // namespace

TEST_F(Cli, RunWritesRunDirectoryAndPrintsTable) {
  Ran r = exp("run " + kLinReg + " " + kSmall + " hydra.run.dir=run");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("final_mse"), std::string::npos) << r.out;
  for (const char* f : {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "linear_regression.log",
                        "results.h5"})
    EXPECT_TRUE(fs::exists(path("run") / f)) << f;
  EXPECT_NE(dir_.read("run/.hydra/overrides.yaml").find("train.steps=20"), std::string::npos);
  EXPECT_NE(dir_.read("run/linear_regression.log").find("running linear_regression"), std::string::npos);
  auto reader = results::ResultsReader::open(path("run/results.h5"));
  EXPECT_TRUE(reader->complete());
  EXPECT_EQ(reader->read_table("/train/steps").rows, 20);
  EXPECT_NE(reader->text("/config")->find("experiment: linear_regression"), std::string::npos);
  std::string cmd = "h5ls -r " + path("run/results.h5").string() + " > " + path("h5ls.txt").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_NE(dir_.read("h5ls.txt").find("/train/steps/loss"), std::string::npos);
}

TEST_F(Cli, DefaultRunDirectoryIsResultsOutputsDateTime) {
  ASSERT_EQ(exp("run " + kLinReg + " " + kSmall).rc, 0);
  ASSERT_TRUE(fs::is_directory(path("results/outputs")));
  auto day = fs::directory_iterator(path("results/outputs"))->path();
  EXPECT_EQ(day.filename().string().size(), 10u);  // YYYY-MM-DD
  auto time = fs::directory_iterator(day)->path();
  EXPECT_EQ(time.filename().string().size(), 8u);  // HH-MM-SS
  EXPECT_TRUE(fs::exists(time / ".hydra/config.yaml"));
}

TEST_F(Cli, UnknownKeyExitsTwoWithSuggestionAndWritesNothing) {
  Ran r = exp("run " + kLinReg + " no.such.key=1");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("no.such.key"), std::string::npos);
  EXPECT_NE(r.err.find("+no.such.key=1"), std::string::npos);
  r = exp("run " + kLinReg + " train.stepz=1");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("did you mean 'train.steps'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("results")));
}

TEST_F(Cli, UnknownKeyInAConfigFileNamesFileLineAndKey) {
  dir_.write("configs/typo.yaml", "defaults:\n  - experiment: linear_regression\n  - _self_\ntrain:\n  lr: 0.1\n  bach_size: 8\n");
  Ran r = exp("run -cd " + std::string(EXP_SOURCE_DIR) + "/configs configs/typo.yaml");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("typo.yaml:6:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("train.bach_size"), std::string::npos);
  EXPECT_NE(r.err.find("did you mean 'batch_size'"), std::string::npos);
  EXPECT_FALSE(fs::exists(path("results")));
}

TEST_F(Cli, YamlSyntaxErrorNamesItsLine) {
  dir_.write("configs/bad.yaml", "experiment: linear_regression\ntrain:\n  steps: [1, 2\n  lr: 3\n");
  Ran r = exp("run configs/bad.yaml");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("bad.yaml:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("YAML syntax error"), std::string::npos);
}

TEST_F(Cli, MissingFileAndMandatoryValueAndTypeMismatchExitTwo) {
  EXPECT_EQ(exp("run configs/none.yaml").rc, 2);
  dir_.write("configs/req.yaml", "experiment: linear_regression\ntrain:\n  lr: ???\n");
  Ran r = exp("run configs/req.yaml");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("train.lr=VALUE"), std::string::npos) << r.err;
  r = exp("run " + kLinReg + " train.steps=many");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("expected int"), std::string::npos);
}

TEST_F(Cli, ExperimentSelectionAndValueErrorsExitTwo) {
  dir_.write("configs/none.yaml", "seed: 1\n");
  Ran r = exp("run configs/none.yaml");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("selects no experiment"), std::string::npos) << r.err;
  dir_.write("configs/typo_exp.yaml", "experiment: linear_regresion\n");
  r = exp("run configs/typo_exp.yaml");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("typo_exp.yaml:1:13"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean 'linear_regression'"), std::string::npos);
  r = exp("run " + kLinReg + " data.samples=0");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("data.samples"), std::string::npos);
  EXPECT_NE(r.err.find("must be ≥ 1"), std::string::npos) << r.err;
  r = exp("run " + kLinReg + " train.device=tpu");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("cpu, cuda"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("results")));
}

TEST_F(Cli, PrintingAndResumeErrorsExitTwo) {
  EXPECT_EQ(exp("run --cfg jobb " + kLinReg).rc, 2);
  EXPECT_EQ(exp("run --info default " + kLinReg).rc, 2);
  Ran r = exp("run --cfg job -p trian " + kLinReg);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("train"), std::string::npos) << r.err;
  r = exp("run --resume nowhere");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--resume takes a run directory"), std::string::npos) << r.err;
  EXPECT_EQ(exp("run --jobs").rc, 2);  // a flag without its value
}

TEST_F(Cli, InterpolationCycleExitsTwo) {
  Ran r = exp("run " + kLinReg + " '+a=${b}' '+b=${a}'");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("cycle"), std::string::npos) << r.err;
}

TEST_F(Cli, SweepMakesOneRunDirPerJobAndCollectOneRowEach) {
  Ran r = exp("run -m " + kLinReg + " " + kSmall + " train.lr=0.01,0.02 train.batch_size=8,16 hydra.sweep.dir=sweep --jobs 2");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("#3 : train.steps=20 train.checkpoint_every=5 train.lr=0.02 train.batch_size=16"),
            std::string::npos) << r.err;
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(fs::exists(path("sweep/" + std::to_string(i) + "/results.h5")));
  EXPECT_TRUE(fs::exists(path("sweep/multirun.yaml")));
  r = exp("collect sweep");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string csv = dir_.read("sweep/summary.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5) << csv;  // header + 4 jobs
  EXPECT_NE(csv.find("train.lr,train.batch_size"), std::string::npos) << csv;
  EXPECT_NE(csv.find("3,true,"), std::string::npos);
  std::string py = "/usr/bin/python3 -c \"import h5py; f = h5py.File('" + path("sweep/index.h5").string() +
                   "'); print(sorted(f.keys()), f['2/summary'].attrs['steps'])\" > " + path("py.txt").string();
  ASSERT_EQ(std::system(py.c_str()), 0);
  EXPECT_EQ(dir_.read("py.txt"), "['0', '1', '2', '3'] 20\n");
}

// Hydra's job settings are applied, not just accepted: where the composed config goes, the log
// (hydra/job_logging, hydra.verbose), environment variables and the working directory.
TEST_F(Cli, HydraJobSettingsAreApplied) {
  Ran r = exp("run " + kLinReg + " " + kSmall + " hydra.run.dir=r hydra.output_subdir=meta hydra.verbose=true "
              "'+hydra.job.env_set.SLURM_JOB_ID=4242'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::exists(path("r/meta/config.yaml")));
  EXPECT_FALSE(fs::exists(path("r/.hydra")));
  EXPECT_NE(dir_.read("r/linear_regression.log").find("[debug] checkpoint saved at step 5"), std::string::npos);
  auto res = results::ResultsReader::open(path("r/results.h5"));
  EXPECT_EQ(std::get<std::string>(*res->attr("/", "slurm_job_id")), "4242");  // read from the job's environment
  // --resume finds the moved config folder.
  EXPECT_NE(exp("run --resume r").out.find("finished already"), std::string::npos);

  r = exp("run " + kLinReg + " " + kSmall + " hydra.run.dir=quiet hydra/job_logging=disabled");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(fs::exists(path("quiet/linear_regression.log")));
  EXPECT_EQ(r.err.find("info"), std::string::npos) << r.err;

  // hydra.job.chdir: the job runs in its run directory, so a relative output lands there.
  r = exp("run " + kConfigs + "/experiment/make_model.yaml model.hidden_size=32 model.num_hidden_layers=1 "
          "model.num_attention_heads=2 model.num_key_value_heads=2 model.intermediate_size=64 model.vocab_size=50 "
          "output_dir=m hydra.run.dir=cd hydra.job.chdir=true");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::exists(path("cd/m/config.json")));

  r = exp("run " + kLinReg + " hydra.run.dir=x hydra.output_subdir=null");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
}

// Strings a YAML 1.1 reader would type (hex, dates) stay strings in .hydra/config.yaml, and an
// override with a leading zero is a string, as in Hydra.
TEST_F(Cli, ConfigFilesReadBackAsTheStringsTheyHold) {
  Ran r = exp("run " + kLinReg + " +tag=0x10 +day=2024-01-01 +zip=010 +empty= --cfg job");  // what .hydra/config.yaml holds
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string py = "/usr/bin/python3 -c \"import yaml; c = yaml.safe_load(open('" + path("out.txt").string() +
                   "')); print(repr(c['tag']), repr(c['day']), repr(c['zip']), repr(c['empty']))\" > " + path("py.txt").string();
  ASSERT_EQ(std::system(py.c_str()), 0);
  EXPECT_EQ(dir_.read("py.txt"), "'0x10' '2024-01-01' '010' ''\n");
}

// Every shipped config passes its own checks (keys, types, declared ranges) without running.
TEST_F(Cli, EveryShippedConfigIsValid) {
  ASSERT_EQ(exp("run " + kConfigs + "/experiment/make_model.yaml model.hidden_size=32 model.num_hidden_layers=1 "
                "model.num_attention_heads=2 model.num_key_value_heads=2 model.intermediate_size=64 model.vocab_size=50 "
                "output_dir=" + path("m").string() + " hydra.run.dir=made").rc, 0);
  int checked = 0;
  for (const auto& e : fs::recursive_directory_iterator(kConfigs)) {
    const std::string p = e.path().string();
    if (e.path().extension() != ".yaml" || dir_.read_file(e.path()).find("experiment:") == std::string::npos) continue;
    const bool engine = dir_.read_file(e.path()).find("experiment: engine_") != std::string::npos;
    const bool client = dir_.read_file(e.path()).find("experiment: metron") != std::string::npos;  // --check connects to nothing
    Ran r = exp("run " + p + " --check" + (engine ? " model_dir=" + path("m").string() : "") +
                (client ? " endpoint=http://127.0.0.1:1/v1" : ""));
    EXPECT_EQ(r.rc, 0) << p << "\n" << r.err;
    EXPECT_NE(r.out.find("the config is valid"), std::string::npos) << p;
    ++checked;
  }
  EXPECT_GE(checked, 30);
  EXPECT_FALSE(fs::exists(path("results")));  // --check writes nothing
}

// A key the experiment rejects, in some jobs of a sweep, stops the sweep before any job runs
// (or, under Slurm, before anything is submitted): exit 2 naming it, no run directory.
TEST_F(Cli, ASweepWithAKeyTheExperimentRejectsRunsNothing) {
  Ran r = exp("run -m " + kLinReg + " " + kSmall + " +train.momentum=0.9,0.5 hydra.sweep.dir=sw");
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("momentum"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "sw/0"));
}

// Two runs started together with the default, time-stamped run directory each get their own.
TEST_F(Cli, TwoRunsStartedInTheSameSecondGetTheirOwnDirectories) {
  std::vector<pid_t> pids;
  for (int i = 0; i < 2; ++i)
    pids.push_back(testing::spawn_exp({"run", kLinReg, "train.steps=20", "hydra.run.dir=" + (dir_ / "out").string() + "/${now:%H-%M-%S}"},
                                      dir_ / fmt::format("err{}.txt", i)));
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0) << dir_.read("err0.txt") << dir_.read("err1.txt");
  }
  std::set<std::string> runs;
  for (const auto& run : fs::directory_iterator(dir_ / "out")) {
    EXPECT_TRUE(testing::run_complete(run.path() / "results.h5")) << run.path();
    // Each directory's composed config records that directory.
    EXPECT_NE(dir_.read(fs::relative(run.path() / ".hydra/hydra.yaml", dir_.path()).string()).find(run.path().string()),
              std::string::npos) << run.path();
    runs.insert(run.path().string());
  }
  EXPECT_EQ(runs.size(), 2u);
}

// `exp show` reads a run that is still running (its writer holds HDF5's file lock).
TEST_F(Cli, ShowReadsARunInProgress) {
  pid_t pid = testing::spawn_exp({"run", kLinReg, "train.steps=100000000", "train.checkpoint_every=50",
                                  "hydra.run.dir=" + (dir_ / "live").string()},
                                 dir_ / "live.err");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(dir_ / "live/checkpoints/results.h5.saved") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Ran shown = exp("show live");
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(shown.rc, 0) << shown.err;
  EXPECT_NE(shown.out.find("linear_regression"), std::string::npos) << shown.out;
}

TEST_F(Cli, SweepWithoutMultirunIsRefused) {
  Ran r = exp("run " + kLinReg + " train.lr=0.1,0.2");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("-m"), std::string::npos);
}

TEST_F(Cli, ExistingResultsAreNeverOverwritten) {
  ASSERT_EQ(exp("run " + kLinReg + " " + kSmall + " hydra.run.dir=run").rc, 0);
  Ran r = exp("run " + kLinReg + " " + kSmall + " hydra.run.dir=run");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--resume"), std::string::npos);
  EXPECT_NE(exp("run --resume run").out.find("nothing to resume"), std::string::npos);
}

TEST_F(Cli, KilledRunResumesToIdenticalResults) {
  const std::string args = kLinReg +
      " data.features=256 train.batch_size=128 train.steps=12000 train.checkpoint_every=400 hydra.run.dir=";
  ASSERT_EQ(exp("run " + args + "full").rc, 0);

  std::vector<std::string> argv = {"run", kLinReg, "data.features=256", "train.batch_size=128", "train.steps=12000",
                                   "train.checkpoint_every=400", "hydra.run.dir=" + path("killed").string()};
  const int rc = testing::run_exp_until_checkpoint(argv, path("killed.err"),
                                                   path("killed/checkpoints/ckpt-000000000800.ckpt"));
  ASSERT_EQ(rc, 75) << "the run finished before it could be stopped: " << dir_.read("killed.err");
  {
    auto partial = results::ResultsReader::open(path("killed/results.h5"));
    EXPECT_FALSE(partial->complete());  // a stopped run is never mistaken for a finished one
  }
  Ran r = exp("run --resume killed");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto a = results::ResultsReader::open(path("full/results.h5"));
  auto b = results::ResultsReader::open(path("killed/results.h5"));
  EXPECT_TRUE(b->complete());
  EXPECT_EQ(a->read_table("/train/steps").values, b->read_table("/train/steps").values);
  EXPECT_EQ(b->read_table("/train/steps").rows, 12000);
  for (const char* key : {"final_mse", "weight_error"})
    EXPECT_EQ(std::get<double>(*a->attr("/summary", key)), std::get<double>(*b->attr("/summary", key))) << key;
  EXPECT_NE(dir_.read("killed/linear_regression.log").find("resuming from"), std::string::npos);
}

// linear_regression trains on the logical world like any experiment on core/nn's substrate: its
// results depend on train.logical_ranks, never on the threads running them.
TEST_F(Cli, LinearRegressionOnLogicalRanksGivesTheSameBitsOnAnyWorkerCount) {
  for (const char* workers : {"1", "4"})
    ASSERT_EQ(exp("run " + kLinReg + " train.steps=60 train.logical_ranks=4 train.workers=" + workers +
                  " hydra.run.dir=w" + workers).rc, 0);
  auto one = results::ResultsReader::open(path("w1/results.h5")), four = results::ResultsReader::open(path("w4/results.h5"));
  EXPECT_EQ(four->read_table("/train/steps").values, one->read_table("/train/steps").values);
  EXPECT_EQ(four->attr("/summary", "final_mse"), one->attr("/summary", "final_mse"));
}

TEST_F(Cli, CfgJobPrintsUnresolvedOrResolvedConfig) {
  Ran r = exp("run --cfg job " + kLinReg + " '+tag=run_${seed}'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("tag: run_${seed}"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("hydra:"), std::string::npos);
  r = exp("run --cfg job --resolve " + kLinReg + " '+tag=run_${seed}'");
  EXPECT_NE(r.out.find("tag: run_0"), std::string::npos) << r.out;
  r = exp("run --cfg job -p train " + kLinReg);
  EXPECT_EQ(r.out.find("experiment:"), std::string::npos);
  EXPECT_NE(r.out.find("batch_size: 64"), std::string::npos);
  r = exp("run --cfg hydra " + kLinReg);
  EXPECT_NE(r.out.find("run:"), std::string::npos);
  EXPECT_FALSE(fs::exists(path("results")));
}

TEST_F(Cli, InfoDefaultsShowsTheTree) {
  Ran r = exp("run --info defaults " + kQuickstart);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"experiment/serving_sim", "scheduler/vllm", "schedulers.vllm", "model/mistral_7b",
                        "hydra/launcher/local", "experiment = serving_sim", "scheduler@schedulers.sarathi_serve = sarathi_serve"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

// Each shipped scheduler option names its own type and gets the shared keys from
// scheduler/base/common.yaml, as `scheduler` and as one of several `schedulers`.
TEST_F(Cli, EverySchedulerOptionNamesItsTypeAndSharesTheCommonKeys) {
  const std::string serving = std::string(EXP_SOURCE_DIR) + "/configs/experiment/serving_sim.yaml";
  int checked = 0;
  for (const auto& e : fs::directory_iterator(std::string(EXP_SOURCE_DIR) + "/configs/scheduler")) {
    if (e.path().extension() != ".yaml") continue;
    const std::string name = e.path().stem().string();
    Ran r = exp("run --cfg job -p scheduler " + serving + " scheduler=" + name);
    ASSERT_EQ(r.rc, 0) << name << "\n" << r.err;
    EXPECT_NE(r.out.find("type: " + name + "\n"), std::string::npos) << r.out;
    for (const char* key : {"max_num_seqs: 128", "block_size: 16", "watermark: 0.01", "append_needs_free_block: true"})
      EXPECT_NE(r.out.find(key), std::string::npos) << name << ": " << key << "\n" << r.out;
    r = exp("run --cfg job -p schedulers." + name + " " + serving + " +scheduler@schedulers." + name + "=" + name);
    ASSERT_EQ(r.rc, 0) << name << "\n" << r.err;
    EXPECT_NE(r.out.find("block_size: 16"), std::string::npos) << name << "\n" << r.out;
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST_F(Cli, QuickstartComparesSchedulersAndWritesPlots) {
  Ran r = exp("run " + kQuickstart + " workload.num_requests=300 hydra.run.dir=qs");
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"vllm", "sarathi_serve", "P99 TBT (s)", "fluidity-index", "preemptions"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  auto res = results::ResultsReader::open(path("qs/results.h5"));
  EXPECT_TRUE(res->complete());
  EXPECT_EQ(res->read_table("/serving/vllm/requests").rows, 300);
  EXPECT_EQ(res->read_table("/serving/sarathi_serve/cdf").rows, 101);
  EXPECT_TRUE(res->attr("/summary", "sarathi_serve.p99_tbt_s").has_value());
  for (const char* png : {"ttft_cdf.png", "tbt_cdf.png"}) EXPECT_TRUE(fs::exists(path("qs") / png)) << png;
}

TEST_F(Cli, ListShowsExperimentsAndGroups) {
  Ran r = exp("list", "");
  r = Ran{std::system(("cd " + std::string(EXP_SOURCE_DIR) + " && " + kExp + " list > " + path("l.txt").string()).c_str()),
          dir_.read("l.txt"), ""};
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("linear_regression"), std::string::npos);
  EXPECT_NE(r.out.find("hydra/launcher"), std::string::npos);
  EXPECT_NE(r.out.find("local, slurm"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("simple_chunking     chunked prefills"), std::string::npos) << r.out;  // the scheduler registry
}

TEST_F(Cli, ShowPrintsProvenanceSummaryAndTables) {
  ASSERT_EQ(exp("run " + kLinReg + " " + kSmall + " hydra.run.dir=run").rc, 0);
  Ran r = exp("show run");
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"[complete]", "git_sha", "final_mse", "Table /train/steps (20 rows)", "[steps]"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  EXPECT_EQ(exp("show nowhere").rc, 2);
}

TEST_F(Cli, EveryVerbHasHelp) {
  for (const char* v : {"run", "sweep", "list", "show", "collect"}) {
    Ran r = exp(std::string(v) + " --help");
    EXPECT_EQ(r.rc, 0) << v;
    EXPECT_NE(r.out.find(std::string("exp ") + v), std::string::npos) << r.out;
  }
  EXPECT_EQ(exp("frobnicate").rc, 2);
}

TEST_F(Cli, SlurmLauncherSubmitsOneArrayAndTasksRunFromTheManifest) {
  dir_.write("bin/sbatch", "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/sbatch.args\"\necho 4242\n");
  fs::permissions(path("bin/sbatch"), fs::perms::owner_all);
  Ran r = exp("run -m " + kLinReg + " " + kSmall + " hydra/launcher=slurm hydra.launcher.partition=debug train.lr=0.1,0.2 hydra.sweep.dir=sw",
              "PATH=" + path("bin").string() + ":$PATH");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("Slurm array 4242"), std::string::npos) << r.out;
  std::string script = dir_.read("sw/.slurm/submit.sh");
  EXPECT_NE(script.find("#SBATCH --array=0-1%2"), std::string::npos) << script;
  EXPECT_NE(script.find("#SBATCH --partition=debug"), std::string::npos);
  EXPECT_NE(script.find("--from-manifest"), std::string::npos);
  EXPECT_NE(dir_.read("bin/sbatch.args").find("--parsable"), std::string::npos);
  // What the array task does when Slurm starts it:
  r = exp("run --from-manifest sw/.sweep/jobs.yaml --index 1", "SLURM_ARRAY_TASK_ID=1");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto res = results::ResultsReader::open(path("sw/1/results.h5"));
  EXPECT_TRUE(res->complete());
  EXPECT_NE(dir_.read("sw/1/.hydra/overrides.yaml").find("train.lr=0.2"), std::string::npos);
  EXPECT_EQ(exp("run --from-manifest sw/.sweep/jobs.yaml --index 5").rc, 2);
}

}  // namespace xp::cli
