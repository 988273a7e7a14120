// The two-core platform control's combination (platform_control.hpp): synthetic gap timelines
// and send times -> the expected platform-imposed latencies, deterministic (no clock, no
// threads); plus one short real run of the control on two cores.

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "harness/affinity.hpp"
#include "harness/platform_control.hpp"

namespace ringflow::bench {
namespace {

struct Send {
  std::uint64_t due;
  std::uint64_t sent;
};

// Worker-core stalls [100, 200), [500, 1500), [3000, 3001).
const std::vector<Gap> kGaps = {{100, 200}, {500, 1500}, {3000, 3001}};

// (due, sent) -> expected latency, in send order.
struct Case {
  Send s;
  std::uint64_t expected;
};
const std::vector<Case> kCases = {
    {{0, 0}, 0},           // on time, no stall
    {{50, 60}, 10},        // sender late 10, no stall covers 60
    {{90, 100}, 100},      // sent at a stall's start: waits its whole length (200 - 100)
    {{150, 150}, 50},      // inside a stall: its residual 200 - 150
    {{120, 190}, 70},      // sender late 70 > residual 10: the max
    {{200, 200}, 0},       // at the stall's end: [start, end) no longer covers it
    {{400, 600}, 900},     // residual 1500 - 600 = 900 > lateness 200
    {{600, 1400}, 800},    // lateness 800 > residual 100
    {{1499, 1499}, 1},     // last nanosecond of the stall
    {{2000, 2999}, 999},   // just before a stall: only the lateness
    {{3000, 3000}, 1},     // a 1 ns stall
    {{5000, 5000}, 0},     // after every stall
    {{5000, 6000}, 1000},  // late, after every stall
};

TEST(ControlLatency, CombinesSenderLatenessWithWorkerStalls) {
  for (const Case& c : kCases) {
    EXPECT_EQ(control_latency(c.s.due, c.s.sent, kGaps), c.expected)
        << "due " << c.s.due << " sent " << c.s.sent;
  }
}

TEST(ControlLatency, MergePassMatchesThePerEventFunction) {
  ControlCombiner combine(kGaps);
  for (const Case& c : kCases) {
    EXPECT_EQ(combine.next(c.s.due, c.s.sent), c.expected)
        << "due " << c.s.due << " sent " << c.s.sent;
  }
}

TEST(ControlLatency, EveryEventOfAStallIsCharged) {
  // 1 event / 100 ns, a 1 µs stall on the worker core from 1000 to 2000, sender on time: the
  // events sent inside it see 1000, 900, ..., 100 (coordinated omission: all of them count).
  const std::vector<Gap> gaps = {{1000, 2000}};
  ControlCombiner combine(gaps);
  std::vector<std::uint64_t> got;
  for (std::uint64_t t = 0; t < 3000; t += 100)
    got.push_back(combine.next(t, t));
  std::vector<std::uint64_t> want(30, 0);
  for (int k = 0; k < 10; ++k)
    want[10 + k] = 1000 - 100 * static_cast<std::uint64_t>(k);
  EXPECT_EQ(got, want);
}

TEST(ControlLatency, NoGapsIsTheSenderOnlyControl) {
  ControlCombiner combine({});
  EXPECT_EQ(combine.next(10, 10), 0u);
  EXPECT_EQ(combine.next(20, 25), 5u);
  EXPECT_EQ(control_latency(20, 25, {}), 5u);
}

TEST(PlatformControl, TwoCoreControlIsAtLeastTheSenderOnlyOne) {
  const auto cores = usable_cores();
  if (cores.size() < 2) GTEST_SKIP() << "needs two usable cores";
  ControlSpec cs;
  cs.rate_eps = 100'000;
  cs.warmup_events = 1'000;
  cs.events = 10'000;
  cs.sender_core = cores[0];
  cs.spinner_core = cores[1];
  const auto r = run_platform_control(cs);
  ASSERT_TRUE(r.spinner_ran);
  EXPECT_EQ(r.latency.count(), 10'000u);
  EXPECT_EQ(r.lateness.count(), 10'000u);
  EXPECT_EQ(r.timeline.dropped, 0u);
  for (std::size_t i = 1; i < r.timeline.gaps.size(); ++i) {
    ASSERT_LE(r.timeline.gaps[i - 1].end_ns, r.timeline.gaps[i].start_ns);
  }
  for (const Gap& g : r.timeline.gaps)
    ASSERT_GT(g.end_ns - g.start_ns, cs.gap_threshold_ns);
  // Per event, the combined latency is >= the sender's lateness, so every percentile is too.
  for (const double p : {50.0, 99.0, 99.9, 100.0}) {
    EXPECT_GE(r.latency.value_at_percentile(p), r.lateness.value_at_percentile(p)) << p;
  }
}

}  // namespace
}  // namespace ringflow::bench
