#include <gtest/gtest.h>

#include <string>

#include "ringflow/topic.hpp"

namespace {

using ringflow::check_topic_name;
using ringflow::check_topic_pattern;
using ringflow::topic_matches;

TEST(TopicName, AcceptsHierarchicalNames) {
  EXPECT_EQ(check_topic_name("orders"), "");
  EXPECT_EQ(check_topic_name("orders.created"), "");
  EXPECT_EQ(check_topic_name("payments.eu-west_1.processed"), "");
}

TEST(TopicName, RejectsBadNamesWithReason) {
  EXPECT_NE(check_topic_name("").find("empty"), std::string::npos);
  EXPECT_NE(check_topic_name("orders..created").find("empty segment"), std::string::npos);
  EXPECT_NE(check_topic_name(".orders").find("segment 1"), std::string::npos);
  EXPECT_NE(check_topic_name("orders.").find("segment 2"), std::string::npos);
  const std::string bad = check_topic_name("orders.cre ated");
  EXPECT_NE(bad.find("' '"), std::string::npos) << bad;
  EXPECT_NE(check_topic_name("orders.*").find("wildcards only in subscriptions"),
            std::string::npos);
  EXPECT_NE(check_topic_name(std::string(65, 'a')).find("longer than 64"), std::string::npos);
  std::string long_name;
  while (long_name.size() <= ringflow::kMaxTopicNameBytes)
    long_name += "abcdefgh.";
  long_name += "x";
  EXPECT_NE(check_topic_name(long_name).find("limit is 255"), std::string::npos);
}

TEST(TopicPattern, ValidatesWildcards) {
  EXPECT_EQ(check_topic_pattern("orders.*"), "");
  EXPECT_EQ(check_topic_pattern("*.created"), "");
  EXPECT_EQ(check_topic_pattern("orders.>"), "");
  EXPECT_EQ(check_topic_pattern(">"), "");
  EXPECT_NE(check_topic_pattern("orders.>.created").find("last segment"), std::string::npos);
  EXPECT_NE(check_topic_pattern("orders.cr*").find("'*'"), std::string::npos);
}

TEST(TopicPattern, MatchesWithNatsSemantics) {
  struct Case {
    const char* pattern;
    const char* name;
    bool match;
  };
  const Case cases[] = {
      {"orders.created", "orders.created", true},
      {"orders.created", "orders.updated", false},
      {"orders.*", "orders.created", true},
      {"orders.*", "orders.eu.created", false},
      {"orders.*", "orders", false},
      {"*.created", "orders.created", true},
      {"orders.>", "orders.created", true},
      {"orders.>", "orders.eu.created", true},
      {"orders.>", "orders", false},
      {">", "orders", true},
      {">", "a.b.c", true},
      {"*", "orders", true},
      {"*", "orders.created", false},
      {"orders.*.x", "orders.eu.x", true},
      {"orders.*.x", "orders.eu.y", false},
      {"orders", "orders.created", false},
      {"orders.created", "orders", false},
      {"ord", "orders", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(topic_matches(c.pattern, c.name), c.match) << c.pattern << " vs " << c.name;
  }
}

}  // namespace

namespace {

TEST(TopicPattern, CoverageForGrants) {
  using ringflow::pattern_covers;
  EXPECT_TRUE(pattern_covers("orders.>", "orders.created"));
  EXPECT_TRUE(pattern_covers("orders.>", "orders.*"));
  EXPECT_TRUE(pattern_covers("orders.>", "orders.eu.>"));
  EXPECT_TRUE(pattern_covers(">", "anything.at.all"));
  EXPECT_TRUE(pattern_covers("orders.*", "orders.created"));
  EXPECT_TRUE(pattern_covers("orders.*", "orders.*"));
  EXPECT_FALSE(pattern_covers("orders.*", "orders.>"));
  EXPECT_FALSE(pattern_covers("orders.*", "orders.eu.created"));
  EXPECT_FALSE(pattern_covers("orders.created", "orders.*"));
  EXPECT_FALSE(pattern_covers("orders.>", "orders"));
  EXPECT_FALSE(pattern_covers("orders.>", "payments.created"));
  EXPECT_TRUE(pattern_covers("*.created", "orders.created"));
  EXPECT_FALSE(pattern_covers("*.created", "orders.updated"));
}

}  // namespace
