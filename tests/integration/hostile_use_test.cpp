// Regressions of defects found by using the engine as a hostile user would: handlers that call
// back into the engine while it stops, failure handling under small retention, stages that
// route nowhere, names at their limits, drain() under steady retrying load, time order in the
// log, accounting of dead-letter subscriptions, producers handed between threads, and the stop
// barrier's fallback. Every wait is bounded: a hang fails the test with a message.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/detail/membarrier.hpp"
#include "ringflow/ringflow.hpp"
#include "support/bounded.hpp"

namespace {

using namespace std::chrono_literals;
using ringflow::Engine;
using ringflow::EngineConfig;
using ringflow::Event;
using ringflow::EventView;
using ringflow::Outcome;
using ringflow::PublishStatus;
using ringflow::SubscribeOptions;
using ringflow::TopicId;

EngineConfig small_config(std::uint32_t partitions = 4, std::uint32_t shards = 1) {
  EngineConfig c;
  c.partitions = partitions;
  c.shards = shards;
  c.pin_threads = false;
  c.wait_strategy = ringflow::WaitStrategyKind::park;
  c.ring_capacity = 1024;
  c.batch_size = 64;
  c.segment_bytes = std::size_t{256} << 10;
  c.retention_bytes = std::size_t{2} << 20;
  return c;
}

using ringflow::test::bounded;

/// Publishes on its own thread until told to stop; counts what was accepted.
class Publisher {
 public:
  Publisher(Engine& engine, TopicId topic) : producer_(engine.make_producer()) {
    thread_ = std::thread([this, topic] {
      std::uint64_t i = 0;
      while (!stop_.load(std::memory_order_relaxed)) {
        const std::string key = std::string("k").append(std::to_string(i % 64));
        const PublishStatus s = producer_.publish(topic, key, "payload");
        if (s == PublishStatus::ok) {
          accepted_.fetch_add(1, std::memory_order_relaxed);
          ++i;
        } else if (s == PublishStatus::stopped) {
          break;
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  ~Publisher() { finish(); }
  void finish() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::uint64_t accepted() const { return accepted_.load(); }

 private:
  ringflow::Producer producer_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> accepted_{0};
  std::thread thread_;
};

// ---- 1. handlers that call the engine while it stops

TEST(HostileUse, StopDoesNotDeadlockWhenHandlersCallTheEngine) {
  Engine engine(small_config());
  const auto t = engine.add_topic("orders.created");
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> refused{0};
  engine.subscribe("orders.created", ringflow::Handler([&](const EventView& e) {
                     // Every read-only lookup, a producer made and destroyed, and the two calls a
                     // handler may not make (they would wait for themselves).
                     EXPECT_EQ(engine.topic_name(e.topic()), "orders.created");
                     EXPECT_EQ(engine.topic("orders.created"), e.topic());
                     EXPECT_TRUE(engine.find_topic("orders.created.dlq").has_value());
                     EXPECT_TRUE(engine.dead_letter_topic(e.topic()).valid());
                     (void)engine.stats();
                     if (e.offset() % 16 == 0) {
                       ringflow::Producer p = engine.make_producer();
                       ringflow::Producer moved;
                       moved = std::move(p);  // move-assign, then destroy: returns the rings
                     }
                     try {
                       engine.drain();
                     } catch (const std::logic_error&) {
                       refused.fetch_add(1);
                     }
                     calls.fetch_add(1);
                     return Outcome::ok();
                   }));
  engine.start();
  Publisher pub(engine, t);
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (calls.load() < 2000 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  ASSERT_GE(calls.load(), 2000U) << "handlers did not run within 10 s";
  bounded("stop() with handlers calling the engine", 30s, [&] { engine.stop(); });
  pub.finish();
  EXPECT_EQ(calls.load(), pub.accepted()) << "every accepted event is handled once";
  EXPECT_EQ(refused.load(), calls.load()) << "drain() from a handler throws logic_error";
}

TEST(HostileUse, StopAndDrainFromAHandlerThrowInsteadOfHanging) {
  Engine engine(small_config());
  const auto t = engine.add_topic("jobs");
  std::atomic<int> stop_refused{0};
  engine.subscribe("jobs", ringflow::Handler([&](const EventView&) {
                     try {
                       engine.stop();
                     } catch (const std::logic_error&) {
                       stop_refused.fetch_add(1);
                     }
                     return Outcome::ok();
                   }));
  engine.start();
  auto p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "v"), PublishStatus::ok);
  bounded("drain()", 30s, [&] { engine.drain(); });
  EXPECT_EQ(stop_refused.load(), 1);
  EXPECT_EQ(engine.state(), Engine::State::running);
  bounded("stop()", 30s, [&] { engine.stop(); });
}

TEST(HostileUse, ConcurrentStopCallsAllReturnAfterTheShardsLeft) {
  Engine engine(small_config(4, 2));
  const auto t = engine.add_topic("jobs");
  std::atomic<std::uint64_t> calls{0};
  engine.subscribe("jobs", [&](const EventView&) { calls.fetch_add(1); });
  engine.start();
  Publisher pub(engine, t);
  bounded("three concurrent stop() calls", 30s, [&] {
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i)
      ts.emplace_back([&] {
        engine.stop();
        EXPECT_EQ(engine.state(), Engine::State::stopped);
      });
    for (auto& th : ts)
      th.join();
  });
  pub.finish();
  EXPECT_EQ(calls.load(), pub.accepted());
}

// ---- 2. failure handling when dead letters wrap the log

TEST(HostileUse, FailingSubscriptionsUnderSmallRetentionNeverReadOverwrittenRecords) {
  for (const std::uint32_t subs : {3U, 8U}) {
    EngineConfig c = small_config(1);
    c.batch_size = 16;
    c.segment_bytes =
        16 * ringflow::PartitionLog::kMaxRecordBytes;  // the smallest for a batch of 16
    c.retention_bytes = 2 * c.segment_bytes;
    c.retry_capacity = 64;
    Engine engine(c);
    const auto t = engine.add_topic("orders");
    for (std::uint32_t s = 0; s < subs; ++s) {
      SubscribeOptions o;
      o.max_attempts = s % 2 == 0 ? 1 : 2;  // half dead-letter at once, half retry first
      o.retry_backoff = 10us;
      o.retry_backoff_max = 100us;
      engine.subscribe("orders",
                       ringflow::Handler([](const EventView&) { return Outcome::retry(); }), o);
    }
    std::mutex mu;
    std::vector<std::string> bad;
    std::atomic<std::uint64_t> dead{0};
    engine.subscribe("orders.dlq", [&](const EventView& e) {
      const std::string expect = std::string("payload-").append(e.key());
      if (e.dead_letter() == nullptr || e.payload_string() != expect ||
          e.dead_letter()->origin_topic != t.value) {
        std::lock_guard lock(mu);
        bad.push_back(std::string(e.key()) + " / " + std::string(e.payload_string()));
      }
      dead.fetch_add(1);
    });
    engine.start();
    auto p = engine.make_producer();
    constexpr std::uint64_t kEvents = 2000;
    for (std::uint64_t i = 0; i < kEvents; ++i) {
      const std::string key = std::string("key").append(std::to_string(i));
      const std::string payload = std::string("payload-").append(key);
      PublishStatus s = PublishStatus::full;
      for (int tries = 0; tries < 1'000'000 && s == PublishStatus::full; ++tries) {
        s = p.publish(t, key, payload);
        if (s == PublishStatus::full) std::this_thread::yield();
      }
      ASSERT_EQ(s, PublishStatus::ok);
    }
    bounded("drain()", 60s, [&] { engine.drain(); });
    const auto st = engine.stats();
    EXPECT_EQ(dead.load(), kEvents * subs) << subs << " subscriptions";
    EXPECT_TRUE(bad.empty()) << bad.size() << " corrupt dead letters, first: " << bad.front();
    for (std::uint32_t s = 0; s < subs; ++s) {
      EXPECT_EQ(st.subscriptions[s].first_deliveries, kEvents);
      EXPECT_EQ(st.subscriptions[s].dead_lettered, kEvents);
    }
    EXPECT_GT(st.evicted_segments, 0U) << "the test must make retention reuse segments";
  }
}

// ---- 3. a map stage that re-targets an event at a topic that does not exist

TEST(HostileUse, MapStageToAnUnknownOrDeadLetterTopicIsAStageFailure) {
  Engine engine(small_config());
  const auto t = engine.add_topic("in");
  const auto dlq = engine.dead_letter_topic(t);
  engine.pipeline().map("retarget", [&](Event& e) {
    const auto k = e.key();
    if (k == "none") e.set_topic(TopicId{});
    if (k == "far") e.set_topic(TopicId{12345});
    if (k == "dlq") e.set_topic(dlq);
  });
  std::atomic<int> handled{0};
  std::atomic<int> dead{0};
  engine.subscribe("in", [&](const EventView&) { handled.fetch_add(1); });
  engine.subscribe("in.dlq", [&](const EventView&) { dead.fetch_add(1); });
  engine.start();
  auto p = engine.make_producer();
  for (const char* k : {"none", "far", "dlq", "fine"})
    ASSERT_EQ(p.publish(t, k, "x"), PublishStatus::ok);
  bounded("drain()", 30s, [&] { engine.drain(); });
  const auto st = engine.stats();
  EXPECT_EQ(st.stage_failures, 3U);
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(dead.load(), 0);
}

TEST(HostileUse, RouteStageToADeadLetterTopicIsAStageFailure) {
  Engine engine(small_config());
  const auto t = engine.add_topic("in");
  const auto dlq = engine.dead_letter_topic(t);
  engine.pipeline().route("to_dlq", [&](const EventView&) { return dlq; });
  std::atomic<int> dead{0};
  engine.subscribe("in.dlq", [&](const EventView& e) {
    EXPECT_NE(e.dead_letter(), nullptr);
    dead.fetch_add(1);
  });
  engine.start();
  auto p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "x"), PublishStatus::ok);
  bounded("drain()", 30s, [&] { engine.drain(); });
  EXPECT_EQ(engine.stats().stage_failures, 1U);
  EXPECT_EQ(dead.load(), 0);
}

// ---- 4, 5, 10. topic names

TEST(HostileUse, TopicNameViewsStayValidWhileTopicsAreAdded) {
  EngineConfig c = small_config();
  c.max_topics = 1024;
  Engine engine(c);
  const auto first = engine.add_topic("a");  // short: kept inline in std::string (SSO)
  const std::string_view view = engine.topic_name(first);
  const std::string_view dlq_view = engine.topic_name(engine.dead_letter_topic(first));
  for (int i = 0; i < 300; ++i)
    (void)engine.add_topic(std::string("t").append(std::to_string(i)));
  EXPECT_EQ(view, "a");
  EXPECT_EQ(dlq_view, "a.dlq");
}

TEST(HostileUse, DeadLetterTopicsCannotBeRegisteredOrPublishedTo) {
  Engine engine(small_config());
  const auto t = engine.add_topic("orders.created");
  try {
    (void)engine.add_topic("orders.created.dlq");
    ADD_FAILURE() << "a dead-letter topic's name was accepted as a new topic";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dead-letter topic"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)engine.add_topic("orders.created"), std::invalid_argument);
  // An ordinary topic cannot become another topic's dead-letter topic afterwards.
  (void)engine.add_topic("audit.dlq");
  EXPECT_THROW((void)engine.add_topic("audit"), std::invalid_argument);
  // A dead-letter topic shared on purpose is fine.
  ringflow::TopicOptions shared;
  shared.dead_letter_topic = "orders.created.dlq";
  const auto other = engine.add_topic("orders.updated", shared);
  EXPECT_EQ(engine.dead_letter_topic(other), engine.dead_letter_topic(t));

  std::atomic<int> bad{0};
  engine.subscribe("orders.created.dlq", [&](const EventView& e) {
    if (e.dead_letter() == nullptr) bad.fetch_add(1);
  });
  engine.start();
  auto p = engine.make_producer();
  EXPECT_EQ(p.publish(engine.dead_letter_topic(t), "k", "v"), PublishStatus::unauthorized);
  bounded("drain()", 30s, [&] { engine.drain(); });
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(engine.stats().published_count(PublishStatus::unauthorized), 1U);
}

TEST(HostileUse, EveryNameUpToTheDocumentedLimitIsAccepted) {
  // 4 segments of 63 characters and 3 dots: 255 bytes, the documented limit.
  std::string name;
  for (int s = 0; s < 4; ++s) {
    if (s != 0) name += '.';
    name += std::string(63, static_cast<char>('a' + s));
  }
  ASSERT_EQ(name.size(), ringflow::kMaxTopicNameBytes);
  Engine engine(small_config());
  const auto t = engine.add_topic(name);
  EXPECT_EQ(engine.topic_name(engine.dead_letter_topic(t)), name + ".dlq");
  EXPECT_THROW((void)engine.add_topic(name + "x"), std::invalid_argument);
  std::atomic<int> dead{0};
  engine.subscribe(name, ringflow::Handler([](const EventView&) { return Outcome::fail("no"); }));
  engine.subscribe(name + ".dlq", [&](const EventView&) { dead.fetch_add(1); });
  engine.start();
  auto p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "v"), PublishStatus::ok);
  bounded("drain()", 30s, [&] { engine.drain(); });
  EXPECT_EQ(dead.load(), 1);
}

// ---- 6. drain() under steady load with retrying handlers

TEST(HostileUse, DrainReturnsUnderSteadyLoadWhileHandlersRetry) {
  Engine engine(small_config(4, 2));
  const auto t = engine.add_topic("jobs");
  SubscribeOptions o;
  o.max_attempts = 4;
  o.retry_backoff = 200us;
  o.retry_backoff_max = 1ms;
  engine.subscribe("jobs", ringflow::Handler([](const EventView&) { return Outcome::retry(); }), o);
  engine.start();
  Publisher pub(engine, t);
  // Retries are always pending while the publisher runs; each drain() must still return once
  // the events accepted before it are done (each ends as a dead letter after its retries).
  for (int i = 0; i < 5; ++i) {
    const std::uint64_t seen = pub.accepted();
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (pub.accepted() < seen + 100 && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    ASSERT_GE(pub.accepted(), seen + 100) << "the publisher stalled";
    const std::uint64_t before = pub.accepted();
    bounded("drain() under steady retrying load", 30s, [&] { engine.drain(); });
    EXPECT_GE(engine.stats().subscriptions[0].dead_lettered, before)
        << "drain() returned before the events accepted before it were done";
  }
  pub.finish();
  bounded("stop()", 30s, [&] { engine.stop(); });
  const auto st = engine.stats();
  EXPECT_EQ(st.subscriptions[0].first_deliveries, pub.accepted());
  EXPECT_EQ(st.subscriptions[0].dead_lettered, pub.accepted());
}

TEST(HostileUse, DrainWaitsForTheRetriesOfEarlierEvents) {
  Engine engine(small_config());
  const auto t = engine.add_topic("jobs");
  std::atomic<int> done{0};
  SubscribeOptions o;
  o.max_attempts = 3;
  o.retry_backoff = 2ms;
  o.retry_backoff_max = 5ms;
  engine.subscribe("jobs", ringflow::Handler([&](const EventView& e) {
                     if (e.attempt() < 3) return Outcome::retry();
                     done.fetch_add(1);
                     return Outcome::ok();
                   }),
                   o);
  engine.start();
  auto p = engine.make_producer();
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(p.publish(t, std::string("k").append(std::to_string(i)), "v"), PublishStatus::ok);
  bounded("drain()", 30s, [&] { engine.drain(); });
  EXPECT_EQ(done.load(), 100) << "drain() returned before the retries of its events ended";
}

// ---- 7. ingest time order within a partition

TEST(HostileUse, IngestTimeNeverGoesBackwardsWhenEventsExpireMidBatch) {
  Engine engine(small_config(1));
  const auto t = engine.add_topic("ticks");
  engine.subscribe("ticks", [](const EventView&) {});
  engine.start();
  auto p = engine.make_producer();
  std::uint64_t accepted = 0;
  for (int i = 0; i < 4000; ++i) {
    ringflow::PublishOptions o;
    if (i % 3 == 0) {
      // Published "long ago" with a deadline just after: accepted, but expired at ingest.
      o.timestamp_ns = ringflow::now_ns() - 1'000'000'000;
      o.deadline_ns = o.timestamp_ns + 1;
    }
    if (p.publish(t, "k", "v", o) == PublishStatus::ok) ++accepted;
  }
  bounded("drain()", 30s, [&] { engine.drain(); });
  const auto st = engine.stats();
  ASSERT_GT(st.expired, 0U);
  auto r = engine.reader(0);
  ringflow::StoredEvent e;
  std::int64_t last = INT64_MIN;
  std::uint64_t records = 0;
  std::uint64_t backwards = 0;
  for (auto s = r.next(e); s != ringflow::ReadStatus::end; s = r.next(e)) {
    ASSERT_EQ(s, ringflow::ReadStatus::ok);
    if (e.ingest_ns < last) ++backwards;
    last = e.ingest_ns;
    ++records;
  }
  EXPECT_EQ(records, accepted) << "each event is stored once: in its topic or as a dead letter";
  EXPECT_EQ(backwards, 0U);
}

// ---- 8. the per-subscription law for dead-letter subscriptions

TEST(HostileUse, EverySubscriptionKeepsItsLawDeadLetterSubscriptionsIncluded) {
  Engine engine(small_config());
  const auto t = engine.add_topic("pay");
  engine.subscribe("pay", ringflow::Handler([](const EventView& e) {
                     return e.key() == "bad" ? Outcome::fail("declined") : Outcome::ok();
                   }));
  engine.subscribe("pay.dlq", ringflow::Handler([](const EventView& e) {
                     if (e.dead_letter() == nullptr) return Outcome::fail("not a dead letter");
                     return e.payload_string() == "boom" ? Outcome::fail("dlq handler fails")
                                                         : Outcome::ok();
                   }));
  engine.start();
  auto p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "bad", "boom"), PublishStatus::ok);
  ASSERT_EQ(p.publish(t, "bad", "fine"), PublishStatus::ok);
  ASSERT_EQ(p.publish(t, "good", "x"), PublishStatus::ok);
  bounded("drain()", 30s, [&] { engine.drain(); });
  const auto st = engine.stats();
  for (const auto& s : st.subscriptions) {
    EXPECT_EQ(s.first_deliveries, s.ok + s.dead_lettered) << s.pattern;
  }
  EXPECT_EQ(st.subscriptions[1].first_deliveries, 2U);
  EXPECT_EQ(st.subscriptions[1].dead_lettered, 1U);
  EXPECT_EQ(st.dead_letter_failures, 1U);
  EXPECT_EQ(st.dead_letters_total(), 2U);  // the DLQ handler's failure is no new dead letter
  // The engine's law, duplicates included.
  EXPECT_EQ(st.published_count(PublishStatus::ok), st.appended + st.expired + st.duplicates);
}

