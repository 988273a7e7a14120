// The handler watchdog (watchdog.handler_ms): a handler or stage call blocked past the limit is
// reported through the log sink (shard, subscription or stage, topic, time), repeatedly while it
// stays blocked, and counted once in stats() and metrics(); the other shards keep serving;
// stop() waits for the call and the records say so; with the watchdog off nothing is reported.
// Every wait is bounded: a hang fails the test with a message.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/ringflow.hpp"
#include "support/bounded.hpp"

namespace {

using namespace std::chrono_literals;
using ringflow::Engine;
using ringflow::EngineConfig;
using ringflow::EventView;
using ringflow::LogLevel;
using ringflow::LogRecord;
using ringflow::Metric;
using ringflow::Outcome;
using ringflow::PublishStatus;
using ringflow::TopicId;
using ringflow::test::bounded;

/// Collects the watchdog's records.
struct Records {
  std::mutex mu;
  std::vector<std::string> lines;
  std::atomic<std::size_t> count{0};

  ringflow::LogSink sink() {
    return [this](const LogRecord& r) {
      if (r.component != "watchdog") return;
      std::lock_guard lock(mu);
      lines.push_back(std::string(ringflow::to_string(r.level)) + " " + std::string(r.message));
      count.store(lines.size());
    };
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mu);
    return lines;
  }
  bool any_contains(std::string_view text) {
    std::lock_guard lock(mu);
    for (const auto& l : lines)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }
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

/// Holds a call until opened (60 s at most, then fails the test instead of hanging).
struct Gate {
  std::atomic<bool> open{false};
  std::atomic<bool> entered{false};
  void pass() {
    entered.store(true);
    if (!wait_until([this] { return open.load(); }, 60s)) ADD_FAILURE() << "gate never opened";
  }
};

EngineConfig two_shards(std::chrono::milliseconds watchdog) {
  EngineConfig c;
  c.partitions = 2;
  c.shards = 2;
  c.pin_threads = false;
  c.wait_strategy = ringflow::WaitStrategyKind::park;
  c.ring_capacity = 1024;
  c.batch_size = 16;
  c.segment_bytes = std::size_t{256} << 10;
  c.retention_bytes = std::size_t{2} << 20;
  c.handler_watchdog = watchdog;
  return c;
}

/// A key whose partition belongs to `shard` (partition p is owned by shard p % shards).
std::string key_on_shard(std::uint32_t shard, const EngineConfig& c) {
  for (int i = 0;; ++i) {
    std::string k = "key-" + std::to_string(i);
    if (ringflow::partition_of(k, c.partitions) % c.shards == shard) return k;
  }
}

// A handler blocked on shard 0 is reported, named, repeated and counted once, while shard 1
// keeps delivering; stop() waits for it (and the watchdog says so), and returns once released.
TEST(Watchdog, BlockedHandlerIsReportedCountedAndStopWaitsForIt) {
  const EngineConfig cfg = two_shards(50ms);
  Engine engine(cfg);
  Records records;
  engine.set_log_sink(records.sink());
  const TopicId t = engine.add_topic("jobs.slow");
  Gate gate;
  std::atomic<std::uint64_t> others{0};
  engine.subscribe("jobs.>", [&](const EventView& e) {
    if (e.payload_string() == "block") {
      gate.pass();
    } else {
      others.fetch_add(1);
    }
    return Outcome::ok();
  });
  engine.start();
  ringflow::Producer p = engine.make_producer();
  const std::string blocked_key = key_on_shard(0, cfg);
  const std::string free_key = key_on_shard(1, cfg);
  ASSERT_EQ(p.publish(t, blocked_key, "block"), PublishStatus::ok);
  ASSERT_TRUE(wait_until([&] { return gate.entered.load(); }, 30s)) << "handler never ran";

  ASSERT_TRUE(wait_until([&] { return records.count.load() >= 1; }, 30s))
      << "no watchdog record for a handler blocked past 50 ms";
  // Shard 1 serves on meanwhile.
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(p.publish(t, free_key, "free"), PublishStatus::ok);
  ASSERT_TRUE(wait_until([&] { return others.load() == 100; }, 30s))
      << "the other shard stopped serving: " << others.load();
  // Repeated while it stays blocked, but counted once.
  ASSERT_TRUE(wait_until([&] { return records.count.load() >= 2; }, 30s))
      << "the record was not repeated while the handler stayed blocked";
  const std::string first = records.snapshot().front();
  EXPECT_EQ(first.rfind("warn ", 0), 0U) << first;
  EXPECT_NE(first.find("shard 0"), std::string::npos) << first;
  EXPECT_NE(first.find("subscription 0 ('jobs.>')"), std::string::npos) << first;
  EXPECT_NE(first.find("topic 'jobs.slow'"), std::string::npos) << first;
  EXPECT_NE(first.find("blocked for "), std::string::npos) << first;
  EXPECT_EQ(engine.stats().handler_stalls, 1U);
  const ringflow::MetricsSnapshot m = engine.metrics();
  EXPECT_EQ(m.value(Metric::handler_stalls, {"0"}), 1U);
  EXPECT_EQ(m.value(Metric::handler_stalls, {"1"}), 0U);

  // stop() waits for the handler; the watchdog says so; released, stop() returns.
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    bounded("stop() after the handler is released", 120s, [&] { engine.stop(); });
    stopped.store(true);
  });
  const bool said = wait_until([&] { return records.any_contains("stop() is waiting"); }, 30s);
  EXPECT_FALSE(stopped.load()) << "stop() returned while a handler was still blocked";
  gate.open.store(true);
  stopper.join();
  EXPECT_TRUE(said) << "no record said that stop() waits for the blocked handler";
  EXPECT_TRUE(stopped.load());
  const ringflow::EngineStats st = engine.stats();
  EXPECT_EQ(st.handler_stalls, 1U);
  EXPECT_EQ(st.subscriptions[0].ok, 101U);
  EXPECT_EQ(st.published_count(PublishStatus::ok), st.appended + st.expired + st.duplicates);
}

