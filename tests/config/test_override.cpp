#include <gtest/gtest.h>

#include <algorithm>

#include "core/config/error.h"
#include "core/config/override.h"

namespace xp::config {

TEST(ParseOverride, SetAddForceAddAndDelete) {
  EXPECT_EQ(parse_override("a.b=1").op, Override::Op::kSet);
  EXPECT_EQ(parse_override("+a.b=1").op, Override::Op::kAdd);
  EXPECT_EQ(parse_override("++a.b=1").op, Override::Op::kForceAdd);
  Override d = parse_override("~a.b");
  EXPECT_EQ(d.op, Override::Op::kDelete);
  EXPECT_FALSE(d.value.has_value());
  Override dv = parse_override("~a.b=3");
  EXPECT_EQ(dv.value->as_int(), 3);
  EXPECT_EQ(parse_override("++a.b=1").key, "a.b");
}

TEST(ParseOverride, GroupWithPackage) {
  Override o = parse_override("db@backup=mysql");
  EXPECT_EQ(o.key, "db");
  EXPECT_EQ(o.package, "backup");
  EXPECT_EQ(o.value->as_string(), "mysql");
  EXPECT_EQ(parse_override("hydra/launcher=slurm").key, "hydra/launcher");
}

TEST(ParseOverride, TypedScalars) {
  EXPECT_TRUE(parse_override("a=null").value->is_null());
  EXPECT_EQ(parse_override("a=1_000").value->as_int(), 1000);
  EXPECT_DOUBLE_EQ(parse_override("a=1e-3").value->as_double(), 1e-3);
  EXPECT_EQ(parse_override("a=True").value->kind(), ConfigNode::Kind::kBool);
  EXPECT_EQ(parse_override("a='1'").value->kind(), ConfigNode::Kind::kString);
  EXPECT_EQ(parse_override("a=\"a b\"").value->as_string(), "a b");
  EXPECT_EQ(parse_override("a=  padded  ").value->as_string(), "padded");
  EXPECT_EQ(parse_override("a=").value->as_string(), "");
}

TEST(ParseOverride, ListsAndDicts) {
  ConfigNode l = *parse_override("a=[1,x,[2,3]]").value;
  ASSERT_TRUE(l.is_list());
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l.elements()[1].as_string(), "x");
  EXPECT_EQ(l.elements()[2].size(), 2u);
  ConfigNode d = *parse_override("a={k: 1, s: [a, b], n: {z: null}}").value;
  ASSERT_TRUE(d.is_map());
  EXPECT_EQ(d.at_path("k")->as_int(), 1);
  EXPECT_EQ(d.at_path("s.1")->as_string(), "b");
  EXPECT_TRUE(d.at_path("n.z")->is_null());
}

TEST(ParseOverride, EscapesAndInterpolationsStayInOneValue) {
  EXPECT_EQ(parse_override("a=x\\,y").value->as_string(), "x,y");
  Override o = parse_override("a=${oc.env:HOME,/tmp}");
  ASSERT_TRUE(o.value.has_value());
  EXPECT_EQ(o.value->as_string(), "${oc.env:HOME,/tmp}");
}

TEST(ParseOverride, CommaListIsASweep) {
  Override o = parse_override("a=1,2,'x,y'");
  EXPECT_TRUE(o.is_sweep());
  EXPECT_EQ(o.sweep, (std::vector<std::string>{"1", "2", "'x,y'"}));
}

