#include <gtest/gtest.h>

#include "core/config/error.h"
#include "core/config/reader.h"
#include "core/config/yaml_io.h"

namespace xp::config {

TEST(ConfigReader, ReadsTypedValuesAndKeepsDefaults) {
  ConfigNode n = load_yaml_string("steps: 10\nlr: 1\nname: x\nflag: true\nsizes: [1, 2]\n", "c.yaml");
  ConfigReader r(n, "train");
  int64_t steps = 0, missing = 42;
  double lr = 0;
  std::string name;
  bool flag = false;
  std::vector<int64_t> sizes;
  r.get("steps", steps, Range::at_least(1));
  r.get("lr", lr, Range::positive());  // ints widen to float
  r.get("name", name);
  r.get("flag", flag);
  r.get("sizes", sizes, Range::at_least(1));
  r.get("absent", missing, Range::any());
  r.finish();
  EXPECT_EQ(steps, 10);
  EXPECT_DOUBLE_EQ(lr, 1.0);
  EXPECT_EQ(name, "x");
  EXPECT_TRUE(flag);
  EXPECT_EQ(sizes.size(), 2u);
  EXPECT_EQ(missing, 42);
}

TEST(ConfigReader, UnknownKeyIsRejectedWithSuggestion) {
  ConfigNode n = load_yaml_string("steps: 10\nlearning_rat: 0.1\n", "c.yaml");
  ConfigReader r(n, "train");
  int64_t steps;
  double lr;
  r.get("steps", steps, Range::any());
  r.get("learning_rate", lr, Range::any());
  try {
    r.finish();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "train.learning_rat");
    EXPECT_EQ(e.loc().line, 2);
    EXPECT_NE(e.hint().find("learning_rate"), std::string::npos);
  }
}

TEST(ConfigReader, TypeMismatchNamesKeyAndLocation) {
  ConfigNode n = load_yaml_string("steps: many\n", "c.yaml");
  ConfigReader r(n, "train");
  int64_t steps;
  try {
    r.get("steps", steps, Range::any());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "train.steps");
    EXPECT_EQ(e.loc().file, "c.yaml");
    EXPECT_NE(e.message().find("expected int, got string 'many'"), std::string::npos);
  }
}

TEST(ConfigReader, NumberOutsideItsRangeIsRejectedNamingKeyLineAndRange) {
  ConfigNode n = load_yaml_string("lr: 0.1\nevery: -1\n", "c.yaml");
  ConfigReader r(n, "train");
  double lr = 0;
  r.get("lr", lr, Range::positive());
  int64_t every = 0;
  try {
    r.get("every", every, Range::non_negative());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "train.every");
    EXPECT_EQ(e.loc().line, 2);
    EXPECT_NE(e.message().find("must be ≥ 0"), std::string::npos) << e.message();
  }
}

TEST(ConfigReader, NanAndInfinityAreNeverAccepted) {
  for (const char* text : {"x: .nan\n", "x: .inf\n", "x: -.inf\n"}) {
    ConfigNode n = load_yaml_string(text, "c.yaml");
    ConfigReader r(n, "train");
    double x = 0;
    EXPECT_THROW(r.get("x", x, Range::any()), ConfigError) << text;
  }
}

TEST(ConfigReader, ListElementsAreCheckedAgainstTheRange) {
  ConfigNode n = load_yaml_string("sizes: [4, 0]\n", "c.yaml");
  ConfigReader r(n, "net");
  std::vector<int64_t> sizes;
  EXPECT_THROW(r.get("sizes", sizes, Range::at_least(1)), ConfigError);
}

TEST(ConfigReader, EnumMustBeAllowed) {
  ConfigNode n = load_yaml_string("kind: adamw\n", "c.yaml");
  ConfigReader r(n, "opt");
  std::string kind;
  EXPECT_THROW(r.get_enum("kind", kind, {"sgd", "adam"}), ConfigError);
}

TEST(ConfigReader, SectionsNestPaths) {
  ConfigNode n = load_yaml_string("inner: {x: 1, y: 2}\n", "c.yaml");
  ConfigReader r(n, "outer");
  ConfigReader s = r.section("inner");
  int64_t x;
  s.get("x", x, Range::any());
  try {
    s.finish();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "outer.inner.y");
  }
}

}  // namespace xp::config
