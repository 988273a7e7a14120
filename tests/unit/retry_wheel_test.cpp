#include "retry_wheel.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace {

using ringflow::detail::RetryEntry;
using ringflow::detail::RetryWheel;

RetryEntry* add(RetryWheel& w, std::int64_t due, std::uint32_t tag) {
  RetryEntry* e = w.acquire();
  if (e == nullptr) return nullptr;
  e->due_ns = due;
  e->subscription = tag;
  w.schedule(e);
  return e;
}

TEST(RetryWheel, FiresOnlyWhatIsDueInAnyOrderOfScheduling) {
  RetryWheel w(8);
  const std::int64_t t0 = std::int64_t{1} << 40;
  add(w, t0 + 5'000'000, 3);
  add(w, t0 + 1'000'000, 1);
  add(w, t0 + 3'000'000, 2);
  add(w, t0 + 2'000'000'000, 9);  // beyond one wheel turn (~537 ms)
  EXPECT_EQ(w.pending(), 4U);
  EXPECT_EQ(w.earliest_due(), t0 + 1'000'000);
  std::vector<std::uint32_t> fired;
  const auto fire = [&](RetryEntry& e) { fired.push_back(e.subscription); };
  EXPECT_EQ(w.poll(t0, fire), 0U);
  EXPECT_EQ(w.poll(t0 + 3'000'000, fire), 2U);
  EXPECT_EQ(fired, (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(w.poll(t0 + 600'000'000, fire), 1U);  // a full turn later: 3 fires, 9 waits
  EXPECT_EQ(fired.back(), 3U);
  EXPECT_EQ(w.pending(), 1U);
  EXPECT_EQ(w.poll(t0 + 2'000'000'000, fire), 1U);
  EXPECT_EQ(fired.back(), 9U);
  EXPECT_EQ(w.pending(), 0U);
  EXPECT_EQ(w.earliest_due(), INT64_MAX);
}

TEST(RetryWheel, PoolIsBoundedAndEntriesAreReused) {
  RetryWheel w(2);
  EXPECT_NE(add(w, 10, 0), nullptr);
  EXPECT_NE(add(w, 20, 1), nullptr);
  EXPECT_EQ(w.acquire(), nullptr);  // full: the caller dead-letters (retry_overflow)
  std::size_t n = 0;
  w.poll(1'000'000'000, [&](RetryEntry&) { ++n; });
  EXPECT_EQ(n, 2U);
  for (int round = 0; round < 1000; ++round) {  // freed entries come back
    ASSERT_NE(add(w, 2'000'000'000 + round, 0), nullptr);
    w.poll(3'000'000'000LL + round, [](RetryEntry&) {});
  }
  EXPECT_EQ(w.pending(), 0U);
}

TEST(RetryWheel, FireMayRescheduleIntoTheSameSlot) {
  RetryWheel w(4);
  add(w, 100, 7);
  int fires = 0;
  const auto fire = [&](RetryEntry& e) {
    ++fires;
    if (fires < 3) add(w, e.due_ns + 1'000'000'000, 7);  // again, one second later
  };
  w.poll(100, fire);
  w.poll(2'000'000'100LL, fire);
  w.poll(4'000'000'100LL, fire);
  EXPECT_EQ(fires, 3);
  EXPECT_EQ(w.pending(), 0U);
}

}  // namespace
