// Fault injection without changing the engine: full rings under every backpressure policy
// (the shard held up by a gated handler), stages that throw on every event, a handler that
// blocks while stop() runs. Every wait is bounded: a hang fails the test with a message.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "ringflow/ringflow.hpp"
#include "support/bounded.hpp"

namespace {

using namespace std::chrono_literals;
using ringflow::BackpressurePolicy;
using ringflow::Engine;
using ringflow::EngineConfig;
using ringflow::EventView;
using ringflow::Outcome;
using ringflow::PublishStatus;
using ringflow::TopicId;

EngineConfig small_config() {
  EngineConfig c;
  c.partitions = 1;
  c.shards = 1;
  c.pin_threads = false;
  c.wait_strategy = ringflow::WaitStrategyKind::park;
  c.ring_capacity = 8;
  c.batch_size = 4;
  c.segment_bytes = std::size_t{256} << 10;
  c.retention_bytes = std::size_t{2} << 20;
  return c;
}

using ringflow::test::bounded;

/// Waits (yielding) until `pred` holds, at most `limit`; false on timeout.
template <class P>
bool wait_until(P pred, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

/// A handler that holds up its shard until the gate opens (at most 60 s, then fails the test).
struct Gate {
  std::atomic<bool> open{false};
  std::atomic<bool> entered{false};
  std::atomic<std::uint64_t> handled{0};
  Outcome pass() {
    entered.store(true);
    if (!wait_until([this] { return open.load(); }, 60s)) ADD_FAILURE() << "gate never opened";
    handled.fetch_add(1);
    return Outcome::ok();
  }
};

class FullRing : public ::testing::TestWithParam<BackpressurePolicy> {};

// The shard is held up inside a handler, so the ring fills and nothing frees it: fail_fast
// returns full at once, spin and park return full only after their timeout. Once the shard
// moves again, every accepted event is delivered exactly once and every result was counted.
TEST_P(FullRing, ReturnsFullAfterThePolicyGaveUpAndLosesNothing) {
  const BackpressurePolicy policy = GetParam();
  EngineConfig cfg = small_config();
  cfg.backpressure = policy;
  cfg.backpressure_timeout = 3ms;
  Engine engine(cfg);
  const TopicId t = engine.add_topic("jobs");
  Gate gate;
  engine.subscribe("jobs", [&](const EventView&) { return gate.pass(); });
  engine.start();
  ringflow::Producer p = engine.make_producer();

  std::uint64_t accepted = 0;
  std::uint64_t full = 0;
  ASSERT_EQ(p.publish(t, "k", "first"), PublishStatus::ok);
  ++accepted;
  ASSERT_TRUE(wait_until([&] { return gate.entered.load(); }, 30s)) << "handler never ran";
  // The shard is blocked: the ring (8 slots) fills within a few publishes.
  for (int i = 0; i < 64 && full == 0; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const PublishStatus s = p.publish(t, "k", "more");
    const auto waited = std::chrono::steady_clock::now() - t0;
    if (s == PublishStatus::ok) {
      ++accepted;
    } else {
      ASSERT_EQ(s, PublishStatus::full);
      ++full;
      if (policy != BackpressurePolicy::fail_fast) {
        EXPECT_GE(waited, cfg.backpressure_timeout) << "gave up before its timeout";
      }
    }
  }
  ASSERT_EQ(full, 1U) << "the ring never filled";
  EXPECT_LE(accepted, 1 + cfg.ring_capacity + cfg.batch_size);
  // Full again, with a per-producer override of the policy.
  ringflow::ProducerOptions po;
  po.backpressure = BackpressurePolicy::fail_fast;
  ringflow::Producer other = engine.make_producer(po);
  EXPECT_EQ(p.publish(t, "k", "still full"), PublishStatus::full);
  ++full;

  gate.open.store(true);
  bounded("drain() after the ring drained", 60s, [&] { engine.drain(); });
  EXPECT_EQ(gate.handled.load(), accepted);
  const ringflow::EngineStats st = engine.stats();
  EXPECT_EQ(st.published_count(PublishStatus::ok), accepted);
  EXPECT_EQ(st.published_count(PublishStatus::full), full);
  EXPECT_EQ(st.appended, accepted);
  EXPECT_EQ(st.subscriptions[0].ok, accepted);
  // The ring works again.
  EXPECT_EQ(other.publish(t, "k", "after"), PublishStatus::ok);
  bounded("stop()", 60s, [&] { engine.stop(); });
  EXPECT_EQ(gate.handled.load(), accepted + 1);
}

INSTANTIATE_TEST_SUITE_P(EveryPolicy, FullRing,
                         ::testing::Values(BackpressurePolicy::fail_fast, BackpressurePolicy::spin,
                                           BackpressurePolicy::park),
                         [](const auto& info) {
                           return std::string(ringflow::to_string(info.param));
                         });

// A publisher parked on a full ring is woken when the shard frees space, well before a long
// timeout: it gets ok, not full.
TEST(FaultInjection, ParkedPublisherIsWokenWhenSpaceFrees) {
  EngineConfig cfg = small_config();
  cfg.backpressure = BackpressurePolicy::park;
  cfg.backpressure_timeout = std::chrono::seconds(30);
  Engine engine(cfg);
  const TopicId t = engine.add_topic("jobs");
  Gate gate;
  engine.subscribe("jobs", [&](const EventView&) { return gate.pass(); });
  engine.start();
  ringflow::Producer fill = engine.make_producer(ringflow::ProducerOptions{
      .principal = {}, .backpressure = BackpressurePolicy::fail_fast, .backpressure_timeout = {}});
  std::uint64_t accepted = 0;
  ASSERT_EQ(fill.publish(t, "k", "first"), PublishStatus::ok);
  ++accepted;
  ASSERT_TRUE(wait_until([&] { return gate.entered.load(); }, 30s)) << "handler never ran";
  while (fill.publish(t, "k", "fill") == PublishStatus::ok)
    ++accepted;

  ringflow::Producer parked = engine.make_producer();  // park, 30 s
  // This producer has its own (empty) ring: fill it too, then one more publish must park.
  while (true) {
    std::optional<PublishStatus> s;
    std::atomic<bool> returned{false};
    std::thread opener;
    // Publish on this thread; if it blocks, the gate opens from another thread after the
    // producer has started waiting for space.
    opener = std::thread([&] {
      if (!wait_until([&] { return returned.load(); }, 1s)) gate.open.store(true);
    });
    s = parked.publish(t, "k", "parked");
    returned.store(true);
    opener.join();
    ASSERT_EQ(*s, PublishStatus::ok) << "a parked publisher was not woken by freed space";
    ++accepted;
    if (gate.open.load()) break;
  }
  bounded("drain()", 60s, [&] { engine.drain(); });
  EXPECT_EQ(gate.handled.load(), accepted);
  EXPECT_EQ(engine.stats().published_count(PublishStatus::full), 1U);  // fill's last try
  bounded("stop()", 60s, [&] { engine.stop(); });
}

// A stage that throws on every event drops each one from the rest of the pipeline; the shard
// carries on, nothing reaches the subscription, and the counts add up.
TEST(FaultInjection, StageThatThrowsOnEveryEventDropsEachAndTheShardCarriesOn) {
  for (int kind = 0; kind < 3; ++kind) {
    SCOPED_TRACE(kind == 0 ? "filter" : kind == 1 ? "map" : "route");
    EngineConfig cfg = small_config();
    cfg.ring_capacity = 1024;
    cfg.batch_size = 64;
    Engine engine(cfg);
    const TopicId t = engine.add_topic("jobs");
    if (kind == 0) {
      engine.pipeline().filter(
          "boom", [](const EventView&) -> bool { throw std::runtime_error("filter"); });
    } else if (kind == 1) {
      engine.pipeline().map("boom", [](ringflow::Event&) { throw std::runtime_error("map"); });
    } else {
      engine.pipeline().route(
          "boom", [](const EventView&) -> TopicId { throw std::runtime_error("route"); });
    }
    std::atomic<std::uint64_t> delivered{0};
    engine.subscribe("jobs", [&](const EventView&) { delivered.fetch_add(1); });
    engine.start();
    ringflow::Producer p = engine.make_producer();
    std::uint64_t accepted = 0;
    for (int i = 0; i < 2000; ++i) {
      if (p.publish(t, "k" + std::to_string(i % 7), "x") == PublishStatus::ok) ++accepted;
    }
    bounded("drain()", 60s, [&] { engine.drain(); });
    const ringflow::EngineStats st = engine.stats();
    EXPECT_EQ(delivered.load(), 0U);
    EXPECT_EQ(st.stage_failures, accepted);
    EXPECT_EQ(st.appended, accepted);
    EXPECT_EQ(st.published_count(PublishStatus::ok), st.appended + st.expired + st.duplicates);
    EXPECT_EQ(st.subscriptions[0].first_deliveries, 0U);
    bounded("stop()", 60s, [&] { engine.stop(); });
  }
}

// A handler blocks for a while after stop() has begun (it sees publish() return `stopped`);
// stop() waits for it and returns once it does, with everything accepted processed.
TEST(FaultInjection, StopWaitsForAHandlerThatBlocksAndThenReturns) {
  Engine engine(small_config());
  const TopicId t = engine.add_topic("jobs");
  std::optional<ringflow::Producer> probe;
  std::atomic<bool> blocking{false};
  std::atomic<bool> saw_stop{false};
  std::atomic<bool> finished{false};
  std::atomic<std::uint64_t> handled{0};
  std::uint64_t probes_accepted = 0;  // written by the handler thread only, read after stop()
  engine.subscribe("jobs", [&](const EventView& e) {
    if (e.payload_string() == "block") {
      blocking.store(true);
      // Hold the shard until stop() has begun: then publish() refuses with `stopped`.
      const bool seen = wait_until(
          [&] {
            const PublishStatus s = probe->publish(t, "probe", "probe");
            if (s == PublishStatus::ok) ++probes_accepted;
            return s == PublishStatus::stopped;
          },
          30s);
      saw_stop.store(seen);
      std::this_thread::sleep_for(50ms);  // and block a while longer inside stop()
      finished.store(true);
    }
    handled.fetch_add(1);
  });
  engine.start();
  probe.emplace(engine.make_producer());
  ringflow::Producer p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "block"), PublishStatus::ok);
  ASSERT_TRUE(wait_until([&] { return blocking.load(); }, 30s)) << "handler never ran";
  bounded("stop() while a handler blocks", 120s, [&] { engine.stop(); });
  EXPECT_TRUE(saw_stop.load()) << "the handler never saw stop() begin";
  EXPECT_TRUE(finished.load()) << "stop() returned before the blocked handler did";
  EXPECT_EQ(handled.load(), 1 + probes_accepted) << "stop() lost accepted events";
  const ringflow::EngineStats st = engine.stats();
  EXPECT_EQ(st.published_count(PublishStatus::ok), 1 + probes_accepted);
  EXPECT_EQ(st.subscriptions[0].ok, 1 + probes_accepted);
  probe.reset();
}

