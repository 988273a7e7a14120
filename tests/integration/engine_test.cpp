// Engine behaviour end to end: producers x partitions x shards -> logs -> pipeline -> handlers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/ringflow.hpp"

namespace {

using namespace std::chrono_literals;
using ringflow::Engine;
using ringflow::EngineConfig;
using ringflow::EventView;
using ringflow::Outcome;
using ringflow::PublishStatus;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) || defined(RINGFLOW_TSAN)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif

EngineConfig test_config(std::uint32_t shards = 2) {
  EngineConfig c;
  c.partitions = 8;
  c.shards = shards;
  c.pin_threads = false;  // tests share two cores with everything else
  c.wait_strategy = ringflow::WaitStrategyKind::park;
  c.ring_capacity = 1024;
  c.batch_size = 64;
  c.segment_bytes = std::size_t{256} << 10;
  c.retention_bytes = std::size_t{4} << 20;
  return c;
}

std::string u64_payload(std::uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

std::uint64_t u64_of(const EventView& e) {
  std::uint64_t v = 0;
  std::memcpy(&v, e.payload().data(), std::min<std::size_t>(8, e.payload().size()));
  return v;
}

// Publishes, retrying `full` (the test's own backpressure); anything else but ok is a failure.
void publish_all_ok(ringflow::Producer& p, ringflow::TopicId t, const std::string& key,
                    const std::string& payload) {
  for (;;) {
    const PublishStatus s = p.publish(t, key, payload);
    if (s == PublishStatus::ok) return;
    ASSERT_EQ(s, PublishStatus::full) << ringflow::to_string(s);
    std::this_thread::yield();
  }
}

TEST(Engine, EveryEventExactlyOnceToEachMatchingSubscriberInKeyOrder) {
  Engine engine(test_config(2));
  const auto created = engine.add_topic("orders.created");
  const auto paid = engine.add_topic("orders.paid");
  const auto other = engine.add_topic("audit.login");

  // Handlers run on shard threads; each key is owned by one shard, so per-key state needs no
  // lock, but the maps are shared across shards: guard them.
  std::mutex mu;
  std::map<std::string, std::vector<std::uint64_t>> seen_orders;  // key -> sequence numbers
  std::atomic<std::uint64_t> all_count{0};
  std::atomic<std::uint64_t> audit_count{0};
  engine.subscribe("orders.*", [&](const EventView& e) {
    std::lock_guard lock(mu);
    seen_orders[std::string(e.key())].push_back(u64_of(e));
  });
  engine.subscribe(">",
                   [&](const EventView&) { all_count.fetch_add(1, std::memory_order_relaxed); });
  engine.subscribe("audit.>", [&](const EventView& e) {
    EXPECT_EQ(e.topic(), other);
    audit_count.fetch_add(1, std::memory_order_relaxed);
  });
  engine.start();

  constexpr int kProducers = 3;
  const int per_producer = 20000 / kScale;
  std::vector<std::thread> threads;
  threads.reserve(kProducers);
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      auto producer = engine.make_producer();
      for (int i = 0; i < per_producer; ++i) {
        const std::string key = "p" + std::to_string(p) + "-k" + std::to_string(i % 13);
        const auto topic = i % 10 == 0 ? other : (i % 2 == 0 ? created : paid);
        publish_all_ok(producer, topic, key, u64_payload(static_cast<std::uint64_t>(i)));
      }
    });
  }
  for (auto& t : threads)
    t.join();
  engine.drain();

  const std::uint64_t total = static_cast<std::uint64_t>(kProducers) * per_producer;
  const std::uint64_t audits = static_cast<std::uint64_t>(kProducers) * ((per_producer + 9) / 10);
  EXPECT_EQ(all_count.load(), total);
  EXPECT_EQ(audit_count.load(), audits);
  std::uint64_t orders = 0;
  {
    std::lock_guard lock(mu);
    for (const auto& [key, seq] : seen_orders) {
      orders += seq.size();
      for (std::size_t i = 1; i < seq.size(); ++i) {
        ASSERT_LT(seq[i - 1], seq[i]) << "key " << key << " out of publish order";
      }
    }
  }
  EXPECT_EQ(orders, total - audits);

  const auto st = engine.stats();
  EXPECT_EQ(st.published_count(PublishStatus::ok), total);
  EXPECT_EQ(st.appended, total);
  EXPECT_EQ(st.processed, total);
  EXPECT_EQ(st.deliveries, total + total);  // ">" plus exactly one of orders.* / audit.>
  EXPECT_EQ(st.handler_ok, st.deliveries);

  // Every partition's log replays exactly what was appended, with the right partition.
  std::uint64_t replayed = 0;
  for (std::uint32_t part = 0; part < engine.partitions(); ++part) {
    auto reader = engine.reader(part);
    ringflow::StoredEvent e;
    std::uint64_t expect_offset = 0;
    while (reader.next(e) == ringflow::ReadStatus::ok) {
      EXPECT_EQ(e.offset, expect_offset++);
      EXPECT_EQ(e.partition, part);
      EXPECT_EQ(ringflow::partition_of(e.key, engine.partitions()), part);
      ++replayed;
    }
  }
  EXPECT_EQ(replayed, total);
  engine.stop();
}

