// Engine::metrics() while the engine runs: snapshots taken concurrently with publishing never
// disturb it, and after drain() the snapshot agrees with stats() and with what was published:
// ring depths 0, full-ring counts equal to the `full` refusals, one histogram count per stored
// event (sampling every batch).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "ringflow/ringflow.hpp"

namespace {

using ringflow::Metric;
using ringflow::PublishStatus;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) || defined(RINGFLOW_TSAN)
constexpr int kEvents = 20'000;
#else
constexpr int kEvents = 200'000;
#endif

TEST(MetricsSnapshot, AgreesWithStatsAfterDrainWhileScrapedConcurrently) {
  ringflow::EngineConfig cfg;
  cfg.partitions = 4;
  cfg.shards = 2;
  cfg.pin_threads = false;
  cfg.ring_capacity = 64;  // small: fail_fast publishes meet full rings
  cfg.batch_size = 16;
  cfg.metrics_latency_sample_every = 1;
  ringflow::Engine engine(cfg);
  const ringflow::TopicId t = engine.add_topic("m.events");
  std::atomic<std::uint64_t> handled{0};
  engine.subscribe("m.>", [&](const ringflow::EventView&) {
    handled.fetch_add(1, std::memory_order_relaxed);  // a count, read after drain()
  });
  engine.start();

  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> scrapes{0};
  std::thread scraper([&] {
    // Acquire: pairs with the release below; nothing else is ordered by it.
    while (!done.load(std::memory_order_acquire)) {
      const ringflow::MetricsSnapshot s = engine.metrics();
      ASSERT_EQ(s.families.size(), ringflow::kMetricCount);
      // Monotonic facts that hold at any instant.
      EXPECT_LE(s.total(Metric::processed), static_cast<std::uint64_t>(kEvents));
      scrapes.fetch_add(1, std::memory_order_relaxed);  // a count; ordered by the join below
    }
  });
  // The scraper runs while events flow: wait (bounded) for its first snapshot before publishing,
  // so a busy machine cannot run the whole workload before the scraper is scheduled.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (scrapes.load(std::memory_order_relaxed) == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  if (scrapes.load() == 0) {
    done.store(true, std::memory_order_release);
    scraper.join();
    FAIL() << "the scraper thread did not run within 30 s";
  }

  auto producer = engine.make_producer();
  std::uint64_t ok = 0;
  std::uint64_t full = 0;
  const std::byte payload[8] = {};
  for (int i = 0; i < kEvents; ++i) {
    const std::string key = std::to_string(i % 97);
    const PublishStatus st = producer.publish(t, key, payload);
    ok += st == PublishStatus::ok ? 1 : 0;
    full += st == PublishStatus::full ? 1 : 0;
  }
  engine.drain();
  done.store(true, std::memory_order_release);
  scraper.join();
  EXPECT_GT(scrapes.load(), 0U);

  const ringflow::EngineStats st = engine.stats();
  const ringflow::MetricsSnapshot s = engine.metrics();
  EXPECT_EQ(ok + full, static_cast<std::uint64_t>(kEvents));
  EXPECT_EQ(s.value(Metric::published, {"ok"}), ok);
  EXPECT_EQ(s.value(Metric::published, {"full"}), full);
  EXPECT_EQ(s.total(Metric::ring_full), full);  // fail_fast: one full ring per refusal
  EXPECT_EQ(s.total(Metric::ring_depth), 0U);
  EXPECT_EQ(s.value(Metric::events, {"m.events"}), ok);
  EXPECT_EQ(s.value(Metric::events_stored, {"m.events"}), st.appended);
  EXPECT_EQ(s.total(Metric::processed), st.processed);
  EXPECT_EQ(s.total(Metric::batches), st.batches);
  EXPECT_EQ(s.value(Metric::handled_ok, {"0", "m.>", ""}), handled.load());
  EXPECT_EQ(handled.load(), ok);
  std::uint64_t offsets = 0;
  for (std::uint32_t p = 0; p < engine.partitions(); ++p)
    offsets += engine.log(p).end_offset();
  EXPECT_EQ(s.total(Metric::partition_end_offset), offsets);
  const ringflow::HistogramSnapshot h = s.merged_histogram(Metric::ingest_to_done);
  EXPECT_EQ(h.count, ok);
  EXPECT_EQ(s.family(Metric::ingest_to_done).samples.size(), 2U);  // one per shard
  EXPECT_GT(h.quantile_ns(0.99), 0.0);
  // Per stage: one sample per shard and stage, each counting the same timed events.
  EXPECT_EQ(s.family(Metric::stage_latency).samples.size(), 2U * ringflow::kLatencyStageCount);
  for (const std::string_view stage : ringflow::kLatencyStageNames) {
    std::uint64_t count = 0;
    for (const char* shard : {"0", "1"})
      count += s.find(Metric::stage_latency, {shard, stage})->histogram.count;
    EXPECT_EQ(count, h.count) << stage;
  }
  std::uint64_t bytes = 0;
  for (std::uint32_t p = 0; p < engine.partitions(); ++p)
    bytes += engine.log(p).bytes_held();
  EXPECT_EQ(s.total(Metric::partition_bytes), bytes);
  EXPECT_GT(bytes, 0U);
  engine.stop();
}

TEST(MetricsSnapshot, SamplingOffRecordsNoLatencyAndCountersStayOn) {
  ringflow::EngineConfig cfg;
  cfg.partitions = 2;
  cfg.pin_threads = false;
  cfg.metrics_latency_sample_every = 0;
  ringflow::Engine engine(cfg);
  const ringflow::TopicId t = engine.add_topic("a");
  engine.subscribe("a", [](const ringflow::EventView&) {});
  // Before start(): every family is there, zero.
  const ringflow::MetricsSnapshot before = engine.metrics();
  ASSERT_EQ(before.families.size(), ringflow::kMetricCount);
  EXPECT_EQ(before.merged_histogram(Metric::ingest_to_done).count, 0U);
  engine.start();
  auto producer = engine.make_producer();
  const std::byte payload[4] = {};
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(producer.publish(t, "k", payload), PublishStatus::ok);
  engine.drain();
  const ringflow::MetricsSnapshot s = engine.metrics();
  EXPECT_EQ(s.value(Metric::events_stored, {"a"}), 1000U);
  EXPECT_EQ(s.merged_histogram(Metric::ingest_to_done).count, 0U);
  EXPECT_EQ(s.merged_histogram(Metric::stage_latency).count, 0U);
  engine.stop();
}

}  // namespace
