#include <gtest/gtest.h>

#include "core/config/node.h"

namespace xp::config {

TEST(ConfigNode, SetKeepsInsertionOrderAndReplacesInPlace) {
  ConfigNode m = ConfigNode::map();
  m.set("b", ConfigNode::integer(1));
  m.set("a", ConfigNode::integer(2));
  m.set("b", ConfigNode::integer(3));
  ASSERT_EQ(m.items().size(), 2u);
  EXPECT_EQ(m.items()[0].first, "b");
  EXPECT_EQ(m.items()[0].second.as_int(), 3);
  EXPECT_EQ(m.items()[1].first, "a");
}

TEST(ConfigNode, CopiesAreIndependent) {
  ConfigNode a = ConfigNode::map();
  a.ensure_path("x.y") = ConfigNode::integer(1);
  ConfigNode b = a;
  b.ensure_path("x.y") = ConfigNode::integer(2);
  EXPECT_EQ(a.at_path("x.y")->as_int(), 1);
  EXPECT_EQ(b.at_path("x.y")->as_int(), 2);
}

TEST(ConfigNode, PathsReachListElementsByIndex) {
  ConfigNode root = ConfigNode::map();
  ConfigNode list = ConfigNode::list();
  list.push_back(ConfigNode::string("a"));
  ConfigNode inner = ConfigNode::map();
  inner.set("k", ConfigNode::integer(7));
  list.push_back(inner);
  root.set("l", list);
  EXPECT_EQ(root.at_path("l.0")->as_string(), "a");
  EXPECT_EQ(root.at_path("l.1.k")->as_int(), 7);
  EXPECT_EQ(root.at_path("l.2"), nullptr);
  EXPECT_TRUE(root.erase_path("l.0"));
  EXPECT_EQ(root.at_path("l.0.k")->as_int(), 7);
}

TEST(ConfigNode, MergeRecursesIntoMapsAndAssignsLists) {
  ConfigNode dst = ConfigNode::map(), src = ConfigNode::map();
  dst.ensure_path("m.a") = ConfigNode::integer(1);
  dst.ensure_path("m.b") = ConfigNode::integer(2);
  ConfigNode l1 = ConfigNode::list();
  l1.push_back(ConfigNode::integer(1));
  l1.push_back(ConfigNode::integer(2));
  dst.set("l", l1);
  src.ensure_path("m.b") = ConfigNode::integer(20);
  ConfigNode l2 = ConfigNode::list();
  l2.push_back(ConfigNode::integer(9));
  src.set("l", l2);
  merge_into(dst, src);
  EXPECT_EQ(dst.at_path("m.a")->as_int(), 1);
  EXPECT_EQ(dst.at_path("m.b")->as_int(), 20);
  EXPECT_EQ(dst.at_path("l")->size(), 1u);
}

TEST(ConfigNode, MissingAndInterpolationAreRecognised) {
  EXPECT_TRUE(ConfigNode::string("???").is_missing());
  EXPECT_TRUE(ConfigNode::string("a_${b}").is_interpolation());
  EXPECT_FALSE(ConfigNode::string("a_\\${b}").is_interpolation());
  EXPECT_FALSE(ConfigNode::string("$x").is_interpolation());
}

TEST(ConfigNode, FloatScalarTextStaysAFloat) {
  EXPECT_EQ(ConfigNode::real(1.0).scalar_text(), "1.0");
  EXPECT_EQ(ConfigNode::real(0.001).scalar_text(), "0.001");
  EXPECT_EQ(ConfigNode::integer(-3).scalar_text(), "-3");
}

}  // namespace xp::config
