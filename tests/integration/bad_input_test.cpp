// Bad input a user can give, one test per row of the README's "Bad input catalogue" that no
// other suite covers: each checks the error the user gets and that the engine keeps working
// (or keeps its state) afterwards.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <stdexcept>
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

EngineConfig small_config() {
  EngineConfig c;
  c.partitions = 2;
  c.shards = 1;
  c.pin_threads = false;
  c.wait_strategy = ringflow::WaitStrategyKind::park;
  c.ring_capacity = 256;
  c.batch_size = 32;
  c.segment_bytes = std::size_t{256} << 10;
  c.retention_bytes = std::size_t{1} << 20;
  return c;
}

using ringflow::test::bounded;

/// `fn` throws E whose what() contains `needle`.
template <class E, class F>
void expect_throw_naming(F fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one naming '" << needle << "'";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

/// After bad calls the engine still starts, takes an event and delivers it.
void expect_still_works(Engine& engine, TopicId t, std::atomic<int>& delivered) {
  engine.start();
  ringflow::Producer p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "v"), PublishStatus::ok);
  bounded("drain()", 60s, [&] { engine.drain(); });
  EXPECT_EQ(delivered.load(), 1);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

TEST(BadInput, TopicNamesAreRefusedWithTheReasonAndNothingIsRegistered) {
  Engine engine(small_config());
  expect_throw_naming<std::invalid_argument>([&] { (void)engine.add_topic(""); }, "empty");
  expect_throw_naming<std::invalid_argument>([&] { (void)engine.add_topic(std::string(256, 'a')); },
                                             "limit is 255");
  expect_throw_naming<std::invalid_argument>(
      [&] { (void)engine.add_topic(std::string(65, 'a') + ".b"); }, "segment longer than 64");
  expect_throw_naming<std::invalid_argument>([&] { (void)engine.add_topic("orders created"); },
                                             "character ' ' not allowed");
  expect_throw_naming<std::invalid_argument>(
      [&] { (void)engine.add_topic(std::string("orders\0x", 8)); },
      "character '\\x00' not allowed");
  expect_throw_naming<std::invalid_argument>([&] { (void)engine.add_topic("orders.>"); },
                                             "wildcards only in subscriptions");
  expect_throw_naming<std::invalid_argument>([&] { (void)engine.add_topic(".orders"); },
                                             "empty segment");
  EXPECT_FALSE(engine.find_topic("").has_value());
  EXPECT_FALSE(engine.find_topic("orders created").has_value());
  const TopicId t = engine.add_topic("orders");
  std::atomic<int> delivered{0};
  engine.subscribe("orders", [&](const EventView&) { delivered.fetch_add(1); });
  expect_still_works(engine, t, delivered);
}

TEST(BadInput, MoreTopicsThanMaxTopicsIsALengthErrorAndKeepsTheRegisteredOnes) {
  EngineConfig cfg = small_config();
  cfg.max_topics = 4;  // each topic also registers its dead-letter topic
  Engine engine(cfg);
  const TopicId t = engine.add_topic("a");
  (void)engine.add_topic("b");
  EXPECT_THROW((void)engine.add_topic("c"), std::length_error);
  EXPECT_EQ(engine.topic("a"), t);
  EXPECT_FALSE(engine.find_topic("c").has_value());
  std::atomic<int> delivered{0};
  engine.subscribe("a", [&](const EventView&) { delivered.fetch_add(1); });
  expect_still_works(engine, t, delivered);
}

TEST(BadInput, BadSubscriptionsAreRefusedAndLeaveNoSubscription) {
  Engine engine(small_config());
  const TopicId t = engine.add_topic("orders.created");
  EXPECT_THROW(engine.subscribe("orders.>", ringflow::Handler{}), std::invalid_argument);
  EXPECT_THROW(engine.subscribe("orders.>.x", [](const EventView&) {}), std::invalid_argument);
  EXPECT_THROW(engine.subscribe("", [](const EventView&) {}), std::invalid_argument);
  ringflow::SubscribeOptions g;
  g.group = "workers";
  std::atomic<int> delivered{0};
  engine.subscribe(
      "orders.*", [&](const EventView&) { delivered.fetch_add(1); }, g);
  expect_throw_naming<std::invalid_argument>(
      [&] {
        engine.subscribe(
            "orders.>", [](const EventView&) {}, g);
      },
      "workers");
  expect_still_works(engine, t, delivered);
  EXPECT_EQ(engine.stats().subscriptions.size(), 1U);
}

