#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/config/error.h"
#include "core/config/yaml_io.h"

namespace xp::config {

TEST(InferScalar, TypesPlainScalarsLikeOmegaConf) {
  EXPECT_TRUE(infer_scalar("null").is_null());
  EXPECT_TRUE(infer_scalar("~").is_null());
  EXPECT_EQ(infer_scalar("TRUE").kind(), ConfigNode::Kind::kBool);
  EXPECT_EQ(infer_scalar("1_000").as_int(), 1000);
  EXPECT_EQ(infer_scalar("-7").as_int(), -7);
  EXPECT_DOUBLE_EQ(infer_scalar("1e-3").as_double(), 1e-3);
  EXPECT_DOUBLE_EQ(infer_scalar(".5").as_double(), 0.5);
  EXPECT_TRUE(std::isinf(infer_scalar("inf").as_double()));
  EXPECT_TRUE(std::isnan(infer_scalar("nan").as_double()));
  EXPECT_EQ(infer_scalar("yes").kind(), ConfigNode::Kind::kString);  // only true/false are bools
  EXPECT_EQ(infer_scalar("1.2.3").kind(), ConfigNode::Kind::kString);
  EXPECT_EQ(infer_scalar("e5").kind(), ConfigNode::Kind::kString);
}

TEST(LoadYaml, QuotedScalarsStayStrings) {
  ConfigNode n = load_yaml_string("a: '1'\nb: 1\nc: \"true\"\n", "t.yaml");
  EXPECT_EQ(n.find("a")->kind(), ConfigNode::Kind::kString);
  EXPECT_EQ(n.find("b")->kind(), ConfigNode::Kind::kInt);
  EXPECT_EQ(n.find("c")->kind(), ConfigNode::Kind::kString);
}

TEST(LoadYaml, NodesRememberFileLineAndColumn) {
  ConfigNode n = load_yaml_string("a:\n  b: 3\n", "t.yaml");
  const SourceLoc& loc = n.at_path("a.b")->loc();
  EXPECT_EQ(loc.file, "t.yaml");
  EXPECT_EQ(loc.line, 2);
  EXPECT_EQ(loc.column, 6);
}

TEST(LoadYaml, SyntaxErrorNamesFileAndLine) {
  try {
    load_yaml_string("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.loc().file, "bad.yaml");
    EXPECT_GE(e.loc().line, 2);
    EXPECT_NE(std::string(e.what()).find("YAML syntax error"), std::string::npos);
  }
}

TEST(LoadYaml, InvalidUtf8IsRejectedWithItsPosition) {
  try {
    load_yaml_string("a: 1\nb: x\xffy\n", "bin.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.loc().line, 2);
    EXPECT_EQ(e.loc().column, 5);
  }
  EXPECT_NO_THROW(load_yaml_string("name: \xc3\xbcn\xc3\xaf\n", "utf8.yaml"));
}

TEST(LoadYaml, OverlongSurrogateAndOutOfRangeUtf8AreRejected) {
  // Each is well-formed by its bit pattern alone but is no Unicode scalar value: a dump would
  // write U+FFFD in its place (found by the config fuzzer).
  for (const char* bad : {"k: \xf6\x9b\x9a\x80\n",  // above U+10FFFF
                          "k: \xf4\x90\x80\x80\n",  // U+110000
                          "k: \xed\xa0\x80\n",       // a UTF-16 surrogate
                          "k: \xe0\x80\xaf\n",       // overlong '/'
                          "k: \xf0\x80\x80\xaf\n"}) {  // overlong '/'
    try {
      load_yaml_string(bad, "odd.yaml");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.loc().line, 1);
      EXPECT_EQ(e.loc().column, 4);
    }
  }
  EXPECT_NO_THROW(load_yaml_string("k: \xf4\x8f\xbf\xbd \xef\xbf\xbd \xe2\x82\xac\n", "edge.yaml"));
}

TEST(LoadYaml, UnicodeNoncharactersAreRejectedWrittenOrEscaped) {
  // yaml-cpp writes U+FFFD for them in quoted scalars, so a dump would not read back (found by
  // the config fuzzer).
  for (const char* bad : {"k: ' \xef\xbf\xbe'\n",   // U+FFFE
                          "k: ' \xef\xb7\x90'\n",   // U+FDD0
                          "k: ' \xf4\x8f\xbf\xbf'\n",  // U+10FFFF
                          "k: \" \\uFFFF\"\n"}) {
    try {
      load_yaml_string(bad, "nonchar.yaml");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.loc().line, 1);
      EXPECT_THAT(e.what(), testing::HasSubstr("noncharacter"));
    }
  }
}

TEST(LoadYaml, NbspAndNextLineEscapesDecodeToUtf8AndDumpBack) {
  // yaml-cpp decodes \_ and \N to the Latin-1 bytes 0xA0 and 0x85; a dump then wrote U+FFFD
  // (found by the config fuzzer).
  ConfigNode n = load_yaml_string("\"k\\_\": \"a\\_b\\Nc\"\n", "esc.yaml");
  const ConfigNode* v = n.find("k\xc2\xa0");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->as_string(), "a\xc2\xa0" "b\xc2\x85" "c");
  EXPECT_EQ(load_yaml_string(dump_yaml(n), "dump"), n);
}

