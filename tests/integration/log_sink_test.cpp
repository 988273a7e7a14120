// The log sink: lifecycle records reach a replaced sink, the sink is fixed once started, a
// throwing sink cannot hurt the engine, and repeating records are rate limited.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "logger.hpp"
#include "ringflow/numa_memory.hpp"
#include "ringflow/ringflow.hpp"
#include "support/bounded.hpp"

namespace {

using ringflow::LogLevel;
using ringflow::LogRecord;

struct Captured {
  std::mutex mu;
  std::vector<std::string> lines;         // "<level> <component>: <message>"
  std::vector<std::uint64_t> suppressed;  // by line

  ringflow::LogSink sink() {
    return [this](const LogRecord& r) {
      std::lock_guard lock(mu);
      lines.push_back(std::string(ringflow::to_string(r.level))
                          .append(" ")
                          .append(r.component)
                          .append(": ")
                          .append(r.message));
      suppressed.push_back(r.suppressed);
    };
  }
  /// Records whose line starts with `prefix`, and the sum of their suppressed counts.
  std::pair<std::uint64_t, std::uint64_t> count(std::string_view prefix) {
    std::lock_guard lock(mu);
    std::uint64_t n = 0;
    std::uint64_t dropped = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].rfind(prefix, 0) != 0) continue;
      ++n;
      dropped += suppressed[i];
    }
    return {n, dropped};
  }
  std::string find(std::string_view prefix) {
    std::lock_guard lock(mu);
    for (const auto& l : lines)
      if (l.rfind(prefix, 0) == 0) return l;
    return {};
  }
  bool has(std::string_view prefix) {
    std::lock_guard lock(mu);
    for (const auto& l : lines)
      if (l.rfind(prefix, 0) == 0) return true;
    return false;
  }
};

ringflow::EngineConfig small_config() {
  ringflow::EngineConfig cfg;
  cfg.shards = 1;
  cfg.pin_threads = false;
  return cfg;
}

TEST(LogSink, StartAndStopAreLoggedToTheReplacedSink) {
  Captured cap;
  ringflow::Engine engine(small_config());
  engine.set_log_sink(cap.sink());
  engine.add_topic("orders");
  engine.start();
  EXPECT_TRUE(cap.has("info engine: started: 1 shard(s)"));
  engine.stop();
  EXPECT_TRUE(cap.has("info engine: stopped"));
}

TEST(LogSink, ThePlanIsLoggedAtStart) {
  Captured cap;
  ringflow::Engine engine(small_config());
  engine.set_log_sink(cap.sink());
  engine.start();
  const std::string plan = cap.find("info plan: shard 0 on core ");
  EXPECT_FALSE(plan.empty());
  EXPECT_NE(plan.find("pinning off (placement advisory)"), std::string::npos) << plan;
  EXPECT_NE(plan.find("affinity off"), std::string::npos) << plan;  // the planner's notes
  engine.stop();
}