// Config limits: past engine.max_producers make_producer() throws a clear error; the producers
// that exist keep working and nothing they published is lost.
TEST(FaultInjection, ProducerLimitIsAClearErrorAndLosesNothing) {
  EngineConfig cfg = small_config();
  cfg.max_producers = 2;
  cfg.ring_capacity = 256;
  Engine engine(cfg);
  const TopicId t = engine.add_topic("jobs");
  std::atomic<std::uint64_t> handled{0};
  engine.subscribe("jobs", [&](const EventView&) { handled.fetch_add(1); });
  engine.start();
  ringflow::Producer a = engine.make_producer();
  ringflow::Producer b = engine.make_producer();
  ASSERT_EQ(a.publish(t, "k", "a"), PublishStatus::ok);
  try {
    ringflow::Producer c = engine.make_producer();
    ADD_FAILURE() << "a third producer was made with max_producers = 2";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("max_producers"), std::string::npos) << e.what();
  }
  ASSERT_EQ(b.publish(t, "k", "b"), PublishStatus::ok);
  { ringflow::Producer gone = std::move(a); }  // frees a slot
  ringflow::Producer c = engine.make_producer();
  ASSERT_EQ(c.publish(t, "k", "c"), PublishStatus::ok);
  bounded("drain()", 60s, [&] { engine.drain(); });
  EXPECT_EQ(handled.load(), 3U);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

}  // namespace