TEST(Engine, LifecycleMisuseIsReported) {
  Engine engine(test_config(1));
  const auto t = engine.add_topic("a.b");
  auto early = engine.make_producer();
  EXPECT_EQ(early.publish(t, "k", "v"), PublishStatus::stopped);  // not started yet
  engine.drain();                                                 // no-op before start
  engine.start();
  EXPECT_THROW(engine.start(), std::logic_error);
  EXPECT_THROW(engine.add_topic("c.d"), std::logic_error);
  EXPECT_THROW(engine.subscribe(">", [](const EventView&) {}), std::logic_error);
  EXPECT_THROW((void)engine.pipeline(), std::logic_error);
  EXPECT_EQ(early.publish(t, "k", "v"), PublishStatus::ok);
  engine.stop();
  engine.stop();  // idempotent
  EXPECT_EQ(early.publish(t, "k", "v"), PublishStatus::stopped);
  EXPECT_THROW((void)engine.make_producer(), std::logic_error);
  EXPECT_EQ(engine.state(), Engine::State::stopped);
  const auto st = engine.stats();
  EXPECT_EQ(st.published_count(PublishStatus::stopped), 2U);
  EXPECT_EQ(st.published_count(PublishStatus::ok), 1U);
  EXPECT_EQ(st.appended, 1U);
}

TEST(Engine, DestructorIsSafeInEveryState) {
  { Engine e(test_config(1)); }
  {
    Engine e(test_config(1));
    e.start();
  }
  {
    Engine e(test_config(1));
    const auto t = e.add_topic("x");
    std::atomic<int> got{0};
    e.subscribe("x", [&](const EventView&) { got.fetch_add(1); });
    e.start();
    {
      auto p = e.make_producer();
      for (int i = 0; i < 100; ++i)
        ASSERT_EQ(p.publish(t, "k", "v"), PublishStatus::ok);
    }
    e.stop();
    EXPECT_EQ(got.load(), 100);  // stop() drained what was in flight
  }
}

TEST(Engine, BadPublishesGetTheirStatusAndAreCounted) {
  auto cfg = test_config(1);
  cfg.max_payload_bytes = 16;
  Engine engine(cfg);
  const auto t = engine.add_topic("t");
  engine.start();
  auto p = engine.make_producer();
  EXPECT_EQ(p.publish(ringflow::TopicId{7}, "k", "v"), PublishStatus::unknown_topic);
  EXPECT_EQ(p.publish(ringflow::TopicId{}, "k", "v"), PublishStatus::unknown_topic);
  EXPECT_EQ(p.publish(t, "k", std::string(17, 'x')), PublishStatus::too_large);
  EXPECT_EQ(p.publish(t, std::string(ringflow::kMaxKeyBytes + 1, 'k'), "v"),
            PublishStatus::too_large);
  EXPECT_EQ(p.publish(t, std::string(ringflow::kMaxKeyBytes, 'k'), std::string(16, 'x')),
            PublishStatus::ok);
  ringflow::PublishOptions late;
  late.deadline_ns = ringflow::now_ns() - 1;
  EXPECT_EQ(p.publish(t, "k", "v", late), PublishStatus::expired);
  engine.drain();
  const auto ps = p.stats();
  EXPECT_EQ(ps.count(PublishStatus::unknown_topic), 2U);
  EXPECT_EQ(ps.count(PublishStatus::too_large), 2U);
  EXPECT_EQ(ps.count(PublishStatus::expired), 1U);
  EXPECT_EQ(ps.count(PublishStatus::ok), 1U);
  EXPECT_EQ(engine.stats().appended, 1U);
}