// A setting the process cannot honour, asked for by a config file: here memory.allocator =
// "jemalloc" where jemalloc is not in the process (when it is, there is nothing to warn about).
TEST(LogSink, AnAllocatorTheProcessLacksIsAConfigWarningWhenAFileAskedForIt) {
  ringflow::EngineConfig cfg = ringflow::parse_config(
      "[memory]\nallocator = \"jemalloc\"\n[affinity]\npin_threads = false\n");
  cfg.shards = 1;
  Captured cap;
  ringflow::Engine engine(cfg);
  engine.set_log_sink(cap.sink());
  engine.start();
  bool falls_back = false;
  for (const std::string& note : ringflow::memory_notes())
    falls_back = falls_back || note.rfind("jemalloc is not in this process", 0) == 0;
  EXPECT_EQ(cap.has("warn config: jemalloc is not in this process"), falls_back);
  engine.stop();

  // The same fallback under the default (not asked for by a file) is information.
  Captured quiet;
  ringflow::Engine plain(small_config());
  plain.set_log_sink(quiet.sink());
  plain.start();
  EXPECT_FALSE(quiet.has("warn config:"));
  EXPECT_EQ(quiet.has("info memory: jemalloc is not in this process"), falls_back);
  plain.stop();
}

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// A handler that throws on every event: a few records per second per shard, each naming the
// subscription, the topic and the exception, and every exception either logged or counted in a
// later record's `suppressed`.
TEST(LogSink, HandlerExceptionsAreLoggedRateLimitedWithSuppressedCounts) {
  Captured cap;
  ringflow::Engine engine(small_config());
  engine.set_log_sink(cap.sink());
  const ringflow::TopicId orders = engine.add_topic("orders");
  engine.subscribe("orders", [](const ringflow::EventView&) -> ringflow::Outcome {
    throw std::runtime_error("no stock");
  });
  engine.start();
  auto producer = engine.make_producer();
  const auto t0 = std::chrono::steady_clock::now();
  constexpr int kBurst = 2000;
  std::uint64_t thrown = 0;
  for (int i = 0; i < kBurst; ++i) {
    ASSERT_EQ(producer.publish(orders, "k", bytes("x")), ringflow::PublishStatus::ok);
    ++thrown;
  }
  ringflow::test::bounded("drain()", std::chrono::seconds(30), [&] { engine.drain(); });
  const std::string prefix = "error delivery: shard 0: handler of subscription 0 ('orders')";
  EXPECT_EQ(cap.find(prefix), prefix + " threw on topic 'orders': no stock");
  // One event at a time until the rate limit's window has passed and a record reports what it
  // dropped (bounded: the window is 1 s).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (cap.count(prefix).second == 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "no record reported suppressed ones";
    ASSERT_EQ(producer.publish(orders, "k", bytes("x")), ringflow::PublishStatus::ok);
    ++thrown;
    ringflow::test::bounded("drain()", std::chrono::seconds(30), [&] { engine.drain(); });
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto [records, suppressed] = cap.count(prefix);
  // Bounded: at most 5 per started second, far fewer than the events.
  EXPECT_LE(records, 5 * (static_cast<std::uint64_t>(seconds) + 1));
  EXPECT_GE(suppressed, static_cast<std::uint64_t>(kBurst) - 5);
  // Nothing lost: the last event's record reported every exception dropped before it.
  EXPECT_EQ(records + suppressed, thrown);
  EXPECT_EQ(engine.stats().handler_failures, thrown);
  engine.stop();
}

TEST(LogSink, StageExceptionsAreLoggedRateLimited) {
  Captured cap;
  ringflow::Engine engine(small_config());
  engine.set_log_sink(cap.sink());
  const ringflow::TopicId orders = engine.add_topic("orders");
  engine.pipeline().filter("check", [](const ringflow::EventView&) -> bool {
    throw std::invalid_argument("bad order");
  });
  engine.subscribe("orders", [](const ringflow::EventView&) {});
  engine.start();
  auto producer = engine.make_producer();
  constexpr int kEvents = 500;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_EQ(producer.publish(orders, "k", bytes("x")), ringflow::PublishStatus::ok);
    // One batch per event: each would be a record without the limit.
    ringflow::test::bounded("drain()", std::chrono::seconds(30), [&] { engine.drain(); });
  }
  const std::string prefix = "error pipeline: shard 0: stage 'check' threw on 1 event(s)";
  EXPECT_NE(cap.find(prefix).find(": bad order"), std::string::npos) << cap.find(prefix);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto [records, suppressed] = cap.count(prefix);
  EXPECT_GE(records, 1U);
  EXPECT_LE(records, 5 * (static_cast<std::uint64_t>(seconds) + 1));
  EXPECT_LE(records + suppressed, static_cast<std::uint64_t>(kEvents));
  EXPECT_EQ(engine.stats().stage_failures, static_cast<std::uint64_t>(kEvents));
  engine.stop();
}

