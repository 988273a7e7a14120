#include "retry_wheel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
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

namespace {

using ringflow::detail::retry_backoff;

TEST(RetryBackoff, DoublesAndSaturatesWithoutOverflow) {
  EXPECT_EQ(retry_backoff(100, 1000, 1), 100);
  EXPECT_EQ(retry_backoff(100, 1000, 2), 200);
  EXPECT_EQ(retry_backoff(100, 1000, 4), 800);
  EXPECT_EQ(retry_backoff(100, 1000, 5), 1000);
  // Huge bounds and attempts: UBSan (asan preset) would report a signed overflow here.
  EXPECT_EQ(retry_backoff(1, INT64_MAX, 65535), INT64_MAX);
  EXPECT_EQ(retry_backoff(INT64_MAX / 2 + 1, INT64_MAX, 2), INT64_MAX);
  EXPECT_EQ(retry_backoff(INT64_MAX, INT64_MAX, 3), INT64_MAX);
  EXPECT_EQ(retry_backoff(5000, 1000, 1), 1000);  // base above the cap: the cap
}

TEST(RetryWheel, OldestChainTracksChainsAcrossReschedules) {
  RetryWheel w(8);
  const std::int64_t t0 = std::int64_t{1} << 30;
  EXPECT_EQ(w.oldest_chain(), 0U);
  add(w, t0 + 10, 0);         // chain 0
  add(w, t0 + 5'000'000, 1);  // chain 1, due later
  add(w, t0 + 20, 2);         // chain 2
  EXPECT_EQ(w.chains_started(), 3U);
  EXPECT_EQ(w.oldest_chain(), 0U);
  // Chain 0 continues once (a further retry), chain 2 ends.
  std::vector<std::uint64_t> fired;
  w.poll(t0 + 100, [&](RetryEntry& e) {
    fired.push_back(e.chain);
    if (e.chain == 0) {
      RetryEntry* next = w.acquire();
      ASSERT_NE(next, nullptr);
      next->due_ns = t0 + 3'000'000;
      w.schedule(next, &e);
    }
  });
  std::sort(fired.begin(), fired.end());  // one slot: order within it is not specified
  EXPECT_EQ(fired, (std::vector<std::uint64_t>{0, 2}));
  EXPECT_EQ(w.oldest_chain(), 0U) << "chain 0 goes on";
  w.poll(t0 + 3'500'000, [&](RetryEntry& e) { EXPECT_EQ(e.chain, 0U); });
  EXPECT_EQ(w.oldest_chain(), 1U);
  w.poll(t0 + 6'000'000, [&](RetryEntry& e) { EXPECT_EQ(e.chain, 1U); });
  EXPECT_EQ(w.pending(), 0U);
  EXPECT_EQ(w.oldest_chain(), w.chains_started()) << "no chain left";
}

TEST(RetryWheel, EarliestDueIsALowerBoundWithoutRescanning) {
  RetryWheel w(64);
  const std::int64_t t0 = std::int64_t{1} << 30;
  const std::int64_t tick = std::int64_t{1} << RetryWheel::kTickShift;
  for (int i = 0; i < 50; ++i)
    add(w, t0 + 40 * tick + i, 0);  // far out
  add(w, t0 + 1, 1);
  EXPECT_EQ(w.poll(t0 + 2, [](RetryEntry&) {}), 1U);
  // The next occupied slot starts at (or before) the far entries' tick, never after them.
  EXPECT_LE(w.earliest_due(), t0 + 40 * tick);
  EXPECT_GT(w.earliest_due(), t0 + 2);
  EXPECT_EQ(w.poll(t0 + 39 * tick, [](RetryEntry&) {}), 0U);
  EXPECT_EQ(w.poll(t0 + 41 * tick, [](RetryEntry&) {}), 50U);
  EXPECT_EQ(w.earliest_due(), INT64_MAX);
}

}  // namespace

namespace {

TEST(RetryWheel, ARetryScheduledWhileFiringLaterInTheSameTickIsNotPutOff) {
  RetryWheel w(4);
  const std::int64_t t0 = std::int64_t{1} << 30;  // the start of a tick
  add(w, t0 + 10, 0);
  add(w, t0 + 500, 1);  // same tick, due later: stays in the slot just walked
  w.poll(t0 + 20, [&](RetryEntry& e) {
    RetryEntry* next = w.acquire();
    ASSERT_NE(next, nullptr);
    next->due_ns = t0 + 300;  // again in the current tick
    w.schedule(next, &e);
  });
  EXPECT_LE(w.earliest_due(), t0 + 300);
  EXPECT_EQ(w.poll(t0 + 300, [](RetryEntry&) {}), 1U);
  EXPECT_LE(w.earliest_due(), t0 + 500);
  EXPECT_EQ(w.poll(t0 + 500, [](RetryEntry&) {}), 1U);
  EXPECT_EQ(w.pending(), 0U);
}

}  // namespace