TEST(Engine, BadTopicsAndPatternsAreRejectedAtRegistration) {
  Engine engine(test_config(1));
  EXPECT_THROW(engine.add_topic("orders..created"), std::invalid_argument);
  EXPECT_THROW(engine.add_topic("orders.*"), std::invalid_argument);
  (void)engine.add_topic("orders.created");
  EXPECT_THROW(engine.add_topic("orders.created"), std::invalid_argument);  // duplicate
  EXPECT_THROW(engine.subscribe("orders.>.x", [](const EventView&) {}), std::invalid_argument);
  EXPECT_THROW((void)engine.topic("nope"), std::out_of_range);
  EXPECT_EQ(engine.topic("orders.created").value, 0U);
  EXPECT_EQ(engine.topic_name(engine.topic("orders.created")), "orders.created");
}

TEST(Engine, InvalidConfigNamesTheKey) {
  auto cfg = test_config(1);
  cfg.max_payload_bytes = 4096;
  try {
    Engine engine(cfg);
    FAIL() << "an impossible payload limit was accepted";
  } catch (const ringflow::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("max_payload_bytes"), std::string::npos) << e.what();
  }
  cfg = test_config(1);
  cfg.segment_bytes = 1024;  // cannot hold a batch
  EXPECT_THROW(Engine{cfg}, ringflow::ConfigError);
}

TEST(Engine, PipelineStagesFilterMapRouteAndSurviveExceptions) {
  Engine engine(test_config(2));
  const auto in = engine.add_topic("orders.in");
  const auto big = engine.add_topic("orders.big");
  const auto small = engine.add_topic("orders.small");
  engine.pipeline()
      .filter("drop-odd", [](const EventView& e) { return u64_of(e) % 2 == 0; })
      .map("explode-on-42",
           [](ringflow::Event& e) {
             if (u64_of(e) == 42) throw std::runtime_error("bad order");
             auto bytes = e.mutable_payload();
             const std::uint64_t v = u64_of(e) * 10;  // enrich: amount in cents
             std::memcpy(bytes.data(), &v, 8);
           })
      .route("by-amount", [&](const EventView& e) { return u64_of(e) >= 500 ? big : small; });

  std::atomic<std::uint64_t> big_n{0}, small_n{0}, in_n{0}, wrong{0};
  engine.subscribe("orders.big", [&](const EventView& e) {
    if (u64_of(e) < 500 || e.original_topic() != in) wrong.fetch_add(1);
    big_n.fetch_add(1);
  });
  engine.subscribe("orders.small", [&](const EventView& e) {
    if (u64_of(e) >= 500) wrong.fetch_add(1);
    small_n.fetch_add(1);
  });
  engine.subscribe("orders.in", [&](const EventView&) { in_n.fetch_add(1); });
  engine.start();
  auto p = engine.make_producer();
  for (std::uint64_t i = 0; i < 100; ++i) {
    publish_all_ok(p, in, "k" + std::to_string(i % 7), u64_payload(i));
  }
  engine.drain();
  // 50 even values; 42 throws in map -> 49 routed; value*10 >= 500 <=> value >= 50.
  EXPECT_EQ(big_n.load(), 25U);    // 50..98 even
  EXPECT_EQ(small_n.load(), 24U);  // 0..48 even minus 42
  EXPECT_EQ(in_n.load(), 0U);      // everything was routed away from orders.in
  EXPECT_EQ(wrong.load(), 0U);
  const auto st = engine.stats();
  EXPECT_EQ(st.filtered, 50U);
  EXPECT_EQ(st.stage_failures, 1U);
  EXPECT_EQ(st.processed, 100U);

  // The stored events are the originals: maps never rewrite the log.
  std::uint64_t originals = 0;
  for (std::uint32_t part = 0; part < engine.partitions(); ++part) {
    auto r = engine.reader(part);
    ringflow::StoredEvent e;
    while (r.next(e) == ringflow::ReadStatus::ok) {
      std::uint64_t v = 0;
      std::memcpy(&v, e.payload.data(), 8);
      EXPECT_LT(v, 100U);
      EXPECT_EQ(e.topic, in);
      ++originals;
    }
  }
  EXPECT_EQ(originals, 100U);
}

