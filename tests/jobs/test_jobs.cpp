#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>

#include <fstream>

#include "core/config/error.h"
#include "core/config/yaml_io.h"
#include "core/jobs/bytes.h"
#include "core/jobs/checkpoint_store.h"
#include "core/jobs/run_context.h"
#include "core/jobs/slurm.h"
#include "core/results/results_file.h"
#include "tests/support/temp_dir.h"

namespace xp::jobs {
namespace fs = std::filesystem;

namespace {
std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}
void flip_byte(const fs::path& p, size_t offset) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x40));
}
}  // namespace

TEST(Bytes, RoundTripAndTruncationIsDetected) {
  ByteWriter w;
  w.put<int64_t>(-5);
  w.put_string("abc");
  w.put_vector(std::vector<float>{1.5f, 2.5f});
  ByteReader r(w.bytes());
  EXPECT_EQ(r.get<int64_t>(), -5);
  EXPECT_EQ(r.get_string(), "abc");
  EXPECT_EQ(r.get_vector<float>(), (std::vector<float>{1.5f, 2.5f}));
  EXPECT_TRUE(r.at_end());
  ByteReader short_reader(w.bytes().data(), 10);
  short_reader.get<int64_t>();
  EXPECT_THROW(short_reader.get_string(), CheckpointError);
}

TEST(Bytes, VarintsTakeOneByteASevenBitsAndBlobsRoundTrip) {
  ByteWriter w;
  for (uint64_t v : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{300}, UINT64_MAX}) w.put_varint(v);
  w.put_blob({1, 2, 3});
  EXPECT_EQ(w.bytes().size(), 1u + 1 + 2 + 2 + 10 + (1 + 3));
  ByteReader r(w.bytes());
  for (uint64_t v : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{300}, UINT64_MAX}) EXPECT_EQ(r.get_varint(), v);
  EXPECT_EQ(r.get_blob(), (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_TRUE(r.at_end());
  // A varint that never ends and a blob longer than the payload are refused.
  const std::vector<std::byte> endless(11, std::byte{0xff});
  ByteReader e(endless);
  EXPECT_THROW(e.get_varint(), CheckpointError);
  ByteReader b(w.bytes().data() + w.bytes().size() - 4, 3);
  EXPECT_THROW(b.get_blob(), CheckpointError);
}

TEST(CheckpointStore, SaveLoadKeepsTheNewestAndPrunes) {
  testing::TempDir d;
  CheckpointStore store(d / "ckpt", 2);
  for (uint64_t s : {10, 20, 30}) ASSERT_NO_THROW(store.save(s, bytes_of("state" + std::to_string(s))));
  EXPECT_EQ(store.list().size(), 2u);
  auto latest = store.load_latest();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 30u);
  EXPECT_EQ(latest->payload, bytes_of("state30"));
  for (auto& e : fs::directory_iterator(d / "ckpt")) EXPECT_NE(e.path().extension(), ".tmp");
}

TEST(CheckpointStore, AnyFlippedByteIsDetectedAndTheOlderOneUsed) {
  testing::TempDir d;
  CheckpointStore store(d / "ckpt", 3);
  ASSERT_NO_THROW(store.save(1, bytes_of("older")));
  ASSERT_NO_THROW(store.save(2, bytes_of("newer")));
  fs::path newest = store.list().back();
  size_t size = fs::file_size(newest);
  for (size_t off = 0; off < size; ++off) {
    flip_byte(newest, off);
    EXPECT_THROW(CheckpointStore::read(newest), CheckpointError) << "flip at byte " << off << " went unnoticed";
    flip_byte(newest, off);  // restore
  }
  flip_byte(newest, size - 3);
  auto latest = store.load_latest();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 1u);
}

