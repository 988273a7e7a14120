#include "dedup_window.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <unordered_set>

namespace {

using ringflow::detail::DedupWindow;

TEST(DedupWindow, DuplicatesInsideTheWindowOnly) {
  DedupWindow w(3, 0);
  EXPECT_FALSE(w.seen_or_insert(10, 0));
  EXPECT_TRUE(w.seen_or_insert(10, 0));
  EXPECT_FALSE(w.seen_or_insert(11, 0));
  EXPECT_FALSE(w.seen_or_insert(12, 0));
  EXPECT_FALSE(w.seen_or_insert(13, 0));  // evicts 10
  EXPECT_EQ(w.size(), 3U);
  EXPECT_FALSE(w.seen_or_insert(10, 0));  // outside the window again
  EXPECT_TRUE(w.seen_or_insert(12, 0));
}

TEST(DedupWindow, AgeLimit) {
  DedupWindow w(100, 1000);
  EXPECT_FALSE(w.seen_or_insert(5, 0));
  EXPECT_TRUE(w.seen_or_insert(5, 1000));
  EXPECT_FALSE(w.seen_or_insert(5, 2001));  // older than 1000 ns: forgotten
}

TEST(DedupWindow, MatchesAReferenceModelUnderChurn) {
  // Random keys from a small universe force collisions, long probe runs and many deletions.
  constexpr std::size_t kWindow = 64;
  DedupWindow w(kWindow, 0);
  std::deque<std::uint64_t> fifo;
  std::unordered_multiset<std::uint64_t> in;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 200000; ++i) {
    const std::uint64_t key = 1 + rng() % 200;
    const bool expect_dup = in.count(key) != 0;
    ASSERT_EQ(w.seen_or_insert(key, i), expect_dup) << "step " << i << " key " << key;
    if (!expect_dup) {
      if (fifo.size() == kWindow) {
        in.erase(in.find(fifo.front()));
        fifo.pop_front();
      }
      fifo.push_back(key);
      in.insert(key);
    }
  }
  EXPECT_EQ(w.size(), kWindow);
}

}  // namespace