TEST(LogSink, RedriveIsSummarised) {
  Captured cap;
  ringflow::Engine engine(small_config());
  engine.set_log_sink(cap.sink());
  const ringflow::TopicId orders = engine.add_topic("orders");
  engine.subscribe("orders", [](const ringflow::EventView& e) {
    return e.causation_id() == 0 ? ringflow::Outcome::fail("first time") : ringflow::Outcome::ok();
  });
  engine.start();
  auto producer = engine.make_producer();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(producer.publish(orders, "k", bytes("x")), ringflow::PublishStatus::ok);
  ringflow::test::bounded("drain()", std::chrono::seconds(30), [&] { engine.drain(); });
  EXPECT_EQ(engine.redrive(engine.dead_letter_topic(orders), {}, producer), 3U);
  EXPECT_TRUE(cap.has("info redrive: redrive of 'orders.dlq': 3 dead letter(s) republished"));
  ringflow::test::bounded("drain()", std::chrono::seconds(30), [&] { engine.drain(); });
  engine.stop();
}

TEST(LogSink, CannotBeReplacedOnceStarted) {
  ringflow::Engine engine(small_config());
  engine.set_log_sink(ringflow::null_log_sink());
  engine.start();
  EXPECT_THROW(engine.set_log_sink(ringflow::null_log_sink()), std::logic_error);
  engine.stop();
}

TEST(LogSink, AThrowingSinkDoesNotFailTheEngine) {
  ringflow::Engine engine(small_config());
  engine.set_log_sink([](const LogRecord&) { throw std::runtime_error("sink broken"); });
  engine.add_topic("orders");
  EXPECT_NO_THROW(engine.start());
  EXPECT_NO_THROW(engine.stop());
  EXPECT_EQ(engine.state(), ringflow::Engine::State::stopped);
}

TEST(LogSink, AnEmptySinkDropsEverything) {
  ringflow::Engine engine(small_config());
  engine.set_log_sink({});
  EXPECT_NO_THROW(engine.start());
  EXPECT_NO_THROW(engine.stop());
}

TEST(LogRateLimit, AdmitsABurstPerWindowAndReportsWhatItDropped) {
  ringflow::detail::LogRateLimit limit(3, 1'000'000'000);
  std::uint64_t suppressed = 99;
  std::int64_t t = 5'000'000'000;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(limit.admit(t + i, suppressed));
    EXPECT_EQ(suppressed, 0U);
  }
  for (int i = 0; i < 10; ++i)
    EXPECT_FALSE(limit.admit(t + 10 + i, suppressed));
  // The next window admits again and says how many were dropped.
  ASSERT_TRUE(limit.admit(t + 1'000'000'000, suppressed));
  EXPECT_EQ(suppressed, 10U);
  ASSERT_TRUE(limit.admit(t + 1'000'000'001, suppressed));
  EXPECT_EQ(suppressed, 0U);
}

TEST(LogRateLimit, AClockGoingBackwardsStartsANewWindow) {
  ringflow::detail::LogRateLimit limit(1, 1'000'000'000);
  std::uint64_t suppressed = 0;
  ASSERT_TRUE(limit.admit(10'000'000'000, suppressed));
  EXPECT_FALSE(limit.admit(10'000'000'001, suppressed));
  EXPECT_TRUE(limit.admit(1'000, suppressed));  // not silenced until the clock catches up
  EXPECT_EQ(suppressed, 1U);
}

TEST(StderrLogSink, FiltersByLevel) {
  testing::internal::CaptureStderr();
  const auto sink = ringflow::stderr_log_sink(LogLevel::warn);
  sink(LogRecord{LogLevel::info, "engine", "quiet", 0});
  sink(LogRecord{LogLevel::error, "delivery", "loud", 3});
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "ringflow error delivery: loud (3 similar suppressed)\n");
}

}  // namespace