TEST(LoadYaml, DuplicateKeyIsAnError) {
  EXPECT_THROW(load_yaml_string("a: 1\na: 2\n", "dup.yaml"), ConfigError);
}

TEST(LoadYaml, MissingFileIsAConfigError) {
  try {
    load_yaml_file("/nonexistent/x.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.loc().file, "/nonexistent/x.yaml");
  }
}

TEST(DumpYaml, RoundTripsEveryKind) {
  const std::string text =
      "s: hello\nq: '123'\nt: 'true'\ne: ''\ni: 42\nf: 0.25\nw: 2.0\nb: false\nn: ~\n"
      "l: [1, two, 3.5]\nm:\n  x: ${a.b}\n  y: ???\nempty_list: []\nempty_map: {}\n";
  ConfigNode a = load_yaml_string(text, "a");
  ConfigNode b = load_yaml_string(dump_yaml(a), "b");
  EXPECT_EQ(a, b) << dump_yaml(a);
  EXPECT_EQ(b.find("w")->kind(), ConfigNode::Kind::kFloat);
}

TEST(DumpYaml, EscapedControlCharactersReadBack) {
  // Escapes put a NUL and a vertical tab into a key and a value with spaces at their ends; single-
  // quoted, they were written raw (and the dump cut at the NUL: found by the config fuzzer).
  ConfigNode n = load_yaml_string("\" k\\v\": \"a \\0b \"\n", "ctl.yaml");
  const ConfigNode* v = n.find(" k\v");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->as_string(), std::string("a \0b ", 5));
  EXPECT_EQ(load_yaml_string(dump_yaml(n), "dump"), n);
}

TEST(DumpYaml, ScalarsThatLookLikeDocumentMarkersAreQuoted) {
  // Found by the config fuzzer: a key "--- x" was dumped plain and read back as a new document.
  ConfigNode a = ConfigNode::map();
  a.ensure_path("k") = ConfigNode::string("...");
  ConfigNode b = load_yaml_string("'--- ${.m:}-vm': ~\nv: '... end'\nw: '---'\nplain: ---x\n", "b");
  for (const ConfigNode& n : {a, b}) EXPECT_EQ(load_yaml_string(dump_yaml(n), "again"), n) << dump_yaml(n);
}

TEST(YamlIo, StringsThatYaml11ReadersTypeAreQuotedOnOutput) {
  // PyYAML (and so OmegaConf and h5py users' scripts) reads these plain scalars as numbers,
  // dates or booleans; written as strings they must stay strings for every reader.
  for (const char* s : {"0x10", "0o17", "017", "0b101", "1:30", "2024-01-01", "yes", "off", "Y", ".5", "1e3", "="}) {
    ConfigNode n = ConfigNode::map();
    n.set("v", ConfigNode::string(s));
    const std::string text = dump_yaml(n);
    EXPECT_NE(text.find(std::string("'") + s + "'"), std::string::npos) << text;
    EXPECT_EQ(load_yaml_string(text, "dump"), n);
  }
  ConfigNode plain = ConfigNode::map();
  plain.set("v", ConfigNode::string("sarathi"));
  EXPECT_EQ(dump_yaml(plain), "v: sarathi\n");
}

}  // namespace xp::config
