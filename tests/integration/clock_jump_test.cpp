// Clock jumps (ringflow::detail::shift_clock_for_tests moves now_ns() for every thread):
//   - forward: deadlines of queued events expire, retries fire early, each attempt once and in
//     order, nothing lost;
//   - backward: nothing fires twice, retries still fire within their delay (not put off by the
//     size of the jump), ingest_ns stays non-decreasing, new deadlines are honoured;
// and the accounting laws hold after each. Every wait is bounded: a hang fails the test.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "ringflow/ringflow.hpp"
#include "support/bounded.hpp"

namespace {

using namespace std::chrono_literals;
using ringflow::Engine;
using ringflow::EngineConfig;
using ringflow::EventView;
using ringflow::Outcome;
using ringflow::PublishStatus;
using ringflow::TopicId;
using ringflow::test::bounded;

constexpr std::int64_t kHourNs = 3'600'000'000'000;

/// Moves the engine clock for the test's scope, and back at its end.
class ClockShift {
 public:
  void by(std::int64_t ns) {
    ringflow::detail::shift_clock_for_tests(ns);
    total_ += ns;
  }
  ~ClockShift() { ringflow::detail::shift_clock_for_tests(-total_); }

 private:
  std::int64_t total_ = 0;
};

template <class P>
bool wait_until(P pred, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

EngineConfig one_shard() {
  EngineConfig c;
  c.partitions = 1;
  c.shards = 1;
  c.pin_threads = false;
  c.wait_strategy = ringflow::WaitStrategyKind::park;
  c.ring_capacity = 1024;
  c.batch_size = 16;
  c.segment_bytes = std::size_t{256} << 10;
  c.retention_bytes = std::size_t{2} << 20;
  c.handler_watchdog = 0ms;
  return c;
}

constexpr int kEvents = 10;

/// Per event (payload "0".."9"): attempts seen, in the order seen.
struct Attempts {
  std::array<std::atomic<std::uint32_t>, kEvents> first{};
  std::array<std::atomic<std::uint32_t>, kEvents> second{};
  std::atomic<std::uint32_t> out_of_order{0};
  std::atomic<std::uint32_t> firsts{0};

  /// Retries once with `delay`, then succeeds.
  Outcome handle(const EventView& e, std::chrono::nanoseconds delay) {
    const int i = std::stoi(std::string(e.payload_string()));
    if (e.attempt() == 1) {
      first[i].fetch_add(1);
      firsts.fetch_add(1);
      return Outcome::retry(delay);
    }
    if (first[i].load() != 1) out_of_order.fetch_add(1);  // a retry before its first attempt
    second[i].fetch_add(1);
    return Outcome::ok();
  }
  void expect_each_once() {
    EXPECT_EQ(out_of_order.load(), 0U);
    for (int i = 0; i < kEvents; ++i) {
      EXPECT_EQ(first[i].load(), 1U) << "event " << i;
      EXPECT_EQ(second[i].load(), 1U) << "event " << i;
    }
  }
};

void expect_laws(const ringflow::EngineStats& st) {
  EXPECT_EQ(st.published_count(PublishStatus::ok), st.appended + st.expired + st.duplicates);
  for (const auto& t : st.topics)
    EXPECT_EQ(t.accepted, t.appended + t.expired + t.duplicates) << t.name;
  for (const auto& s : st.subscriptions)
    EXPECT_EQ(s.first_deliveries, s.ok + s.dead_lettered) << s.pattern;
}

/// ingest_ns never decreases within the partition (dead letters included).
void expect_ingest_non_decreasing(const Engine& engine) {
  for (std::uint32_t p = 0; p < engine.partitions(); ++p) {
    ringflow::PartitionReader r = engine.reader(p);
    ringflow::StoredEvent e;
    std::int64_t last = INT64_MIN;
    std::uint64_t n = 0;
    while (r.next(e) == ringflow::ReadStatus::ok) {
      EXPECT_GE(e.ingest_ns, last) << "partition " << p << " offset " << e.offset;
      last = e.ingest_ns;
      ++n;
    }
    EXPECT_GT(n, 0U);
  }
}

// Events queued behind a held handler, with deadlines 5 s out: the clock jumps an hour ahead
// before the shard takes them, so they expire at ingest (dead letters), and nothing else does.
TEST(ClockJump, ForwardExpiresTheDeadlinesOfQueuedEvents) {
  ClockShift clock;
  Engine engine(one_shard());
  const TopicId t = engine.add_topic("jobs");
  std::atomic<bool> open{false};
  std::atomic<bool> entered{false};
  std::atomic<std::uint32_t> delivered{0};
  engine.subscribe("jobs", [&](const EventView& e) {
    if (e.payload_string() == "hold") {
      entered.store(true);
      if (!wait_until([&] { return open.load(); }, 60s)) ADD_FAILURE() << "never released";
    }
    delivered.fetch_add(1);
  });
  std::atomic<std::uint32_t> dead{0};
  engine.subscribe("jobs.dlq", [&](const EventView& e) {
    if (e.dead_letter() != nullptr &&
        e.dead_letter()->reason == ringflow::DeadLetterReason::expired)
      dead.fetch_add(1);
  });
  engine.start();
  ringflow::Producer p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "hold"), PublishStatus::ok);
  ASSERT_TRUE(wait_until([&] { return entered.load(); }, 30s)) << "handler never ran";
  ringflow::PublishOptions o;
  o.deadline_ns = ringflow::now_ns() + 5'000'000'000;
  for (int i = 0; i < kEvents; ++i)
    ASSERT_EQ(p.publish(t, "k", "late", o), PublishStatus::ok);
  clock.by(kHourNs);
  open.store(true);
  bounded("drain() after a forward jump", 60s, [&] { engine.drain(); });
  const ringflow::EngineStats st = engine.stats();
  EXPECT_EQ(delivered.load(), 1U);
  EXPECT_EQ(st.expired, static_cast<std::uint64_t>(kEvents));
  EXPECT_EQ(st.dead_letters(ringflow::DeadLetterReason::expired),
            static_cast<std::uint64_t>(kEvents));
  EXPECT_EQ(dead.load(), static_cast<std::uint32_t>(kEvents));
  expect_laws(st);
  expect_ingest_non_decreasing(engine);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

// Retries due a minute out fire soon after the clock jumps an hour ahead: each once, after its
// first attempt; drain() returns without waiting the minute.
TEST(ClockJump, ForwardFiresPendingRetriesEarlyEachOnce) {
  ClockShift clock;
  Engine engine(one_shard());
  const TopicId t = engine.add_topic("jobs");
  Attempts a;
  ringflow::SubscribeOptions so;
  so.max_attempts = 2;
  so.retry_backoff_max = 120s;
  engine.subscribe(
      "jobs", [&](const EventView& e) { return a.handle(e, 60s); }, so);
  engine.start();
  ringflow::Producer p = engine.make_producer();
  for (int i = 0; i < kEvents; ++i)
    ASSERT_EQ(p.publish(t, "k" + std::to_string(i % 3), std::to_string(i)), PublishStatus::ok);
  ASSERT_TRUE(wait_until([&] { return a.firsts.load() == kEvents; }, 30s)) << "first attempts";
  // The shard schedules the retries after the batch's handlers returned.
  ASSERT_TRUE(wait_until(
      [&] { return engine.stats().retries == static_cast<std::uint64_t>(kEvents); }, 30s))
      << "retries scheduled: " << engine.stats().retries;
  clock.by(kHourNs);
  // Without the jump, drain() would wait the minute for the retries.
  bounded("drain() of retries after a forward jump", 20s, [&] { engine.drain(); });
  a.expect_each_once();
  const ringflow::EngineStats st = engine.stats();
  EXPECT_EQ(st.subscriptions[0].ok, static_cast<std::uint64_t>(kEvents));
  EXPECT_EQ(st.subscriptions[0].retries, static_cast<std::uint64_t>(kEvents));
  expect_laws(st);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

// The clock jumps an hour back while retries are pending: they still fire within about their
// 200 ms delay, each once; events published after the jump with deadlines on the new clock are
// not expired; ingest_ns never decreases across the jump.
TEST(ClockJump, BackwardNeitherStallsRetriesNorRepeatsThemAndKeepsIngestOrder) {
  ClockShift clock;
  Engine engine(one_shard());
  const TopicId t = engine.add_topic("jobs");
  Attempts a;
  ringflow::SubscribeOptions so;
  so.max_attempts = 2;
  std::atomic<std::uint32_t> later{0};
  engine.subscribe(
      "jobs",
      [&](const EventView& e) {
        if (e.payload_string() == "after") {
          later.fetch_add(1);
          return Outcome::ok();
        }
        return a.handle(e, 200ms);
      },
      so);
  engine.start();
  ringflow::Producer p = engine.make_producer();
  for (int i = 0; i < kEvents; ++i)
    ASSERT_EQ(p.publish(t, "k" + std::to_string(i % 3), std::to_string(i)), PublishStatus::ok);
  ASSERT_TRUE(wait_until([&] { return a.firsts.load() == kEvents; }, 30s)) << "first attempts";
  ASSERT_TRUE(wait_until(
      [&] { return engine.stats().retries == static_cast<std::uint64_t>(kEvents); }, 30s))
      << "retries scheduled: " << engine.stats().retries;
  clock.by(-kHourNs);
  // Were retries timed on the jumped clock, they would wait an hour.
  bounded("drain() of retries after a backward jump", 30s, [&] { engine.drain(); });
  a.expect_each_once();
  ringflow::PublishOptions o;
  o.deadline_ns = ringflow::now_ns() + 30'000'000'000;  // on the new clock
  for (int i = 0; i < kEvents; ++i)
    ASSERT_EQ(p.publish(t, "k", "after", o), PublishStatus::ok);
  bounded("drain()", 60s, [&] { engine.drain(); });
  EXPECT_EQ(later.load(), static_cast<std::uint32_t>(kEvents));
  const ringflow::EngineStats st = engine.stats();
  EXPECT_EQ(st.expired, 0U);
  EXPECT_EQ(st.subscriptions[0].ok, static_cast<std::uint64_t>(2 * kEvents));
  expect_laws(st);
  expect_ingest_non_decreasing(engine);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

// Back and forth under load, with retries and deadlines: nothing lost, nothing twice.
TEST(ClockJump, BackAndForthUnderLoadLosesNothing) {
  ClockShift clock;
  EngineConfig cfg = one_shard();
  cfg.partitions = 2;
  cfg.shards = 2;
  Engine engine(cfg);
  const TopicId t = engine.add_topic("jobs");
  constexpr int kN = 2000;
  std::array<std::atomic<std::uint8_t>, kN> done{};
  ringflow::SubscribeOptions so;
  so.max_attempts = 3;
  so.retry_backoff = 1ms;
  so.retry_backoff_max = 20ms;
  engine.subscribe(
      "jobs",
      [&](const EventView& e) {
        const int i = std::stoi(std::string(e.payload_string()));
        if (i % 4 == 0 && e.attempt() == 1) return Outcome::retry();
        done[i].fetch_add(1);
        return Outcome::ok();
      },
      so);
  engine.start();
  ringflow::Producer p = engine.make_producer();
  std::uint64_t accepted = 0;
  for (int i = 0; i < kN; ++i) {
    if (i % 250 == 0) clock.by((i / 250) % 2 == 0 ? -kHourNs : kHourNs / 2);
    PublishStatus s = PublishStatus::full;
    for (int tries = 0; tries < 1000 && s == PublishStatus::full; ++tries) {
      s = p.publish(t, "k" + std::to_string(i % 7), std::to_string(i));
      if (s == PublishStatus::full) std::this_thread::sleep_for(100us);
    }
    ASSERT_EQ(s, PublishStatus::ok) << i;
    ++accepted;
  }
  bounded("drain() after jumps", 60s, [&] { engine.drain(); });
  for (int i = 0; i < kN; ++i)
    ASSERT_EQ(done[i].load(), 1U) << "event " << i;
  const ringflow::EngineStats st = engine.stats();
  EXPECT_EQ(st.published_count(PublishStatus::ok), accepted);
  EXPECT_EQ(st.subscriptions[0].ok, accepted);
  expect_laws(st);
  expect_ingest_non_decreasing(engine);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

}  // namespace
