// Single-threaded promises of the wait strategies and the blocking ring helpers; the two-thread
// behaviour (wake-ups, parking) is in tests/stress/spsc_ring_stress_test.cpp.

#include "ringflow/wait_strategy.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

namespace {

using namespace std::chrono_literals;
using ringflow::SpscRing;

static_assert(ringflow::WaitStrategy<ringflow::BusySpin>);
static_assert(ringflow::WaitStrategy<ringflow::SpinThenYield>);
static_assert(ringflow::WaitStrategy<ringflow::Parking>);
static_assert(ringflow::WaitStrategy<ringflow::DynamicWaitStrategy>);

template <class S>
class WaitStrategyTest : public ::testing::Test {
 protected:
  S strategy;
};

using Strategies = ::testing::Types<ringflow::BusySpin, ringflow::SpinThenYield, ringflow::Parking>;
TYPED_TEST_SUITE(WaitStrategyTest, Strategies);

TYPED_TEST(WaitStrategyTest, ReturnsAtOnceWhenReady) {
  int calls = 0;
  this->strategy.wait_until([&] { return ++calls == 1; });
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(this->strategy.wait_until([] { return true; }, std::chrono::steady_clock::now()));
}

// Within the spin phase every strategy polls; past it, Parking sleeps until notify() (a predicate
// that turns true without a notify() would hang it, by design).
TYPED_TEST(WaitStrategyTest, ReEvaluatesWhileSpinning) {
  int calls = 0;
  this->strategy.wait_until([&] { return ++calls == 100; });
  EXPECT_EQ(calls, 100);
}

TYPED_TEST(WaitStrategyTest, DeadlinePassesWhenNeverReady) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(this->strategy.wait_until([] { return false; }, start + 5ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 5ms);
}

TYPED_TEST(WaitStrategyTest, DeadlineInThePastStillChecksOnce) {
  EXPECT_TRUE(
      this->strategy.wait_until([] { return true; }, std::chrono::steady_clock::now() - 1s));
}

TYPED_TEST(WaitStrategyTest, NotifyWithNobodyWaitingIsHarmless) {
  for (int i = 0; i < 1000; ++i) {
    this->strategy.notify();
  }
  SUCCEED();
}

TEST(DynamicWaitStrategy, KeepsItsKind) {
  for (const auto kind :
       {ringflow::WaitStrategyKind::busy_spin, ringflow::WaitStrategyKind::spin_yield,
        ringflow::WaitStrategyKind::park}) {
    ringflow::DynamicWaitStrategy s(kind);
    EXPECT_EQ(s.kind(), kind);
    s.notify();
    EXPECT_FALSE(s.wait_until([] { return false; }, std::chrono::steady_clock::now() + 1ms));
  }
}

TEST(ParkingStrategy, TimedWaitSleepsInsteadOfSpinning) {
  ringflow::Parking s(8);
  EXPECT_FALSE(s.wait_until([] { return false; }, std::chrono::steady_clock::now() + 10ms));
  EXPECT_GE(s.parks(), 1U);
  EXPECT_EQ(s.sleepers(), 0U) << "a waiter that left must not stay announced";
}

TEST(RingHelpers, PushAndPopRoundTrip) {
  SpscRing<std::unique_ptr<int>> ring(2);
  ringflow::Parking s;
  ringflow::push(ring, std::make_unique<int>(1), s);
  ringflow::push(ring, std::make_unique<int>(2), s);
  std::unique_ptr<int> out;
  ringflow::pop(ring, out, s);
  EXPECT_EQ(*out, 1);
  ringflow::pop(ring, out, s);
  EXPECT_EQ(*out, 2);
}

TEST(RingHelpers, TimedVariantsTimeOutAndLeaveArgumentsAlone) {
  SpscRing<std::unique_ptr<int>> ring(1);
  ringflow::SpinThenYield s;
  std::unique_ptr<int> out = std::make_unique<int>(7);
  EXPECT_FALSE(ringflow::pop_until(ring, out, s, std::chrono::steady_clock::now() + 1ms));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(*out, 7) << "a failed pop must not touch out";

  EXPECT_TRUE(ringflow::push_until(ring, std::make_unique<int>(1), s,
                                   std::chrono::steady_clock::now() + 1ms));
  auto item = std::make_unique<int>(2);
  EXPECT_FALSE(
      ringflow::push_until(ring, std::move(item), s, std::chrono::steady_clock::now() + 1ms));
  EXPECT_NE(item, nullptr);  // NOLINT(bugprone-use-after-move): a failed push does not move
}

TEST(RingHelpers, StopFlagEndsTheWait) {
  SpscRing<int> ring(1);
  ringflow::Parking s(8);
  const std::atomic<bool> stop{true};
  int out = 0;
  EXPECT_FALSE(ringflow::pop_until(ring, out, s, stop));
  ASSERT_TRUE(ring.try_push(1));
  EXPECT_FALSE(ringflow::push_until(ring, 2, s, stop)) << "full ring and stop raised";
  EXPECT_TRUE(ringflow::pop_until(ring, out, s, stop)) << "items before the stop still arrive";
  EXPECT_EQ(out, 1);
}

}  // namespace