// A stage that blocks is named as the stage.
TEST(Watchdog, BlockedStageIsReportedByName) {
  EngineConfig cfg = two_shards(50ms);
  cfg.partitions = 1;
  cfg.shards = 1;
  Engine engine(cfg);
  Records records;
  engine.set_log_sink(records.sink());
  const TopicId t = engine.add_topic("jobs");
  Gate gate;
  engine.pipeline().filter("slow-filter", [&](const EventView&) {
    gate.pass();
    return true;
  });
  std::atomic<std::uint64_t> delivered{0};
  engine.subscribe("jobs", [&](const EventView&) { delivered.fetch_add(1); });
  engine.start();
  ringflow::Producer p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "x"), PublishStatus::ok);
  ASSERT_TRUE(wait_until([&] { return records.count.load() >= 1; }, 30s))
      << "no watchdog record for a stage blocked past 50 ms";
  const std::string first = records.snapshot().front();
  EXPECT_NE(first.find("stage 'slow-filter'"), std::string::npos) << first;
  EXPECT_NE(first.find("topic 'jobs'"), std::string::npos) << first;
  gate.open.store(true);
  bounded("drain()", 60s, [&] { engine.drain(); });
  EXPECT_EQ(delivered.load(), 1U);
  EXPECT_EQ(engine.stats().handler_stalls, 1U);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

// Many short calls add up to far more than the limit, but none is blocked: nothing reported.
TEST(Watchdog, ShortCallsAreNotReported) {
  EngineConfig cfg = two_shards(1000ms);
  Engine engine(cfg);
  Records records;
  engine.set_log_sink(records.sink());
  const TopicId t = engine.add_topic("jobs");
  engine.subscribe("jobs", [&](const EventView&) { std::this_thread::sleep_for(2ms); });
  engine.start();
  ringflow::Producer p = engine.make_producer();
  const std::string key = key_on_shard(0, cfg);
  for (int i = 0; i < 800; ++i)
    ASSERT_EQ(p.publish(t, key, "x"), PublishStatus::ok);  // >= 1.6 s of calls on one shard
  bounded("drain()", 120s, [&] { engine.drain(); });
  bounded("stop()", 60s, [&] { engine.stop(); });
  EXPECT_EQ(records.count.load(), 0U) << records.snapshot().front();
  EXPECT_EQ(engine.stats().handler_stalls, 0U);
}

// watchdog.handler_ms = 0: no watchdog; a long call is not reported nor counted.
TEST(Watchdog, OffReportsNothing) {
  Engine engine(two_shards(0ms));
  Records records;
  engine.set_log_sink(records.sink());
  const TopicId t = engine.add_topic("jobs");
  engine.subscribe("jobs", [&](const EventView&) { std::this_thread::sleep_for(300ms); });
  engine.start();
  ringflow::Producer p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "x"), PublishStatus::ok);
  bounded("drain()", 60s, [&] { engine.drain(); });
  bounded("stop()", 60s, [&] { engine.stop(); });
  EXPECT_EQ(records.count.load(), 0U);
  EXPECT_EQ(engine.stats().handler_stalls, 0U);
  EXPECT_EQ(engine.metrics().total(Metric::handler_stalls), 0U);
}

// The key is in the config file, checked like the others.
TEST(Watchdog, ConfigKeyIsParsedAndChecked) {
  EXPECT_EQ(ringflow::EngineConfig{}.handler_watchdog, 2000ms);
  EXPECT_EQ(ringflow::parse_config("[watchdog]\nhandler_ms = 250\n").handler_watchdog, 250ms);
  EXPECT_EQ(ringflow::parse_config("[watchdog]\nhandler_ms = 0\n").handler_watchdog, 0ms);
  EXPECT_THROW((void)ringflow::parse_config("[watchdog]\nhandler_ms = -1\n"),
               ringflow::ConfigError);
  EngineConfig c;
  c.handler_watchdog = std::chrono::hours(2);
  const auto issues = ringflow::check_config(c, ringflow::Topology::machine());
  ASSERT_FALSE(issues.empty());
  EXPECT_EQ(issues.front().key, "watchdog.handler_ms");
  EXPECT_NE(issues.front().message.find("allowed 0..3600000"), std::string::npos)
      << issues.front().to_string();
}

}  // namespace
