// Open-loop sender: schedule arithmetic, refusal accounting, and the coordinated-omission
// correction (a stall in the sender is charged to every event it delayed).

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "harness/open_loop.hpp"

namespace ringflow::bench {
namespace {

TEST(OpenLoop, ScheduleIsPlannedInAdvance) {
  OpenLoopPlan plan{.rate_eps = 1'000'000, .events = 10, .start_ns = 5'000};
  EXPECT_EQ(plan.scheduled_ns(0), 5'000u);
  EXPECT_EQ(plan.scheduled_ns(1), 6'000u);
  EXPECT_EQ(plan.scheduled_ns(1'000'000), 5'000u + 1'000'000'000u);  // no drift over 1 s
  OpenLoopPlan odd{.rate_eps = 3, .events = 3, .start_ns = 0};
  EXPECT_EQ(odd.scheduled_ns(3), 1'000'000'000u);
}

TEST(OpenLoop, SplitPlanInterleavesProducersIntoOneSchedule) {
  const auto plans = split_plan(1'000'000, 10, 0, 3);
  ASSERT_EQ(plans.size(), 3u);
  EXPECT_EQ(plans[0].events + plans[1].events + plans[2].events, 10u);
  EXPECT_EQ(plans[0].events, 4u);  // events 0, 3, 6, 9
  // producer k's i-th event is global event k + 3i at (k + 3i) us
  for (unsigned k = 0; k < 3; ++k) {
    for (std::uint64_t i = 0; i < plans[k].events; ++i) {
      EXPECT_EQ(plans[k].scheduled_ns(i), (k + 3 * i) * 1'000) << k << "," << i;
    }
  }
}

TEST(OpenLoop, RefusedSendsAreCountedNotDropped) {
  OpenLoopPlan plan{.rate_eps = 1e7, .events = 1000, .start_ns = now_ns()};
  std::uint64_t calls = 0;
  const auto st = run_open_loop(plan, [&](std::uint64_t i, std::uint64_t) {
    ++calls;
    return i % 10 != 0;  // the system refuses every tenth
  });
  EXPECT_EQ(calls, 1000u);
  EXPECT_EQ(st.sent, 900u);
  EXPECT_EQ(st.refused, 100u);
}

TEST(OpenLoop, SenderNeverSendsEarlyAndPassesScheduledTimes) {
  OpenLoopPlan plan{.rate_eps = 200'000, .events = 2'000, .start_ns = now_ns() + 1'000'000};
  bool early = false;
  bool wrong = false;
  run_open_loop(plan, [&](std::uint64_t i, std::uint64_t due) {
    early = early || now_ns() < due;
    wrong = wrong || due != plan.scheduled_ns(i);
    return true;
  });
  EXPECT_FALSE(early);
  EXPECT_FALSE(wrong);
}

// The CO-correction check: a synchronous "system" that completes each event inside send();
// once, at i = N/2, it stalls 5 ms. Measured from the *scheduled* time, the ~500 events due
// during the stall are all late by up to 5 ms, so the tail shows the stall. Measured from the
// send time (what a closed-loop benchmark does), it almost disappears. This is a behaviour
// check: extra platform stalls only make the corrected tail larger.
TEST(OpenLoop, StallIsChargedToEveryDelayedEvent) {
  constexpr std::uint64_t kEvents = 20'000;  // 0.2 s at 100k ev/s
  OpenLoopPlan plan{.rate_eps = 100'000, .events = kEvents, .start_ns = now_ns() + 1'000'000};
  Histogram corrected;    // scheduled -> completion
  Histogram uncorrected;  // actual send -> completion
  const auto st = run_open_loop(plan, [&](std::uint64_t i, std::uint64_t due) {
    const std::uint64_t sent_at = now_ns();
    if (i == kEvents / 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const std::uint64_t done = now_ns();
    corrected.record(done - due);
    uncorrected.record(done - sent_at);
    return true;
  });
  EXPECT_EQ(st.sent, kEvents);
  EXPECT_EQ(corrected.count(), kEvents);
  // >= 500 events (2.5 %) were delayed, ~1/4 of them by >= 3.75 ms.
  EXPECT_GE(corrected.value_at_percentile(99.9), 4'000'000u);
  EXPECT_GE(corrected.value_at_percentile(99), 1'000'000u);
  EXPECT_GE(st.max_lateness_ns, 4'000'000u);
  // Without the correction only the one event that stalled sees it.
  EXPECT_EQ(uncorrected.count(), kEvents);
  EXPECT_GE(uncorrected.max(), 5'000'000u);
}

TEST(OpenLoop, AbortStopsEarly) {
  std::atomic<bool> abort{true};
  OpenLoopHooks hooks;
  hooks.abort = &abort;
  OpenLoopPlan plan{.rate_eps = 1e6, .events = 100'000, .start_ns = now_ns()};
  const auto st = run_open_loop(
      plan, [](std::uint64_t, std::uint64_t) { return true; }, hooks);
  EXPECT_LT(st.sent, 100'000u);
}

}  // namespace
}  // namespace ringflow::bench