TEST(ParseOverride, RangeOnIntsAndFloats) {
  EXPECT_EQ(parse_override("a=range(3)").sweep, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(parse_override("a=range(1,10,4)").sweep, (std::vector<std::string>{"1", "5", "9"}));
  EXPECT_EQ(parse_override("a=range(0,10,3.3)").sweep,
            (std::vector<std::string>{"0.0", "3.3", "6.6", "9.9"}));
  EXPECT_EQ(parse_override("a=range(5,0,-2)").sweep, (std::vector<std::string>{"5", "3", "1"}));
}

TEST(ParseOverride, ChoiceAndGlob) {
  EXPECT_EQ(parse_override("a=choice(x, 'y z')").sweep, (std::vector<std::string>{"x", "'y z'"}));
  Override g = parse_override("db=glob(*,exclude=[sq*,pg])");
  EXPECT_TRUE(g.is_glob);
  EXPECT_EQ(g.glob_include, (std::vector<std::string>{"*"}));
  EXPECT_EQ(g.glob_exclude, (std::vector<std::string>{"sq*", "pg"}));
}

TEST(ParseOverride, ErrorsPointAtTheColumn) {
  try {
    parse_override("a=[1,2");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.loc().file, "<command line>");
    EXPECT_GT(e.loc().column, 2);
  }
  EXPECT_THROW(parse_override("a.b"), ConfigError);       // missing =value
  EXPECT_THROW(parse_override("=3"), ConfigError);        // missing key
  EXPECT_THROW(parse_override("a b=3"), ConfigError);     // space in key
  EXPECT_THROW(parse_override("a='x"), ConfigError);      // unterminated quote
  EXPECT_THROW(parse_override("a=range(0,x)"), ConfigError);
}

TEST(ParseOverride, AnEmptyValueIsTheEmptyStringAndLeadingZerosKeepAString) {
  ASSERT_TRUE(parse_override("+f=").value.has_value());
  EXPECT_EQ(*parse_override("+f=").value, ConfigNode::string(""));
  EXPECT_EQ(*parse_override("seed=010").value, ConfigNode::string("010"));
  EXPECT_EQ(*parse_override("seed=10").value, ConfigNode::integer(10));
  EXPECT_EQ(*parse_override("x=0").value, ConfigNode::integer(0));
  EXPECT_EQ(*parse_override("x=-07").value, ConfigNode::string("-07"));
  EXPECT_EQ(*parse_override("x=0.5").value, ConfigNode::real(0.5));
}

TEST(ParseOverride, CastFunctionsConvertValuesListsAndSweeps) {
  EXPECT_EQ(*parse_override("x=str(10)").value, ConfigNode::string("10"));
  EXPECT_EQ(*parse_override("x=int('3')").value, ConfigNode::integer(3));
  EXPECT_EQ(*parse_override("x=int(3.9)").value, ConfigNode::integer(3));  // truncates, as Python
  EXPECT_EQ(*parse_override("x=float(2)").value, ConfigNode::real(2.0));
  EXPECT_EQ(*parse_override("x=bool(0)").value, ConfigNode::boolean(false));
  EXPECT_EQ(*parse_override("x=bool('true')").value, ConfigNode::boolean(true));
  ConfigNode list = *parse_override("x=str([1,2])").value;
  ASSERT_TRUE(list.is_list());
  EXPECT_EQ(list.elements()[1], ConfigNode::string("2"));
  EXPECT_EQ(parse_override("x=str(1,2)").sweep, (std::vector<std::string>{"'1'", "'2'"}));
  EXPECT_EQ(parse_override("x=int(range(1,3))").sweep, (std::vector<std::string>{"1", "2"}));
  EXPECT_THROW(parse_override("x=int(abc)"), ConfigError);
}

TEST(ParseOverride, SortShuffleAndTagReorderOrLabelSweeps) {
  EXPECT_EQ(parse_override("x=sort(3,1,2)").sweep, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(parse_override("x=sort(3,1,2,reverse=true)").sweep, (std::vector<std::string>{"3", "2", "1"}));
  EXPECT_EQ(parse_override("x=sort(choice(b,a,c))").sweep, (std::vector<std::string>{"'a'", "'b'", "'c'"}));
  ConfigNode sorted = *parse_override("x=sort([3,1,2])").value;  // a list stays a value
  ASSERT_TRUE(sorted.is_list());
  EXPECT_EQ(sorted.elements()[0], ConfigNode::integer(1));
  std::vector<std::string> shuffled = parse_override("x=shuffle(1,2,3,4,5,6,7,8)").sweep;
  std::sort(shuffled.begin(), shuffled.end());
  EXPECT_EQ(shuffled, (std::vector<std::string>{"1", "2", "3", "4", "5", "6", "7", "8"}));
  EXPECT_EQ(parse_override("x=tag(log,choice(1,2))").sweep, (std::vector<std::string>{"1", "2"}));
  EXPECT_THROW(parse_override("x=interval(0,1)"), ConfigError);  // a sampling sweeper's, named as such
}

}  // namespace xp::config
