// Every config error a person can meet, one row each: what triggers it, the message it must
// carry, the key it must name, and that it gives a hint. (CLI-level errors: tests/cli.)
#include <gtest/gtest.h>

#include "core/config/compose.h"
#include "core/config/error.h"
#include "core/config/override.h"
#include "core/config/reader.h"
#include "core/config/resolve.h"
#include "core/config/sweep.h"
#include "core/config/yaml_io.h"
#include "tests/support/temp_dir.h"

namespace xp::config {
namespace {

struct ErrorCase {
  std::string name;
  std::string primary;                  // text of configs/main.yaml
  std::vector<std::string> overrides;
  std::string message;                  // substring of the message
  std::string key;                      // expected key ("" = don't check)
  int line = 0;                         // expected line in the file (0 = don't check)
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

std::vector<ErrorCase> cases() {
  return {
      {"FileHoldsAList", "- a\n- b\n", {}, "must hold a map", "", 1},
      {"DefaultsNotAList", "defaults: x\n", {}, "'defaults' must be a list", "defaults", 1},
      {"DefaultsEntryTwoKeys", "defaults:\n  - {g: x, h: y}\n", {}, "one-key map", "defaults", 2},
      {"DefaultsUnknownKeyword", "defaults:\n  - optinal g: x\n", {}, "unknown keyword 'optinal'", "defaults", 2},
      {"DefaultsOptionIsAMap", "defaults:\n  - g: {x: 1}\n", {}, "a name or a list of names", "defaults", 2},
      {"DefaultsSelfInclusion", "defaults:\n  - loop/self\n", {}, "nest too deeply", "defaults"},
      {"DefaultsMissingGroup", "defaults:\n  - nogroup: x\n", {}, "no config group 'nogroup'", "nogroup", 2},
      {"DefaultsMissingOption", "defaults:\n  - g: z\n", {}, "no option 'z' in config group 'g'", "g", 2},
      {"DefaultsInterpolationBeforeChoice", "defaults:\n  - g: ${h}\n", {}, "has no choice yet", "defaults", 2},
      {"OverrideGroupNotInDefaults", "a: 1\n", {"g=x"}, "no defaults list selects", "g"},
      {"OverrideUnknownOption", "defaults:\n  - g: x\n", {"g=y"}, "no option 'y'", "g"},
      {"OverrideUnknownKey", "a: 1\n", {"b=2"}, "no such key", "b"},
      {"OverrideAddExisting", "a: 1\n", {"+a=2"}, "already exists", "a"},
      {"OverrideDeleteMissing", "a: 1\n", {"~b"}, "no such key", "b"},
      {"OverrideDeleteWrongValue", "a: 1\n", {"~a=2"}, "its value is '1', not '2'", "a"},
      {"OverrideSweepInSingleRun", "a: 1\n", {"a=1,2"}, "is a sweep", "a"},
      {"OverrideBadSyntax", "a: 1\n", {"a=[1,"}, "cannot parse override", ""},
      {"OverrideMissingValue", "a: 1\n", {"a"}, "missing '=VALUE'", ""},
      {"OverrideBadKeyChar", "a: 1\n", {"a!=1"}, "unexpected character '!'", ""},
      {"OverrideRangeStepZero", "a: 1\n", {"a=range(0,5,0)"}, "step must not be 0", ""},
      {"OverrideRangeTooManyArgs", "a: 1\n", {"a=range(1,2,3,4)"}, "1 to 3 arguments", ""},
      {"OverrideRangeEmpty", "a: 1\n", {"a=range(5,1)"}, "produced no values", ""},
      {"OverrideChoiceEmpty", "a: 1\n", {"a=choice()"}, "at least one value", ""},
      {"OverrideUnterminatedInterpolation", "a: 1\n", {"a=${b"}, "unterminated interpolation", ""},
      {"OverrideBadDict", "a: 1\n", {"a={x 1}"}, "key: value", ""},
      {"OverrideInvalidUtf8", "a: 1\n", {"a=\xff"}, "invalid UTF-8", ""},
      {"YamlSyntax", "a: [1\n", {}, "YAML syntax error", "", 0},
      {"YamlDuplicateKey", "a: 1\na: 2\n", {}, "duplicate key 'a'", "a", 2},
      {"YamlComplexKey", "? [a, b]\n: 1\n", {}, "map keys must be scalars", "", 1},
      {"YamlControlCharacter", "a: \x01\n", {}, "control character", "", 1},
      {"ResolveMissingValue", "a: ???\n", {}, "missing mandatory value", "a", 1},
      {"ResolveMissingReference", "a: ${b}\n", {}, "does not exist", "a", 1},
      {"ResolveCycle", "a: ${b}\nb: ${a}\n", {}, "interpolation cycle", "", 0},
      {"ResolveMapInString", "m: {x: 1}\ns: v_${m}\n", {}, "cannot be placed inside a string", "s", 2},
      {"ResolveUnknownResolver", "a: ${nope:1}\n", {}, "unknown resolver 'nope'", "a", 1},
      {"ResolveUnsetEnv", "a: ${oc.env:EXP_SURELY_UNSET_VAR}\n", {}, "is not set", "a", 1},
      {"ResolveBadTimeFormat", "a: ${now:%Q%}\n", {}, "bad time format", "a", 1},
      {"ResolveUnterminated", "a: x${b\n", {}, "unterminated interpolation", "a", 1},
  };
}

class ConfigErrors : public ::testing::TestWithParam<ErrorCase> {};

}  // namespace

TEST_P(ConfigErrors, CarryMessageKeyLocationAndHint) {
  const ErrorCase& c = GetParam();
  testing::TempDir d;
  d.write("configs/main.yaml", c.primary);
  d.write("configs/g/x.yaml", "v: 1\n");
  d.write("configs/loop/self.yaml", "defaults:\n  - /loop/self\n");
  ComposeRequest req;
  req.search_path = SearchPath({d / "configs"});
  req.primary = d / "configs/main.yaml";
  req.overrides = c.overrides;
  try {
    resolve(compose(req).root);
    FAIL() << "no error for " << c.name;
  } catch (const ConfigError& e) {
    EXPECT_NE(e.message().find(c.message), std::string::npos) << e.what();
    if (!c.key.empty()) {
      EXPECT_EQ(e.key(), c.key) << e.what();
    }
    if (c.line) {
      EXPECT_EQ(e.loc().line, c.line) << e.what();
    }
    EXPECT_FALSE(e.loc().file.empty()) << "no file or <command line> in: " << e.what();
    EXPECT_FALSE(e.hint().empty()) << "no hint in: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(All, ConfigErrors, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& p) { return p.param.name; });

TEST(ConfigErrorsSweep, GlobOverANonGroup) {
  try {
    expand_sweep({"a=glob(*)"}, SearchPath());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(e.message().find("needs a config group"), std::string::npos);
    EXPECT_FALSE(e.hint().empty());
  }
}

TEST(ConfigErrorsReader, NotAMapListElementsAndRanges) {
  EXPECT_THROW(ConfigReader(ConfigNode::integer(3), "x"), ConfigError);
  ConfigNode n = load_yaml_string("l: [1, a]\ns: 5\nbig: 5000000000\nneg: -1\nm: {a: 1}\n", "r.yaml");
  ConfigReader r(n, "sec");
  std::vector<double> l;
  EXPECT_THROW(r.get("l", l, Range::any()), ConfigError);
  std::vector<int64_t> not_list;
  EXPECT_THROW(r.get("s", not_list, Range::any()), ConfigError);
  int small = 0;
  EXPECT_THROW(r.get("big", small, Range::any()), ConfigError);
  uint64_t unsigned_value = 0;
  EXPECT_THROW(r.get("neg", unsigned_value, Range::any()), ConfigError);
  std::string str;
  EXPECT_THROW(r.get("m", str), ConfigError);
}

TEST(ConfigErrorsOverride, DoubleOverrideLastInDepthFirstOrderWins) {
  testing::TempDir d;
  d.write("configs/main.yaml", "defaults:\n  - g: x\n  - e/a\n  - e/b\n");
  d.write("configs/g/x.yaml", "v: 1\n");
  d.write("configs/g/y.yaml", "v: 2\n");
  d.write("configs/g/z.yaml", "v: 3\n");
  d.write("configs/e/a.yaml", "# @package _global_\ndefaults:\n  - override /g: y\n");
  d.write("configs/e/b.yaml", "# @package _global_\ndefaults:\n  - override /g: z\n");
  ComposeRequest req;
  req.search_path = SearchPath({d / "configs"});
  req.primary = d / "configs/main.yaml";
  EXPECT_EQ(resolve(compose(req).job()).at_path("g.v")->as_int(), 3);
}

}  // namespace xp::config
