#include <gtest/gtest.h>

#include "core/config/compose.h"
#include "core/config/error.h"
#include "core/config/resolve.h"
#include "tests/support/temp_dir.h"

namespace xp::config {
namespace {

class Compose : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.write("configs/config.yaml",
               "defaults:\n  - scheduler: vllm\n  - optional extra: none\n  - _self_\n"
               "seed: 1\nscheduler:\n  batch_cap: 128\nname: run_${scheduler.name}\n");
    dir_.write("configs/scheduler/vllm.yaml", "name: vllm\nchunk: null\nbatch_cap: 256\n");
    dir_.write("configs/scheduler/sarathi.yaml", "name: sarathi\nchunk: 512\nbatch_cap: 256\n");
    dir_.write("configs/experiment/fig7.yaml",
               "# @package _global_\ndefaults:\n  - override /scheduler: sarathi\nseed: 7\n");
    dir_.write("configs/db/mysql.yaml", "driver: mysql\n");
    dir_.write("configs/db/postgres.yaml", "driver: pg\n");
  }

  ComposedConfig run(std::vector<std::string> overrides, const std::string& primary = "configs/config.yaml") {
    ComposeRequest req;
    req.search_path = SearchPath({dir_ / "configs"});
    req.primary = dir_ / primary;
    req.overrides = std::move(overrides);
    return compose(req);
  }

  ConfigNode resolved(std::vector<std::string> overrides) { return resolve(run(std::move(overrides)).job()); }

  testing::TempDir dir_;
};

}  // namespace

TEST_F(Compose, DefaultsListSelfLastOverridesGroup) {
  ConfigNode c = resolved({});
  EXPECT_EQ(c.at_path("scheduler.name")->as_string(), "vllm");
  EXPECT_EQ(c.at_path("scheduler.batch_cap")->as_int(), 128);  // _self_ after the group
  EXPECT_EQ(c.at_path("name")->as_string(), "run_vllm");
}

TEST_F(Compose, SelfFirstLetsGroupsWin) {
  dir_.write("configs/self_first.yaml", "defaults:\n  - _self_\n  - scheduler: vllm\nscheduler:\n  batch_cap: 1\n");
  ConfigNode c = resolve(run({}, "configs/self_first.yaml").job());
  EXPECT_EQ(c.at_path("scheduler.batch_cap")->as_int(), 256);
}

TEST_F(Compose, ImplicitSelfMergesLast) {
  dir_.write("configs/implicit.yaml", "defaults:\n  - scheduler: vllm\nscheduler:\n  batch_cap: 1\n");
  EXPECT_EQ(resolve(run({}, "configs/implicit.yaml").job()).at_path("scheduler.batch_cap")->as_int(), 1);
}

TEST_F(Compose, GroupOverrideOnCommandLine) {
  ConfigNode c = resolved({"scheduler=sarathi"});
  EXPECT_EQ(c.at_path("scheduler.chunk")->as_int(), 512);
}