TEST(Engine, ThrowingHandlerIsCountedAndTheShardCarriesOn) {
  Engine engine(test_config(1));
  const auto t = engine.add_topic("t");
  std::atomic<int> ok{0};
  engine.subscribe("t", ringflow::Handler([&](const EventView& e) -> Outcome {
                     if (u64_of(e) % 3 == 0) throw std::runtime_error("boom");
                     if (u64_of(e) % 3 == 1) return Outcome::fail("nope");
                     ok.fetch_add(1);
                     return Outcome::ok();
                   }));
  engine.start();
  auto p = engine.make_producer();
  for (std::uint64_t i = 0; i < 300; ++i)
    publish_all_ok(p, t, "k", u64_payload(i));
  engine.drain();
  EXPECT_EQ(ok.load(), 100);
  const auto st = engine.stats();
  EXPECT_EQ(st.deliveries, 300U);
  EXPECT_EQ(st.handler_ok, 100U);
  EXPECT_EQ(st.handler_failures, 200U);
}

TEST(Engine, FullRingFailsFastThenEverythingAcceptedIsDelivered) {
  auto cfg = test_config(1);
  cfg.ring_capacity = 64;
  cfg.batch_size = 16;
  Engine engine(cfg);
  const auto t = engine.add_topic("t");
  std::atomic<bool> gate{false};
  std::atomic<std::uint64_t> delivered{0};
  engine.subscribe("t", [&](const EventView&) {
    while (!gate.load(std::memory_order_acquire))
      std::this_thread::yield();
    delivered.fetch_add(1);
  });
  engine.start();
  auto p = engine.make_producer();
  std::uint64_t ok = 0;
  std::uint64_t full = 0;
  // The handler is blocked: the shard holds one batch, the ring fills, then publish says full.
  while (full == 0) {
    const auto s = p.publish(t, "k", "v");
    if (s == PublishStatus::ok)
      ++ok;
    else if (s == PublishStatus::full)
      ++full;
    else
      FAIL() << ringflow::to_string(s);
    ASSERT_LT(ok, 10'000U) << "the ring never filled";
  }
  EXPECT_GE(ok, 64U);
  EXPECT_EQ(p.stats().count(PublishStatus::full), 1U);
  gate.store(true, std::memory_order_release);
  engine.drain();
  EXPECT_EQ(delivered.load(), ok);  // nothing accepted was lost, nothing refused was delivered
}

TEST(Engine, SpinBackpressureWaitsForSpaceInsteadOfFailing) {
  auto cfg = test_config(1);
  cfg.ring_capacity = 16;
  cfg.batch_size = 8;
  cfg.backpressure = ringflow::BackpressurePolicy::park;
  cfg.backpressure_timeout = std::chrono::microseconds(5'000'000);
  Engine engine(cfg);
  const auto t = engine.add_topic("t");
  std::atomic<std::uint64_t> delivered{0};
  engine.subscribe("t", [&](const EventView&) { delivered.fetch_add(1); });
  engine.start();
  auto p = engine.make_producer();
  const std::uint64_t n = 20000 / kScale;
  for (std::uint64_t i = 0; i < n; ++i)
    ASSERT_EQ(p.publish(t, "k", "v"), PublishStatus::ok);
  engine.drain();
  EXPECT_EQ(delivered.load(), n);
  EXPECT_EQ(p.stats().count(PublishStatus::full), 0U);
}

TEST(Engine, DeadlinePassedBeforeIngestIsExpiredNotProcessed) {
  Engine engine(test_config(1));
  const auto t = engine.add_topic("t");
  std::atomic<bool> gate{false};
  std::atomic<bool> entered{false};
  std::atomic<int> delivered{0};
  engine.subscribe("t", [&](const EventView&) {
    entered.store(true, std::memory_order_release);
    while (!gate.load(std::memory_order_acquire))
      std::this_thread::yield();
    delivered.fetch_add(1);
  });
  engine.start();
  auto p = engine.make_producer();
  ASSERT_EQ(p.publish(t, "k", "blocker"), PublishStatus::ok);
  // Wait until the shard is inside the handler (the blocker left the ring).
  while (!entered.load(std::memory_order_acquire))
    std::this_thread::yield();
  ringflow::PublishOptions o;
  o.deadline_ns = ringflow::now_ns() + 2'000'000;  // 2 ms from now
  ASSERT_EQ(p.publish(t, "k", "short-lived", o), PublishStatus::ok);
  while (ringflow::now_ns() <= o.deadline_ns)
    std::this_thread::yield();
  gate.store(true, std::memory_order_release);
  engine.drain();
  EXPECT_EQ(delivered.load(), 1);
  const auto st = engine.stats();
  EXPECT_EQ(st.expired, 1U);
  EXPECT_EQ(st.appended, 1U);
  EXPECT_EQ(st.published_count(PublishStatus::ok), st.appended + st.expired);
}

TEST(Engine, StopUnderLoadLosesNothing) {
  Engine engine(test_config(2));
  const auto t = engine.add_topic("t");
  std::atomic<std::uint64_t> delivered{0};
  engine.subscribe("t",
                   [&](const EventView&) { delivered.fetch_add(1, std::memory_order_relaxed); });
  engine.start();
  constexpr int kProducers = 3;
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<int> running{0};
  std::vector<std::thread> threads;
  threads.reserve(kProducers);
  for (int i = 0; i < kProducers; ++i) {
    threads.emplace_back([&, i] {
      auto p = engine.make_producer();
      running.fetch_add(1);
      std::uint64_t ok = 0;
      for (std::uint64_t n = 0;; ++n) {
        const auto s = p.publish(
            t, "key" + std::to_string(n % 17 + 100 * static_cast<std::uint64_t>(i)), "payload");
        if (s == PublishStatus::ok)
          ++ok;
        else if (s == PublishStatus::stopped)
          break;
        else
          ASSERT_EQ(s, PublishStatus::full);
      }
      accepted.fetch_add(ok);
    });
  }
  while (running.load() < kProducers || delivered.load() < 5000U / kScale)
    std::this_thread::yield();
  engine.stop();  // producers are still publishing
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(delivered.load(), accepted.load());
  EXPECT_EQ(engine.stats().appended, accepted.load());
}

TEST(Engine, ProducersAreReusedAndLimited) {
  auto cfg = test_config(1);
  cfg.max_producers = 2;
  Engine engine(cfg);
  const auto t = engine.add_topic("t");
  std::atomic<int> got{0};
  engine.subscribe("t", [&](const EventView&) { got.fetch_add(1); });
  engine.start();
  {
    auto a = engine.make_producer();
    auto b = engine.make_producer();
    EXPECT_THROW((void)engine.make_producer(), std::runtime_error);
    EXPECT_EQ(a.publish(t, "k", "1"), PublishStatus::ok);
  }
  // Released producers are handed out again, also to another thread.
  std::thread other([&] {
    auto c = engine.make_producer();
    EXPECT_EQ(c.publish(t, "k", "2"), PublishStatus::ok);
  });
  other.join();
  ringflow::Producer empty;
  EXPECT_EQ(empty.publish(t, "k", "3"), PublishStatus::stopped);
  engine.drain();
  EXPECT_EQ(got.load(), 2);
}

TEST(Engine, GraphWorkersRunSubscriptionsInParallelWithoutLosingOrder) {
#if defined(__SANITIZE_THREAD__) || defined(RINGFLOW_TSAN)
  GTEST_SKIP() << "oneTBB is not built with TSan: its task pool recycles memory between worker "
                  "threads through synchronisation TSan cannot see (false reports); this runs "
                  "in the release and asan suites";
#endif
  auto cfg = test_config(1);
  cfg.graph_workers_per_shard = 1;  // subscriptions become parallel TBB tasks in the arena
  Engine engine(cfg);
  const auto t = engine.add_topic("t");
  constexpr int kSubs = 3;
  std::vector<std::map<std::string, std::uint64_t>> next(kSubs);  // one map per subscription:
  std::atomic<std::uint64_t> bad{0};                              // each is serial, no lock
  std::atomic<std::uint64_t> total{0};
  for (int s = 0; s < kSubs; ++s) {
    engine.subscribe("t", [&, s](const EventView& e) {
      auto& n = next[s][std::string(e.key())];
      if (u64_of(e) != n) bad.fetch_add(1);
      n = u64_of(e) + 1;
      total.fetch_add(1, std::memory_order_relaxed);
    });
  }
  engine.start();
  auto p = engine.make_producer();
  const std::uint64_t per_key = 3000 / kScale;
  for (std::uint64_t i = 0; i < per_key; ++i) {
    for (int k = 0; k < 5; ++k)
      publish_all_ok(p, t, "key" + std::to_string(k), u64_payload(i));
  }
  engine.drain();
  EXPECT_EQ(total.load(), per_key * 5 * kSubs);
  EXPECT_EQ(bad.load(), 0U);
  EXPECT_EQ(engine.plan().graph_workers.at(0).size(), 1U);
}

}  // namespace