TEST(CheckpointStore, TruncatedAndLeftoverTempFilesAreIgnored) {
  testing::TempDir d;
  CheckpointStore store(d / "ckpt", 3);
  ASSERT_NO_THROW(store.save(5, bytes_of("good")));
  std::ofstream(d / "ckpt" / "ckpt-000000000009.tmp") << "half-written";  // killed mid-write
  ASSERT_NO_THROW(store.save(7, bytes_of("will be cut")));
  fs::resize_file(store.list().back(), 20);
  auto latest = store.load_latest();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 5u);
  try {
    CheckpointStore::read(store.list().back());
    ADD_FAILURE() << "a truncated checkpoint was read";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST(CheckpointStore, EmptyDirectoryHasNothingToLoad) {
  testing::TempDir d;
  EXPECT_FALSE(CheckpointStore(d / "none").load_latest().has_value());
}

namespace {
RunSpec run_spec(const fs::path& dir, bool resume) {
  RunSpec s;
  s.config = config::load_yaml_string("seed: 3\n", "c");
  s.output_dir = dir;
  s.experiment = "test";
  s.resume = resume;
  return s;
}
const std::vector<results::ColumnSpec> kColumns = {{"x", results::ColumnType::kInt64, "", ""}};

// A run that saves a checkpoint after five rows, writes three more and then stops (returning its
// context, for the caller to end as the test needs).
std::unique_ptr<RunContext> run_past_a_checkpoint(const fs::path& dir) {
  auto ctx = std::make_unique<RunContext>(run_spec(dir, false));
  auto& t = ctx->table("/t", kColumns);
  for (int64_t i = 0; i < 5; ++i) t.append({i});
  ByteWriter w;
  w.put<int64_t>(5);
  ctx->save_checkpoint(5, w);
  for (int64_t i = 5; i < 8; ++i) t.append({i});  // lost when the job is killed
  return ctx;
}

// Resumes in `dir`, checks the payload and the table cut back to five rows, adds a sixth, ends.
void resume_and_finish(const fs::path& dir) {
  RunContext ctx(run_spec(dir, true));
  auto payload = ctx.restore();
  ASSERT_TRUE(payload.has_value());
  ByteReader r(*payload);
  EXPECT_EQ(r.get<int64_t>(), 5);
  auto& t = ctx.table("/t", kColumns);
  EXPECT_EQ(t.rows(), 5);
  t.append({int64_t{5}});
  ctx.finish(RunOutcome::kDone);
  auto reader = results::ResultsReader::open(dir / "results.h5");
  EXPECT_TRUE(reader->complete());
  EXPECT_EQ(reader->read_table("/t").values[0], (std::vector<double>{0, 1, 2, 3, 4, 5}));
}
}  // namespace

TEST(RunContext, ResumeCutsTablesBackToTheCheckpoint) {
  testing::TempDir d;
  {
    auto ctx = run_past_a_checkpoint(d.path());
    EXPECT_EQ(ctx->seed(), 3u);
    ctx->finish(RunOutcome::kPreempted);
  }
  resume_and_finish(d.path());
}

TEST(RunContext, AResultsFileTornByAKillResumesFromTheCopySavedWithTheCheckpoint) {
  // HDF5 gives no crash safety: a SIGKILL mid-write can leave results.h5 unreadable.
  testing::TempDir d;
  run_past_a_checkpoint(d.path()).reset();
  const auto size = fs::file_size(d / "results.h5");
  fs::resize_file(d / "results.h5", size / 2);
  resume_and_finish(d.path());
}

TEST(Slurm, SbatchScriptMatchesGoldenFile) {
  SlurmParams p = slurm_params_from(config::load_yaml_string(
      "name: slurm\ntimeout_min: 30\npartition: gpu\ngpus_per_node: 1\nmem_gb: 16\narray_parallelism: 2\n"
      "additional_parameters: {mail-type: END}\nsetup: ['module load cuda']\n",
      "launcher.yaml"));
  std::string script = sbatch_script(p, "quickstart", "/sweeps/s1", 4, "/opt/exp/build/exp", "/sweeps/s1/.slurm/jobs.yaml");
  std::string golden = testing::TempDir::read_file(std::string(EXP_SOURCE_DIR) + "/tests/jobs/golden/sbatch.txt");
  EXPECT_EQ(script, golden);
}

// One setting drives both ends: the signal Slurm sends before the time limit is the one the job
// checkpoints on (a USR2 handler and a USR1 --signal killed tasks before they could save).
TEST(Slurm, TheScriptAsksForTheCheckpointSignal) {
  SlurmParams p = slurm_params_from(config::load_yaml_string("name: slurm\ntimeout_min: 30\n", "l"));
  p.checkpoint_signal = "USR2";
  EXPECT_THAT(sbatch_script(p, "j", "/s", 2, "/exp", "/s/m.yaml"), ::testing::HasSubstr("#SBATCH --signal=B:USR2@120\n"));
}

TEST(Slurm, SeveralTasksPerJobRunAsOneSrunLaunch) {
  SlurmParams p = slurm_params_from(config::load_yaml_string("name: slurm\ntasks_per_node: 2\n", "l"));
  EXPECT_THAT(sbatch_script(p, "j", "/s", 2, "/exp", "/s/m.yaml"),
              ::testing::HasSubstr("exec srun /exp run --from-manifest /s/m.yaml --index \"$SLURM_ARRAY_TASK_ID\"\n"));
}

TEST(Slurm, ATimeLimitNoLongerThanTheSignalDelayIsRefusedNamingTheKey) {
  try {
    slurm_params_from(config::load_yaml_string("name: slurm\ntimeout_min: 2\nsignal_delay_s: 120\n", "launcher.yaml"));
    FAIL() << "accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "hydra.launcher.signal_delay_s");
    EXPECT_THAT(e.what(), ::testing::HasSubstr("launcher.yaml:3"));
    EXPECT_THAT(e.hint(), ::testing::HasSubstr("timeout_min above 2"));
  }
  EXPECT_NO_THROW(slurm_params_from(config::load_yaml_string("name: slurm\ntimeout_min: 3\nsignal_delay_s: 120\n", "l")));
}

TEST(Slurm, OnlyTheTimeLimitSignalRequeuesAndAtMostMaxNumTimeoutTimes) {
  EXPECT_EQ(requeue_after_stop(SIGUSR1, SIGUSR1, 0, 3), Requeue::kYes);
  EXPECT_EQ(requeue_after_stop(SIGUSR1, SIGUSR1, 2, 3), Requeue::kYes);
  EXPECT_EQ(requeue_after_stop(SIGUSR1, SIGUSR1, 3, 3), Requeue::kTimeoutsSpent);
  EXPECT_EQ(requeue_after_stop(SIGUSR1, SIGUSR1, 0, 0), Requeue::kTimeoutsSpent);  // 0: never
  EXPECT_EQ(requeue_after_stop(SIGTERM, SIGUSR1, 0, 3), Requeue::kNotOnThisSignal);  // scancel
  EXPECT_EQ(requeue_after_stop(SIGINT, SIGUSR1, 0, 3), Requeue::kNotOnThisSignal);
  EXPECT_EQ(requeue_after_stop(SIGUSR2, SIGUSR2, 0, 3), Requeue::kYes);
  EXPECT_EQ(requeue_after_stop(SIGUSR1, SIGUSR2, 0, 3), Requeue::kNotOnThisSignal);
}

TEST(Slurm, UnknownLauncherKeyIsRejected) {
  EXPECT_THROW(slurm_params_from(config::load_yaml_string("name: slurm\ngpus_per_nod: 1\n", "l")), config::ConfigError);
}

TEST(Slurm, RequeueIdNamesTheArrayTaskNotTheArray) {
  setenv("SLURM_JOB_ID", "100", 1);
  setenv("SLURM_ARRAY_JOB_ID", "99", 1);
  setenv("SLURM_ARRAY_TASK_ID", "3", 1);
  EXPECT_EQ(slurm_requeue_id(), "99_3");
  unsetenv("SLURM_ARRAY_JOB_ID");
  unsetenv("SLURM_ARRAY_TASK_ID");
  EXPECT_EQ(slurm_requeue_id(), "100");
  unsetenv("SLURM_JOB_ID");
  EXPECT_EQ(slurm_requeue_id(), "");
}

}  // namespace xp::jobs