TEST_F(Compose, UnknownGroupOptionSuggestsTheClosest) {
  try {
    run({"scheduler=sarthi"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(e.hint().find("did you mean 'sarathi'"), std::string::npos) << e.what();
    EXPECT_EQ(e.loc().file, "<command line>");
  }
}

TEST_F(Compose, MissingOptionInFileNamesTheDefaultsLine) {
  dir_.write("configs/broken.yaml", "defaults:\n  - scheduler: orka\n");
  try {
    run({}, "configs/broken.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(e.loc().file.find("broken.yaml"), std::string::npos);
    EXPECT_EQ(e.loc().line, 2);
  }
}

TEST_F(Compose, OptionalEntryMayBeMissing) {
  EXPECT_EQ(run({}).job().find("extra"), nullptr);
}

TEST_F(Compose, ExperimentPatternGlobalPackageAndOverride) {
  ConfigNode c = resolved({"+experiment=fig7"});
  EXPECT_EQ(c.at_path("scheduler.name")->as_string(), "sarathi");
  EXPECT_EQ(c.at_path("seed")->as_int(), 7);
  EXPECT_EQ(c.find("experiment"), nullptr);  // _global_ merged at the root
}

TEST_F(Compose, CommandLineBeatsAnOverrideInAFile) {
  ConfigNode c = resolved({"+experiment=fig7", "scheduler=vllm"});
  EXPECT_EQ(c.at_path("scheduler.name")->as_string(), "vllm");
}

TEST_F(Compose, AppendGroupWithPackage) {
  ConfigNode c = resolved({"+db@backup=postgres"});
  EXPECT_EQ(c.at_path("backup.driver")->as_string(), "pg");
}

TEST_F(Compose, OverridingAGroupNotInTheDefaultsListExplainsPlus) {
  try {
    run({"db=mysql"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(e.hint().find("+db=mysql"), std::string::npos);
  }
}

TEST_F(Compose, DeleteGroupFromDefaults) {
  EXPECT_EQ(run({"~scheduler"}).job().at_path("scheduler.name"), nullptr);
}

TEST_F(Compose, AListOfGroupOptionsMergesThemInOrder) {
  dir_.write("configs/db/extras.yaml", "pool: 8\ndriver: mysql-extras\n");
  ConfigNode c = resolved({"+db=[mysql,extras]"});
  EXPECT_EQ(c.at_path("db.driver")->as_string(), "mysql-extras");  // the later option wins
  EXPECT_EQ(c.at_path("db.pool")->as_int(), 8);
  dir_.write("configs/listed.yaml", "defaults:\n  - db: [extras, postgres]\n");
  ConfigNode listed = resolve(run({}, "configs/listed.yaml").job());
  EXPECT_EQ(listed.at_path("db.driver")->as_string(), "pg");
  EXPECT_EQ(listed.at_path("db.pool")->as_int(), 8);
}

// Options sharing keys through a base config included `@_here_` get them wherever the option
// itself lands, under its own package or another.
TEST_F(Compose, AConfigIncludedHereMergesIntoTheIncludingConfigsPackage) {
  dir_.write("configs/scheduler/base/common.yaml", "block_size: 16\nbatch_cap: 64\n");
  dir_.write("configs/scheduler/orca.yaml", "defaults:\n  - base/common@_here_\n  - _self_\nname: orca\nbatch_cap: 32\n");
  ConfigNode c = resolved({"scheduler=orca", "+scheduler@other.orca=orca"});
  for (const char* at : {"scheduler", "other.orca"}) {
    EXPECT_EQ(c.at_path(std::string(at) + ".name")->as_string(), "orca") << at;
    EXPECT_EQ(c.at_path(std::string(at) + ".block_size")->as_int(), 16) << at;
  }
  EXPECT_EQ(c.at_path("other.orca.batch_cap")->as_int(), 32);  // its own keys come after the base's
  EXPECT_EQ(c.at_path("scheduler.base"), nullptr);
}

TEST_F(Compose, DeletingAGroupKeepsTheSameGroupUnderAnotherPackage) {
  ConfigNode c = resolved({"+db@backup=postgres", "+db=mysql", "~db"});
  EXPECT_EQ(c.at_path("db"), nullptr);
  ASSERT_NE(c.at_path("backup.driver"), nullptr);
  EXPECT_EQ(c.at_path("backup.driver")->as_string(), "pg");
  EXPECT_EQ(resolved({"+db@backup=postgres", "~db@backup"}).at_path("backup"), nullptr);
}

TEST_F(Compose, SearchPathEntriesAddConfigFolders) {
  dir_.write("more/db/oracle.yaml", "driver: oracle\n");
  ConfigNode c = resolved({"+db=oracle", "hydra.searchpath=[file://" + (dir_ / "more").string() + "]"});
  EXPECT_EQ(c.at_path("db.driver")->as_string(), "oracle");
  EXPECT_THROW(run({"+db=oracle", "hydra.searchpath=[pkg://somewhere.conf]"}), ConfigError);
}

TEST_F(Compose, ValueOverrideForms) {
  ConfigNode c = resolved({"seed=5", "+new.key=[1,2]", "++scheduler.batch_cap=64", "++other=x", "~name"});
  EXPECT_EQ(c.at_path("seed")->as_int(), 5);
  EXPECT_EQ(c.at_path("new.key")->size(), 2u);
  EXPECT_EQ(c.at_path("scheduler.batch_cap")->as_int(), 64);
  EXPECT_EQ(c.at_path("other")->as_string(), "x");
  EXPECT_EQ(c.find("name"), nullptr);
}

TEST_F(Compose, DictOverrideMergesAndListOverrideAssigns) {
  ConfigNode c = resolved({"scheduler={chunk: 99}"});
  EXPECT_EQ(c.at_path("scheduler.chunk")->as_int(), 99);
  EXPECT_EQ(c.at_path("scheduler.name")->as_string(), "vllm");
}

TEST_F(Compose, UnknownKeySuggestsAndExplainsPlus) {
  try {
    run({"sed=3"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "sed");
    EXPECT_NE(e.hint().find("did you mean 'seed'"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("+sed=3"), std::string::npos);
  }
}

TEST_F(Compose, AddingAnExistingKeyIsAnError) { EXPECT_THROW(run({"+seed=2"}), ConfigError); }

TEST_F(Compose, ConditionalDeleteChecksTheValue) {
  EXPECT_THROW(run({"~seed=2"}), ConfigError);
  EXPECT_EQ(run({"~seed=1"}).job().find("seed"), nullptr);
}

TEST_F(Compose, SweepInSingleRunIsRefused) {
  try {
    run({"seed=1,2"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(e.hint().find("-m"), std::string::npos);
  }
}

// Hydra leaves its own overrides out of override_dirname: with them in, the Hydra idiom
// `hydra.sweep.subdir=${hydra.job.override_dirname}` referred to itself.
TEST_F(Compose, OverrideDirnameLeavesOutTheFrameworksOwnOverrides) {
  ConfigNode h = *resolve(run({"seed=3", "hydra.sweep.subdir=${hydra.job.override_dirname}", "hydra.job.name=x"}).root)
                      .at_path("hydra");
  EXPECT_EQ(h.at_path("job.override_dirname")->as_string(), "seed=3");
  EXPECT_EQ(h.at_path("sweep.subdir")->as_string(), "seed=3");
  EXPECT_EQ(h.at_path("overrides.task")->size(), 1u);
}

TEST_F(Compose, HydraSubtreeHasRunDirsChoicesAndJobName) {
  ComposedConfig c = run({"scheduler=sarathi", "seed=3"});
  ConfigNode h = resolve(c.root).at_path("hydra") ? *resolve(c.root).at_path("hydra") : ConfigNode();
  EXPECT_EQ(h.at_path("job.name")->as_string(), "config");
  EXPECT_EQ(h.at_path("runtime.choices.scheduler")->as_string(), "sarathi");
  EXPECT_EQ(h.at_path("job.override_dirname")->as_string(), "scheduler=sarathi,seed=3");
  EXPECT_TRUE(h.at_path("run.dir")->as_string().starts_with("results/outputs/"));
  EXPECT_EQ(c.job().find("hydra"), nullptr);
}

TEST_F(Compose, DefaultsTreeRecordsPackagesAndParents) {
  ComposedConfig c = run({"+experiment=fig7"});
  bool found = false;
  for (const auto& e : c.defaults)
    if (e.config_path == "scheduler/sarathi") {
      found = true;
      EXPECT_EQ(e.package, "scheduler");
      EXPECT_EQ(e.parent, "config");
    }
  EXPECT_TRUE(found);
}

TEST_F(Compose, InterpolatedOptionInDefaultsList) {
  dir_.write("configs/combo/vllm_mysql.yaml", "ok: true\n");
  dir_.write("configs/interp.yaml", "defaults:\n  - scheduler: vllm\n  - db: mysql\n  - combo: ${scheduler}_${db}\n");
  EXPECT_TRUE(resolve(run({}, "configs/interp.yaml").job()).at_path("combo.ok")->as_bool());
}

TEST_F(Compose, MalformedYamlNamesFileAndLine) {
  dir_.write("configs/scheduler/bad.yaml", "name: x\n  indented: wrong\n");
  try {
    run({"scheduler=bad"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(e.loc().file.find("scheduler/bad.yaml"), std::string::npos);
    EXPECT_EQ(e.loc().line, 2);
  }
}

TEST(SearchPath, ListsGroupsAndOptionsAcrossDirectories) {
  testing::TempDir a, b;
  a.write("g/x.yaml", "");
  b.write("g/y.yaml", "");
  b.write("h/sub/z.yaml", "");
  SearchPath sp({a.path(), b.path()});
  EXPECT_EQ(sp.options("g"), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(sp.is_group("h/sub"));
  EXPECT_EQ(sp.groups(), (std::vector<std::string>{"g", "h", "h/sub"}));
}

}  // namespace xp::config