TEST(BadInput, UnknownIdsAndPartitionsAreOutOfRange) {
  Engine engine(small_config());
  const TopicId t = engine.add_topic("a");
  EXPECT_THROW((void)engine.topic_name(TopicId{99}), std::out_of_range);
  EXPECT_THROW((void)engine.topic_name(TopicId{}), std::out_of_range);
  EXPECT_THROW((void)engine.dead_letter_topic(TopicId{99}), std::out_of_range);
  EXPECT_THROW((void)engine.log(2), std::out_of_range);
  EXPECT_THROW((void)engine.reader(UINT32_MAX), std::out_of_range);
  EXPECT_THROW((void)engine.topic("b"), std::out_of_range);
  std::atomic<int> delivered{0};
  engine.subscribe("a", [&](const EventView&) { delivered.fetch_add(1); });
  expect_still_works(engine, t, delivered);
}

TEST(BadInput, AnEmptyProducerHandleReturnsStoppedAndIsCountedNowhere) {
  Engine engine(small_config());
  const TopicId t = engine.add_topic("a");
  engine.start();
  ringflow::Producer none;
  EXPECT_EQ(none.publish(t, "k", "v"), PublishStatus::stopped);
  ringflow::Producer p = engine.make_producer();
  ringflow::Producer moved = std::move(p);
  EXPECT_EQ(p.publish(t, "k", "v"), PublishStatus::stopped);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved.publish(t, "k", "v"), PublishStatus::ok);
  bounded("drain()", 60s, [&] { engine.drain(); });
  EXPECT_EQ(engine.stats().appended, 1U);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

TEST(BadInput, BadGrantsAndRedriveOfAnOrdinaryTopicAreRefused) {
  Engine engine(small_config());
  const TopicId t = engine.add_topic("a");
  ringflow::Principal bad;
  bad.name = "svc";
  bad.publish = {"a..b"};
  EXPECT_THROW((void)engine.make_producer(bad), std::invalid_argument);
  std::atomic<int> delivered{0};
  engine.subscribe("a", [&](const EventView&) { delivered.fetch_add(1); });
  engine.start();
  ringflow::Producer p = engine.make_producer();
  EXPECT_THROW((void)engine.redrive(t, {}, p), std::invalid_argument);
  EXPECT_EQ(p.publish(engine.dead_letter_topic(t), "k", "v"), PublishStatus::unauthorized);
  ASSERT_EQ(p.publish(t, "k", "v"), PublishStatus::ok);
  bounded("drain()", 60s, [&] { engine.drain(); });
  EXPECT_EQ(delivered.load(), 1);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

TEST(BadInput, RepliesToNonRequestsAndOversizedRepliesAreRefused) {
  EngineConfig cfg = small_config();
  cfg.max_payload_bytes = 16;
  Engine engine(cfg);
  const TopicId t = engine.add_topic("a");
  std::atomic<int> not_a_request{0};
  std::atomic<int> too_large{0};
  engine.subscribe("a", [&](const EventView& e) {
    if (!e.is_request()) {
      if (engine.reply(e, "fine") == ringflow::ReplyStatus::not_a_request)
        not_a_request.fetch_add(1);
      return Outcome::ok();
    }
    if (engine.reply(e, std::string(17, 'x')) == ringflow::ReplyStatus::too_large)
      too_large.fetch_add(1);
    (void)engine.reply(e, "fine");  // the request still gets its answer
    return Outcome::ok();
  });
  engine.start();
  ringflow::Producer p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "v"), PublishStatus::ok);
  ringflow::ReplyHandle h = p.request(t, "k", "q", ringflow::now_ns() + 10'000'000'000);
  bounded("drain()", 60s, [&] { engine.drain(); });
  EXPECT_EQ(not_a_request.load(), 1);
  EXPECT_EQ(too_large.load(), 1);
  EXPECT_EQ(h.poll(), ringflow::RequestStatus::replied);
  bounded("stop()", 60s, [&] { engine.stop(); });
}

TEST(BadInput, ConfigTextThatIsNotTomlIsAConfigErrorNamingTheLine) {
  // Binary garbage, NUL bytes, a UTF-8 BOM followed by nonsense: always ConfigError.
  for (const std::string& text :
       {std::string("\x00\x01\x02\xff", 4), std::string("[engine]\npartitions = \x00 4\n", 26),
        std::string("\xef\xbb\xbf[engine\n"),
        std::string("[engine]\npartitions = 99999999999999999999\n")}) {
    try {
      (void)ringflow::parse_config(text, "bad.toml");
      ADD_FAILURE() << "parsed: " << text;
    } catch (const ringflow::ConfigError& e) {
      ASSERT_FALSE(e.issues().empty());
      EXPECT_EQ(e.issues().front().source, "bad.toml");
      EXPECT_NE(std::string(e.what()).find("bad.toml"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
