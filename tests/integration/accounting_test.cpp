// The conservation law under random faults: throwing, retrying and failing handlers, expired
// deadlines, duplicate idempotency keys, full rings and unauthorized publishes, from several
// producers at once. After drain(), every accepted event is accounted for exactly once, every
// rejected publish is counted by its status, and no subscriber sees an event twice except as a
// numbered retry.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "ringflow/ringflow.hpp"

namespace {

using ringflow::EventView;
using ringflow::Outcome;
using ringflow::PublishStatus;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) || defined(RINGFLOW_TSAN)
constexpr int kPerProducer = 3000;
#else
constexpr int kPerProducer = 30000;
#endif

TEST(Accounting, ConservationLawHoldsUnderRandomFaults) {
  ringflow::EngineConfig cfg;
  cfg.partitions = 8;
  cfg.shards = 2;
  cfg.pin_threads = false;
  cfg.wait_strategy = ringflow::WaitStrategyKind::spin_yield;
  cfg.ring_capacity = 64;  // small: producers meet full rings
  cfg.batch_size = 32;
  cfg.segment_bytes = std::size_t{64} << 10;
  cfg.retention_bytes = std::size_t{16} << 20;
  cfg.idempotency_window = 256;
  cfg.retry_capacity = 64;  // small: some retries overflow into dead letters
  ringflow::Engine engine(cfg);
  const std::array<ringflow::TopicId, 3> topics = {
      engine.add_topic("a.orders"), engine.add_topic("a.payments"), engine.add_topic("b.audit")};

  // s_faulty: random outcomes, decided by the event and attempt so reruns are comparable.
  std::mutex mu;
  std::set<std::tuple<std::uint32_t, std::uint32_t, std::uint64_t>> first_seen;  // s_faulty
  std::set<std::tuple<std::uint32_t, std::uint32_t, std::uint64_t>> all_seen;    // s_all
  std::atomic<std::uint64_t> twice{0}, dead_seen{0};
  ringflow::SubscribeOptions faulty_opts;
  faulty_opts.max_attempts = 3;
  faulty_opts.retry_backoff = std::chrono::microseconds(50);
  faulty_opts.retry_backoff_max = std::chrono::microseconds(500);
  const std::uint32_t s_faulty = engine.subscribe(
      "a.*", ringflow::Handler([&](const EventView& e) -> Outcome {
        if (e.attempt() == 1) {
          std::lock_guard lock(mu);
          if (!first_seen.emplace(e.topic().value, e.partition(), e.offset()).second) ++twice;
        }
        const std::uint64_t roll = (e.id() * 0x9E3779B97F4A7C15ULL + e.attempt()) % 100;
        if (roll < 70) return Outcome::ok();
        if (roll < 85) return Outcome::retry();
        if (roll < 95) return Outcome::fail("declined");
        throw std::runtime_error("handler bug");
      }),
      faulty_opts);
  const std::uint32_t s_all = engine.subscribe(">", [&](const EventView& e) {
    std::lock_guard lock(mu);
    if (!all_seen.emplace(e.topic().value, e.partition(), e.offset()).second) ++twice;
  });
  engine.subscribe("*.*.dlq", [&](const EventView& e) {
    EXPECT_NE(e.dead_letter(), nullptr);
    dead_seen.fetch_add(1);
  });
  engine.start();

  constexpr int kProducers = 3;
  // [topic][status] as the producers saw it.
  std::vector<std::array<std::array<std::uint64_t, ringflow::kPublishStatusCount>, 3>> seen(
      kProducers);
  std::vector<std::thread> threads;
  threads.reserve(kProducers);
  const ringflow::Principal auditor{"auditor", {"b.>"}, {}};
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      // Producer 0 publishes as a restricted principal: its a.* publishes are unauthorized.
      ringflow::Producer producer = p == 0 ? engine.make_producer(auditor) : engine.make_producer();
      std::mt19937_64 rng(1234 + static_cast<std::uint64_t>(p));
      for (int i = 0; i < kPerProducer; ++i) {
        const std::size_t t = rng() % 3;
        ringflow::PublishOptions o;
        if (rng() % 10 == 0) o.idempotency_key = 1 + rng() % 500;  // collide often
        if (rng() % 20 == 0)
          o.deadline_ns = ringflow::now_ns() + static_cast<std::int64_t>(rng() % 3000);
        // A resend carries the same key and idempotency key (so the same partition).
        const std::uint64_t k = o.idempotency_key != 0 ? o.idempotency_key % 64 : rng() % 64;
        const std::string key = "k" + std::to_string(k);
        const PublishStatus s = producer.publish(topics[t], key, "payload", o);
        ++seen[static_cast<std::size_t>(p)][t][static_cast<std::size_t>(s)];
        if (s == PublishStatus::full) std::this_thread::yield();  // let the shards catch up
      }
    });
  }
  for (auto& th : threads)
    th.join();
  engine.drain();
  const ringflow::EngineStats st = engine.stats();

  std::array<std::uint64_t, ringflow::kPublishStatusCount> by_status{};
  std::uint64_t dead_total = 0;
  std::uint64_t appended_total = 0;
  for (std::size_t t = 0; t < 3; ++t) {
    std::uint64_t ok = 0;
    for (int p = 0; p < kProducers; ++p) {
      ok += seen[static_cast<std::size_t>(p)][t][0];
      for (std::size_t s = 0; s < ringflow::kPublishStatusCount; ++s) {
        by_status[s] += seen[static_cast<std::size_t>(p)][t][s];
      }
    }
    const ringflow::TopicStats& ts = st.topics[topics[t].value];
    EXPECT_EQ(ts.accepted, ok) << ts.name;
    EXPECT_EQ(ts.accepted, ts.appended + ts.expired + ts.duplicates) << ts.name;
    dead_total += ts.dead_lettered;
    appended_total += ts.appended;
  }
  for (std::size_t s = 0; s < ringflow::kPublishStatusCount; ++s) {
    EXPECT_EQ(st.published[s], by_status[s])
        << "status " << ringflow::to_string(static_cast<PublishStatus>(s));
  }
  // The faults really happened (and enough got through for the law to mean something).
  EXPECT_GT(appended_total, static_cast<std::uint64_t>(kPerProducer) / 10);
  EXPECT_GT(by_status[static_cast<std::size_t>(PublishStatus::unauthorized)], 0U);
  EXPECT_GT(by_status[static_cast<std::size_t>(PublishStatus::full)] +
                by_status[static_cast<std::size_t>(PublishStatus::expired)],
            0U);
  EXPECT_GT(st.duplicates, 0U);
  EXPECT_GT(st.retries, 0U);

  const ringflow::SubscriptionStats& faulty = st.subscriptions[s_faulty];
  EXPECT_EQ(faulty.first_deliveries, faulty.ok + faulty.dead_lettered);
  EXPECT_GT(faulty.dead_lettered, 0U);
  const ringflow::SubscriptionStats& all = st.subscriptions[s_all];
  EXPECT_EQ(all.first_deliveries, appended_total);  // '>' sees every stored event, no DLQ
  EXPECT_EQ(all.ok, appended_total);
  EXPECT_EQ(twice.load(), 0U);
  // Every dead letter was made once and delivered to the dead-letter subscription once.
  EXPECT_EQ(dead_total, st.dead_letters_total());
  EXPECT_EQ(dead_seen.load(), dead_total);
  EXPECT_EQ(dead_total, faulty.dead_lettered + st.expired);
  engine.stop();
}

}  // namespace