namespace {

ringflow::SubscribeOptions workers_group() {
  ringflow::SubscribeOptions o;
  o.group = "workers";
  return o;
}

TEST(Engine, ConsumerGroupMembersSharePartitionsEachEventOnceKeysInOrder) {
  Engine engine(test_config(2));
  const auto t = engine.add_topic("jobs.created");
  constexpr int kMembers = 3;
  std::vector<std::map<std::string, std::uint64_t>> next(kMembers);  // touched by one member
  std::vector<std::set<std::uint32_t>> partitions(kMembers);
  std::mutex mu;
  std::atomic<std::uint64_t> group_total{0}, bad{0}, audit{0};
  for (int m = 0; m < kMembers; ++m) {
    engine.subscribe(
        "jobs.*",
        [&, m](const EventView& e) {
          {
            std::lock_guard lock(mu);
            partitions[m].insert(e.partition());
            auto& n = next[m][std::string(e.key())];
            if (u64_of(e) != n) bad.fetch_add(1);
            n = u64_of(e) + 1;
          }
          group_total.fetch_add(1);
        },
        workers_group());
  }
  engine.subscribe("jobs.>", [&](const EventView&) { audit.fetch_add(1); });  // plain pub-sub
  EXPECT_THROW(engine.subscribe(
                   "other.*", [](const EventView&) {}, workers_group()),
               std::invalid_argument);
  engine.start();
  auto p = engine.make_producer();
  constexpr std::uint64_t kPerKey = 200;
  for (std::uint64_t i = 0; i < kPerKey; ++i) {
    for (int k = 0; k < 40; ++k)
      publish_all_ok(p, t, "job" + std::to_string(k), u64_payload(i));
  }
  engine.drain();
  EXPECT_EQ(group_total.load(), kPerKey * 40);  // each event to exactly one member
  EXPECT_EQ(audit.load(), kPerKey * 40);        // and still to every plain subscription
  EXPECT_EQ(bad.load(), 0U);
  std::set<std::uint32_t> all;
  for (int m = 0; m < kMembers; ++m) {
    EXPECT_FALSE(partitions[m].empty()) << "member " << m << " got no partition";
    for (std::uint32_t part : partitions[m]) {
      EXPECT_EQ(part % kMembers, static_cast<std::uint32_t>(m));
      EXPECT_TRUE(all.insert(part).second) << "partition " << part << " shared by two members";
    }
  }
}

}  // namespace
