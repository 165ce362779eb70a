#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "core/results/h5.h"
#include "core/results/results_file.h"
#include "tests/support/temp_dir.h"

namespace xp::results {
namespace {

const std::vector<ColumnSpec> kCols = {
    {"step", ColumnType::kInt64, "steps", "training step"},
    {"loss", ColumnType::kFloat64, "", "mean squared error"},
    {"tokens", ColumnType::kUInt32, "tokens", "tokens in the batch"},
};

}  // namespace

TEST(ResultsFile, TablesRoundTripWithUnits) {
  testing::TempDir d;
  {
    auto w = ResultsWriter::create(d / "r.h5");
    Table& t = w->table("/train/steps", kCols);
    for (int i = 0; i < 1000; ++i) t.append({int64_t{i}, 1.0 / (i + 1), int64_t{i * 2}});
    EXPECT_EQ(t.rows(), 1000);
    w->mark_complete();
  }
  auto r = ResultsReader::open(d / "r.h5");
  EXPECT_TRUE(r->complete());
  EXPECT_EQ(r->tables(), (std::vector<std::string>{"/train/steps"}));
  TableData t = r->read_table("/train/steps");
  ASSERT_EQ(t.columns.size(), 3u);
  EXPECT_EQ(t.columns[0].name, "step");  // declaration order, not alphabetical
  EXPECT_EQ(t.columns[2].units, "tokens");
  EXPECT_EQ(t.columns[1].description, "mean squared error");
  EXPECT_EQ(t.rows, 1000);
  EXPECT_DOUBLE_EQ(t.values[1][9], 0.1);
  EXPECT_DOUBLE_EQ(t.values[2][999], 1998);
}

TEST(ResultsFile, AttributesAndConfigText) {
  testing::TempDir d;
  {
    auto w = ResultsWriter::create(d / "r.h5");
    w->set_attr("/", "git_sha", std::string("abc"));
    w->set_attr("/", "seed", int64_t{42});
    w->set_attr("/", "overrides", std::vector<std::string>{"a=1", "b=x"});
    w->set_attr("/summary", "final_loss", 0.5);
    w->set_attr("/summary", "final_loss", 0.25);  // rewriting replaces
    w->write_text("/config", "a: 1\nname: ünï\n");
  }
  auto r = ResultsReader::open(d / "r.h5");
  EXPECT_FALSE(r->complete());
  EXPECT_EQ(std::get<std::string>(*r->attr("/", "git_sha")), "abc");
  EXPECT_EQ(std::get<int64_t>(*r->attr("/", "seed")), 42);
  EXPECT_EQ(std::get<int64_t>(*r->attr("/", "schema_version")), kSchemaVersion);
  EXPECT_EQ(std::get<std::vector<std::string>>(*r->attr("/", "overrides")).size(), 2u);
  EXPECT_DOUBLE_EQ(std::get<double>(*r->attr("/summary", "final_loss")), 0.25);
  EXPECT_EQ(*r->text("/config"), "a: 1\nname: ünï\n");
}

TEST(ResultsFile, IncompleteUntilMarked) {
  testing::TempDir d;
  auto w = ResultsWriter::create(d / "r.h5");
  w->table("/t", kCols).append({int64_t{1}, 2.0, int64_t{3}});
  w->flush();
  auto r = ResultsReader::open(d / "r.h5");
  EXPECT_FALSE(r->complete());
}

TEST(ResultsFile, ReopenTruncatesAndAppends) {
  testing::TempDir d;
  {
    auto w = ResultsWriter::create(d / "r.h5");
    Table& t = w->table("/t", kCols);
    for (int i = 0; i < 10; ++i) t.append({int64_t{i}, 0.0, int64_t{0}});
    w->mark_complete();
  }
  {
    auto w = ResultsWriter::open_existing(d / "r.h5");
    Table& t = w->table("/t", kCols);
    EXPECT_EQ(t.rows(), 10);
    t.truncate(4);
    t.append({int64_t{99}, 0.0, int64_t{0}});
  }
  auto r = ResultsReader::open(d / "r.h5");
  EXPECT_FALSE(r->complete());  // reopening clears `complete` until marked again
  TableData t = r->read_table("/t");
  EXPECT_EQ(t.rows, 5);
  EXPECT_DOUBLE_EQ(t.values[0][4], 99);
}

TEST(ResultsFile, OpeningAMissingOrGarbageFileThrowsNamingIt) {
  testing::TempDir d;
  std::ofstream(d / "junk.h5") << "not hdf5";
  for (const char* name : {"none.h5", "junk.h5"}) {
    try {
      ResultsReader::open(d / name);
      ADD_FAILURE() << name << " opened";
    } catch (const H5Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

TEST(ResultsFile, ColumnsAreChunkedCompressedAndExtendibleWithChunksSizedByTheirFirstRows) {
  testing::TempDir d;
  {
    auto w = ResultsWriter::create(d / "r.h5");
    w->table("/t", kCols).append({int64_t{1}, 2.0, int64_t{3}});
    Table& big = w->table("/big", kCols);
    for (int i = 0; i < 20000; ++i) big.append({int64_t{i}, 1.0, int64_t{i}});
    w->table("/empty", kCols);
    w->mark_complete();
  }
  auto dump_of = [&](const std::string& dataset) {
    std::string cmd = "h5dump -p -H -d " + dataset + " " + (d / "r.h5").string() + " > " + (d / "dump.txt").string();
    EXPECT_EQ(std::system(cmd.c_str()), 0) << dataset;
    return d.read("dump.txt");
  };
  std::string dump = dump_of("/t/loss");
  EXPECT_NE(dump.find("CHUNKED ( 64 )"), std::string::npos) << dump;  // a one-row table deflates 512 bytes
  EXPECT_NE(dump.find("SHUFFLE"), std::string::npos);
  EXPECT_NE(dump.find("DEFLATE"), std::string::npos);
  EXPECT_NE(dump.find("H5S_UNLIMITED"), std::string::npos);
  EXPECT_NE(dump_of("/big/loss").find("CHUNKED ( 8192 )"), std::string::npos);
  EXPECT_NE(dump_of("/empty/loss").find("SIZE 0"), std::string::npos);  // a complete file has every table's columns
}

TEST(ResultsFile, PythonReaderLoadsTablesIntoPandas) {
  testing::TempDir d;
  {
    auto w = ResultsWriter::create(d / "results.h5");
    Table& t = w->table("/train/steps", kCols);
    for (int i = 0; i < 5; ++i) t.append({int64_t{i}, i * 0.5, int64_t{7}});
    w->set_attr("/summary", "final_loss", 2.0);
    w->write_text("/config", "a: 1\n");
    w->mark_complete();
  }
  std::string script = std::string(EXP_SOURCE_DIR) + "/scripts";
  std::string py = "import sys; sys.path.insert(0, '" + script + "'); from results import load; r = load('" +
                   d.path().string() +
                   "'); df = r.tables['/train/steps']; "
                   "assert r.complete; assert list(df.columns) == ['step', 'loss', 'tokens'], list(df.columns); "
                   "assert len(df) == 5 and df['loss'].iloc[4] == 2.0; assert r.summary['final_loss'] == 2.0; "
                   "assert r.config == 'a: 1\\n'; print('ok')";
  std::string cmd = "/usr/bin/python3 -c \"" + py + "\" > " + (d / "py.txt").string() + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::string out = d.read("py.txt");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "ok\n");
}

}  // namespace xp::results
