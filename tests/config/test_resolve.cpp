#include <gtest/gtest.h>
#include <stdlib.h>

#include "core/config/error.h"
#include "core/config/resolve.h"
#include "core/config/yaml_io.h"

namespace xp::config {
namespace {
ConfigNode y(const std::string& text) { return load_yaml_string(text, "t.yaml"); }
}  // namespace

TEST(Resolve, AbsoluteReferenceKeepsType) {
  ConfigNode r = resolve(y("a: {b: 3}\nc: ${a.b}\nd: ${a}\n"));
  EXPECT_EQ(r.find("c")->kind(), ConfigNode::Kind::kInt);
  EXPECT_EQ(r.find("c")->as_int(), 3);
  EXPECT_TRUE(r.find("d")->is_map());
}

TEST(Resolve, RelativeReferences) {
  ConfigNode r = resolve(y("x: 1\nm:\n  a: 2\n  b: ${.a}\n  n:\n    c: ${..a}\n"));
  EXPECT_EQ(r.at_path("m.b")->as_int(), 2);
  EXPECT_EQ(r.at_path("m.n.c")->as_int(), 2);
}

TEST(Resolve, StringInterpolationAndChains) {
  ConfigNode r = resolve(y("a: x\nb: ${a}\nc: run_${b}_${n}\nn: 4\n"));
  EXPECT_EQ(r.find("c")->as_string(), "run_x_4");
}

TEST(Resolve, EnvResolverWithDefault) {
  setenv("EXP_TEST_VAR", "hello", 1);
  ConfigNode r = resolve(y("a: ${oc.env:EXP_TEST_VAR}\nb: ${oc.env:EXP_TEST_UNSET_VAR,fallback}\n"));
  EXPECT_EQ(r.find("a")->as_string(), "hello");
  EXPECT_EQ(r.find("b")->as_string(), "fallback");
  EXPECT_THROW(resolve(y("a: ${oc.env:EXP_TEST_UNSET_VAR}\n")), ConfigError);
}

TEST(Resolve, NowFormatsTheProcessStartTime) {
  ConfigNode r = resolve(y("d: ${now:%Y-%m-%d}\ne: ${now:%Y-%m-%d}\n"));
  EXPECT_EQ(r.find("d")->as_string().size(), 10u);
  EXPECT_EQ(r.find("d")->as_string(), r.find("e")->as_string());
}

TEST(Resolve, BadTimeFormatIsAConfigError) {
  EXPECT_THROW(resolve(y("d: ${now:Y%}\n")), ConfigError);
}

TEST(Resolve, HydraResolverReadsTheHydraSubtree) {
  ConfigNode r = resolve(y("hydra: {runtime: {output_dir: /tmp/x}}\nout: ${hydra:runtime.output_dir}/f\n"));
  EXPECT_EQ(r.find("out")->as_string(), "/tmp/x/f");
}

TEST(Resolve, EscapedInterpolationIsLiteral) {
  ConfigNode r = resolve(y("a: '\\${x}'\n"));
  EXPECT_EQ(r.find("a")->as_string(), "${x}");
}

TEST(Resolve, MissingReferenceSuggestsAKey) {
  try {
    resolve(y("model: {hidden: 3}\nx: ${model.hiden}\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "x");
    EXPECT_EQ(e.loc().line, 2);
    EXPECT_NE(e.hint().find("model.hidden"), std::string::npos) << e.what();
  }
}

TEST(Resolve, CycleIsReportedWithItsChain) {
  try {
    resolve(y("a: ${b}\nb: ${c}\nc: ${a}\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(e.message().find("cycle"), std::string::npos);
    EXPECT_NE(e.message().find("a -> b -> c -> a"), std::string::npos) << e.message();
  }
}

TEST(Resolve, MandatoryValueMustBeSet) {
  try {
    resolve(y("model:\n  name: ???\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "model.name");
    EXPECT_EQ(e.loc().line, 2);
    EXPECT_NE(e.hint().find("model.name=VALUE"), std::string::npos);
  }
  // Only reading it is an error: resolve_at of another key succeeds.
  EXPECT_EQ(resolve_at(y("a: ???\nb: 1\n"), "b").as_int(), 1);
}

TEST(Resolve, UnknownResolverSuggestsAKnownOne) {
  try {
    resolve(y("a: ${oc.evn:HOME}\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(e.hint().find("oc.env"), std::string::npos);
  }
}

}  // namespace xp::config
