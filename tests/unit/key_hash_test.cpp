// The partitioning hash is a compatibility contract: these values must never change.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "ringflow/key_hash.hpp"

namespace {

TEST(KeyHash, PinnedValues) {
  // If one of these fails, existing deployments would re-partition their keys: bump the hash
  // version instead of editing the expected values.
  EXPECT_EQ(ringflow::key_hash(""), 0x9ca066f1a4ab2eeaULL);
  EXPECT_EQ(ringflow::key_hash("a"), 0x3b456f8c2cdbbbdeULL);
  EXPECT_EQ(ringflow::key_hash("customer-42"), 0x355fc75b68c8570fULL);
  EXPECT_EQ(ringflow::key_hash("0123456789abcdef0123456789abcdef"), 0x40222b3ce1511e80ULL);
  EXPECT_EQ(ringflow::partition_of("customer-42", 8), ringflow::key_hash("customer-42") % 8);
}

TEST(KeyHash, IsConstexprAndDeterministic) {
  constexpr std::uint64_t h = ringflow::key_hash("orders");
  static_assert(h == ringflow::key_hash("orders"));
  EXPECT_EQ(h, ringflow::key_hash(std::string("orders")));
}

TEST(KeyHash, SpreadsKeysOverPartitions) {
  constexpr std::uint32_t kParts = 16;
  std::size_t counts[kParts] = {};
  for (int i = 0; i < 16000; ++i) {
    ++counts[ringflow::partition_of("key-" + std::to_string(i), kParts)];
  }
  for (std::size_t c : counts) {
    EXPECT_GT(c, 800U);  // expected 1000 each; a broken hash piles keys into few partitions
    EXPECT_LT(c, 1200U);
  }
}

TEST(KeyHash, LengthAndTailMatter) {
  std::set<std::uint64_t> seen;
  const std::string base = "abcdefghijklmnopqrstuvwxyz012345";
  for (std::size_t n = 0; n <= base.size(); ++n)
    seen.insert(ringflow::key_hash(base.substr(0, n)));
  EXPECT_EQ(seen.size(), base.size() + 1);
  EXPECT_NE(ringflow::key_hash(std::string("a\0", 2)), ringflow::key_hash("a"));
}

}  // namespace
