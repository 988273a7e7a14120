// The log sink: lifecycle records reach a replaced sink, the sink is fixed once started, a
// throwing sink cannot hurt the engine, and repeating records are rate limited.
#include <gtest/gtest.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "logger.hpp"
#include "ringflow/ringflow.hpp"

namespace {

using ringflow::LogLevel;
using ringflow::LogRecord;

struct Captured {
  std::mutex mu;
  std::vector<std::string> lines;  // "<level> <component>: <message>"

  ringflow::LogSink sink() {
    return [this](const LogRecord& r) {
      std::lock_guard lock(mu);
      lines.push_back(std::string(ringflow::to_string(r.level))
                          .append(" ")
                          .append(r.component)
                          .append(": ")
                          .append(r.message));
    };
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