// ---- 9. a producer handed to another thread

TEST(HostileUse, AProducerMovedToAnotherThreadPublishesThere) {
  Engine engine(small_config());
  const auto t = engine.add_topic("jobs");
  std::atomic<int> calls{0};
  engine.subscribe("jobs", [&](const EventView&) { calls.fetch_add(1); });
  engine.start();
  ringflow::Producer p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "here"), PublishStatus::ok);  // this thread owns it now
  std::thread other([q = std::move(p), t]() mutable {
    EXPECT_EQ(q.publish(t, "k", "there"), PublishStatus::ok);
    ringflow::Producer r;
    r = std::move(q);  // and a move-assignment on the new thread
    EXPECT_EQ(r.publish(t, "k", "again"), PublishStatus::ok);
  });
  other.join();
  bounded("drain()", 30s, [&] { engine.drain(); });
  EXPECT_EQ(calls.load(), 3);
}

// ---- 11. the stop barrier when membarrier fails after it had worked

TEST(HostileUse, StopLosesNothingWhenMembarrierFailsMidRun) {
  Engine engine(small_config(4, 2));
  const auto t = engine.add_topic("jobs");
  std::atomic<std::uint64_t> calls{0};
  engine.subscribe("jobs", [&](const EventView&) { calls.fetch_add(1); });
  engine.start();
  const std::uint64_t fallbacks = ringflow::detail::heavy_barrier_fallbacks();
  ringflow::detail::fail_membarrier_for_testing(true);
  {
    Publisher a(engine, t);
    Publisher b(engine, t);
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (calls.load() < 1000 && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    bounded("stop() with membarrier failing", 30s, [&] { engine.stop(); });
    a.finish();
    b.finish();
    EXPECT_EQ(calls.load(), a.accepted() + b.accepted());
  }
  ringflow::detail::fail_membarrier_for_testing(false);
  if (ringflow::detail::g_asymmetric_barrier) {
    EXPECT_GT(ringflow::detail::heavy_barrier_fallbacks(), fallbacks);
  }
}

// ---- 12. overflow at the edges of ids and delays

TEST(HostileUse, EventIdsSaturateInsteadOfWrappingToZero) {
  using ringflow::detail::make_event_id;
  constexpr std::uint64_t kLast = ringflow::detail::kMaxEventIdOffset;
  EXPECT_EQ(make_event_id(0, 7), (std::uint64_t{1} << 16) | 7);
  EXPECT_LT(make_event_id(kLast - 1, 7), make_event_id(kLast, 7));
  for (const std::uint64_t off :
       {kLast, kLast + 1, std::uint64_t{1} << 48, UINT64_MAX - 1, UINT64_MAX}) {
    const std::uint64_t id = make_event_id(off, 0);
    EXPECT_NE(id, 0U) << off;
    EXPECT_EQ(id, make_event_id(kLast, 0)) << off;
    EXPECT_EQ(make_event_id(off, 65535) & 0xFFFFU, 65535U);
  }
}

TEST(HostileUse, HugeRetryDelaysAreBoundedByTheBackoffMaximum) {
  Engine engine(small_config());
  const auto t = engine.add_topic("jobs");
  SubscribeOptions o;
  o.max_attempts = 3;
  o.retry_backoff = std::chrono::nanoseconds(1);
  o.retry_backoff_max = 2ms;
  std::atomic<int> done{0};
  engine.subscribe("jobs", ringflow::Handler([&](const EventView& e) {
                     if (e.attempt() < 3) return Outcome::retry(std::chrono::nanoseconds::max());
                     done.fetch_add(1);
                     return Outcome::ok();
                   }),
                   o);
  engine.start();
  auto p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "v"), PublishStatus::ok);
  bounded("drain() after Outcome::retry(nanoseconds::max())", 30s, [&] { engine.drain(); });
  EXPECT_EQ(done.load(), 1);
}

}  // namespace
