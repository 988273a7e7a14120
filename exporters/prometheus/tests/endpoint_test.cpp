// The Prometheus endpoint against a known workload: counted publishes, refusals, failures,
// retries, expiries and duplicates. Scraped over HTTP on loopback with a plain socket client;
// every counter and the histogram's count must equal the numbers the workload implies.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>

#include "ringflow/prometheus.hpp"
#include "ringflow/ringflow.hpp"
#include "scrape.hpp"

namespace {

using ringflow::EventView;
using ringflow::Outcome;
using ringflow::PublishStatus;
using ringflow::prom::Scrape;

constexpr int kOk = 120;       // handled on the first attempt
constexpr int kFail = 5;       // Outcome::fail: dead-lettered at once (reason failed)
constexpr int kRetryOnce = 7;  // retry on attempt 1, ok on attempt 2
constexpr int kExhausted = 3;  // retry always: dead-lettered after max_attempts (3)
constexpr int kDupKeys = 4;    // keys published twice each: the second is a duplicate
constexpr int kExpired = 6;    // deadline passed before ingest: dead-lettered (expired)
constexpr int kMaxAttempts = 3;

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

Scrape scrape(const ringflow::prom::Exporter& ex) {
  std::string error;
  const auto r = ringflow::prom::http_get("127.0.0.1", ex.port(), "/metrics",
                                          std::chrono::seconds(10), &error);
  EXPECT_TRUE(r.has_value()) << error;
  if (!r) return {};
  EXPECT_EQ(r->status, 200);
  return Scrape(ringflow::prom::parse_text(r->body));
}

ringflow::EngineConfig test_config() {
  ringflow::EngineConfig cfg;
  cfg.partitions = 4;
  cfg.shards = 2;
  cfg.pin_threads = false;
  cfg.idempotency_window = 1024;
  cfg.metrics_latency_sample_every = 1;  // time every batch: the histogram counts every event
  return cfg;
}

TEST(MetricsEndpoint, ScrapeMatchesAKnownWorkload) {
  ringflow::Engine engine(test_config());
  const ringflow::TopicId orders = engine.add_topic("orders");
  (void)engine.add_topic("audit");  // no events: its counters must read 0
  ringflow::SubscribeOptions so;
  so.max_attempts = kMaxAttempts;
  so.retry_backoff = std::chrono::microseconds(100);
  so.retry_backoff_max = std::chrono::milliseconds(1);
  engine.subscribe("orders", ringflow::Handler([](const EventView& e) -> Outcome {
                     const std::string_view p(reinterpret_cast<const char*>(e.payload().data()),
                                              e.payload().size());
                     if (p == "fail") return Outcome::fail("refused");
                     if (p == "retry-once")
                       return e.attempt() == 1 ? Outcome::retry() : Outcome::ok();
                     if (p == "retry-always") return Outcome::retry();
                     return Outcome::ok();
                   }),
                   so);
  engine.subscribe("orders.dlq", [](const EventView&) {});
  // A stage that keeps every event: the "stages" part of the per-stage histograms is timed.
  engine.pipeline().filter("keep", [](const EventView&) { return true; });
  engine.start();
  ringflow::prom::ExporterOptions eo;
  eo.address = "127.0.0.1:0";
  ringflow::prom::Exporter exporter(engine, eo);

  auto producer = engine.make_producer();
  int ok_publishes = 0;
  // Bytes the partition logs must hold: each stored event's record, each dead letter's (with
  // its DeadLetterInfo). Nothing is evicted (8 MiB retention per partition).
  std::uint64_t log_bytes = 0;
  enum class Fate { stored, dead_letter, duplicate, expired };
  const auto pub = [&](std::string_view key, std::string_view payload, Fate fate,
                       const ringflow::PublishOptions& o = {}) {
    ASSERT_EQ(producer.publish(orders, key, bytes(payload), o), PublishStatus::ok);
    ++ok_publishes;
    if (fate == Fate::stored || fate == Fate::dead_letter)
      log_bytes += ringflow::detail::record_size(key.size(), payload.size());
    if (fate == Fate::dead_letter || fate == Fate::expired)
      log_bytes += ringflow::detail::record_size(key.size(), payload.size(), true);
  };
  for (int i = 0; i < kOk; ++i)
    pub("k" + std::to_string(i), "ok", Fate::stored);
  for (int i = 0; i < kFail; ++i)
    pub("f" + std::to_string(i), "fail", Fate::dead_letter);
  for (int i = 0; i < kRetryOnce; ++i)
    pub("r" + std::to_string(i), "retry-once", Fate::stored);
  for (int i = 0; i < kExhausted; ++i)
    pub("x" + std::to_string(i), "retry-always", Fate::dead_letter);
  for (int i = 0; i < kDupKeys; ++i) {
    ringflow::PublishOptions o;
    o.idempotency_key = 1000 + static_cast<std::uint64_t>(i);
    pub("d" + std::to_string(i), "ok", Fate::stored, o);
    pub("d" + std::to_string(i), "ok", Fate::duplicate, o);
  }
  for (int i = 0; i < kExpired; ++i) {
    // Published "10 s ago" with a deadline 5 s ago: publish() accepts it (deadline after its
    // timestamp), ingest finds it expired. Deterministic, no race with the clock.
    ringflow::PublishOptions o;
    const std::int64_t now = ringflow::now_ns();
    o.timestamp_ns = now - 10'000'000'000;
    o.deadline_ns = now - 5'000'000'000;
    pub("e" + std::to_string(i), "ok", Fate::expired, o);
  }
  // Refusals, one of each kind the test can cause at will.
  EXPECT_EQ(producer.publish(ringflow::TopicId{999}, "k", bytes("x")),
            PublishStatus::unknown_topic);
  EXPECT_EQ(producer.publish(orders, "k", bytes(std::string(4096, 'x'))), PublishStatus::too_large);
  EXPECT_EQ(producer.publish(engine.dead_letter_topic(orders), "k", bytes("x")),
            PublishStatus::unauthorized);
  engine.drain();

  const int stored = ok_publishes - kDupKeys - kExpired;
  const int dead_failed = kFail;
  const int dead_exhausted = kExhausted;
  const int dead_expired = kExpired;
  const int dead_total = dead_failed + dead_exhausted + dead_expired;
  const int retries = kRetryOnce + kExhausted * (kMaxAttempts - 1);
  const int handled_ok = kOk + kRetryOnce + kDupKeys;

  const Scrape s = scrape(exporter);
  ASSERT_FALSE(s.samples().empty());
  using M = std::map<std::string, std::string>;
  EXPECT_EQ(s.get("ringflow_published_total", M{{"status", "ok"}}), ok_publishes);
  EXPECT_EQ(s.get("ringflow_published_total", M{{"status", "unknown_topic"}}), 1);
  EXPECT_EQ(s.get("ringflow_published_total", M{{"status", "too_large"}}), 1);
  EXPECT_EQ(s.get("ringflow_published_total", M{{"status", "unauthorized"}}), 1);
  EXPECT_EQ(s.get("ringflow_published_total", M{{"status", "full"}}), 0);
  EXPECT_EQ(s.get("ringflow_published_total", M{{"status", "expired"}}), 0);

  EXPECT_EQ(s.get("ringflow_events_total", M{{"topic", "orders"}}), ok_publishes);
  EXPECT_EQ(s.get("ringflow_events_total", M{{"topic", "audit"}}), 0);
  EXPECT_EQ(s.get("ringflow_events_stored_total", M{{"topic", "orders"}}), stored);
  EXPECT_EQ(s.get("ringflow_events_expired_total", M{{"topic", "orders"}}), kExpired);
  EXPECT_EQ(s.get("ringflow_events_duplicate_total", M{{"topic", "orders"}}), kDupKeys);
  EXPECT_EQ(s.get("ringflow_topic_dead_letters_total", M{{"topic", "orders"}}), dead_total);
  EXPECT_EQ(s.get("ringflow_processed_total"), stored);
  EXPECT_EQ(s.get("ringflow_filtered_total"), 0);
  EXPECT_EQ(s.get("ringflow_stage_failures_total"), 0);

  const M sub0{{"subscription", "0"}, {"pattern", "orders"}, {"group", ""}};
  EXPECT_EQ(s.get("ringflow_deliveries_total", sub0), stored);
  EXPECT_EQ(s.get("ringflow_retries_total", sub0), retries);
  EXPECT_EQ(s.get("ringflow_handled_ok_total", sub0), handled_ok);
  EXPECT_EQ(s.get("ringflow_handler_failures_total", sub0),
            kFail + kRetryOnce + kExhausted * kMaxAttempts);
  EXPECT_EQ(s.get("ringflow_subscription_dead_letters_total", sub0), dead_failed + dead_exhausted);
  const M sub1{{"subscription", "1"}, {"pattern", "orders.dlq"}};
  EXPECT_EQ(s.get("ringflow_deliveries_total", sub1), dead_total);
  EXPECT_EQ(s.get("ringflow_handled_ok_total", sub1), dead_total);

  EXPECT_EQ(s.get("ringflow_dead_letters_total", M{{"reason", "failed"}}), dead_failed);
  EXPECT_EQ(s.get("ringflow_dead_letters_total", M{{"reason", "retries_exhausted"}}),
            dead_exhausted);
  EXPECT_EQ(s.get("ringflow_dead_letters_total", M{{"reason", "expired"}}), dead_expired);
  EXPECT_EQ(s.get("ringflow_dead_letters_total", M{{"reason", "retry_overflow"}}), 0);
  EXPECT_EQ(s.get("ringflow_dead_letter_failures_total"), 0);
  EXPECT_EQ(s.get("ringflow_subscribe_denied_total"), 0);
  EXPECT_EQ(s.get("ringflow_late_replies_total"), 0);

  // Rings: drained (depth 0), never full; one sample per shard and lane.
  EXPECT_EQ(s.label_values("ringflow_ring_depth", "shard"), (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(s.sum("ringflow_ring_depth"), 0);
  EXPECT_EQ(s.sum("ringflow_ring_full_total"), 0);
  // Partitions: every stored event and every dead letter has an offset.
  EXPECT_EQ(s.label_values("ringflow_partition_end_offset", "partition").size(), 4U);
  EXPECT_EQ(s.sum("ringflow_partition_end_offset"), stored + dead_total);
  EXPECT_EQ(s.sum("ringflow_partition_first_offset"), 0);
  EXPECT_EQ(s.sum("ringflow_retention_evictions_total"), 0);
  EXPECT_EQ(s.sum("ringflow_partition_bytes"), static_cast<double>(log_bytes));
  EXPECT_GT(s.sum("ringflow_batches_total"), 0);
  EXPECT_EQ(s.sum("ringflow_producer_waits_total"), 0);

  // The histogram: every stored event timed once (sampling every batch), per shard; buckets
  // cumulative, ending in +Inf == _count; sum plausible (under the test's own duration).
  EXPECT_EQ(s.sum("ringflow_ingest_to_done_seconds_count"), stored);
  for (const std::string& shard :
       s.label_values("ringflow_ingest_to_done_seconds_count", "shard")) {
    const auto b = s.buckets("ringflow_ingest_to_done_seconds", M{{"shard", shard}});
    ASSERT_FALSE(b.empty());
    EXPECT_TRUE(std::isinf(b.back().first));
    EXPECT_EQ(b.back().second, s.get("ringflow_ingest_to_done_seconds_count", M{{"shard", shard}}));
    for (std::size_t i = 1; i < b.size(); ++i)
      EXPECT_LE(b[i - 1].second, b[i].second);
  }
  const double sum_s = s.sum("ringflow_ingest_to_done_seconds_sum");
  EXPECT_GT(sum_s, 0.0);
  EXPECT_LT(sum_s, 60.0 * stored);

  // Per stage: the same timed batches, so every stage counts every stored event, per shard;
  // one sample per shard and stage.
  EXPECT_EQ(s.label_values("ringflow_stage_seconds_count", "stage"),
            (std::vector<std::string>{"failures", "handlers", "stages", "store"}));
  for (const std::string_view stage : ringflow::kLatencyStageNames) {
    const std::string st(stage);
    EXPECT_EQ(s.sum("ringflow_stage_seconds_count", M{{"stage", st}}), stored) << st;
    for (const std::string& shard : s.label_values("ringflow_stage_seconds_count", "shard")) {
      const M match{{"shard", shard}, {"stage", st}};
      const auto b = s.buckets("ringflow_stage_seconds", match);
      ASSERT_FALSE(b.empty()) << st;
      EXPECT_TRUE(std::isinf(b.back().first));
      EXPECT_EQ(b.back().second, s.get("ringflow_stage_seconds_count", match)) << st;
      EXPECT_EQ(s.get("ringflow_stage_seconds_count", match),
                s.get("ringflow_ingest_to_done_seconds_count", M{{"shard", shard}}))
          << st;
    }
  }

  // The engine's own snapshot says the same (the endpoint adds nothing of its own).
  const ringflow::MetricsSnapshot snap = engine.metrics();
  EXPECT_EQ(snap.value(ringflow::Metric::events_stored, {"orders"}),
            static_cast<std::uint64_t>(stored));
  const ringflow::HistogramSnapshot total = snap.merged_histogram(ringflow::Metric::ingest_to_done);
  EXPECT_EQ(total.count, static_cast<std::uint64_t>(stored));
  // The stages partition ingest -> done: their times add up to it, batch by batch.
  const ringflow::HistogramSnapshot stages = snap.merged_histogram(ringflow::Metric::stage_latency);
  EXPECT_EQ(stages.count, total.count * ringflow::kLatencyStageCount);
  EXPECT_EQ(stages.sum_ns, total.sum_ns);
  std::uint64_t bytes_held = 0;
  for (const ringflow::MetricSample& p : snap.family(ringflow::Metric::partition_bytes).samples)
    bytes_held += p.value;
  EXPECT_EQ(bytes_held, log_bytes);
  engine.stop();
}

TEST(MetricsEndpoint, TextFormatNamesEveryDeclaredMetricOnce) {
  ringflow::Engine engine(test_config());
  (void)engine.add_topic("t");
  const std::string text = ringflow::prom::to_text(engine.metrics());
  for (const ringflow::MetricDef& d : ringflow::kMetricDefs) {
    const std::string type_line = "# TYPE " + std::string(d.name) + " ";
    const std::size_t at = text.find(type_line);
    EXPECT_NE(at, std::string::npos) << d.name;
    EXPECT_EQ(text.find(type_line, at + 1), std::string::npos) << d.name;
  }
}

TEST(MetricsEndpoint, ListensOnLoopbackByDefaultAndRefusesABadAddress) {
  EXPECT_EQ(ringflow::prom::ExporterOptions{}.address.rfind("127.0.0.1:", 0), 0U);
  ringflow::Engine engine(test_config());
  ringflow::prom::ExporterOptions eo;
  eo.address = "127.0.0.1:0";
  const ringflow::prom::Exporter a(engine, eo);
  eo.address = "127.0.0.1:" + std::to_string(a.port());  // taken
  EXPECT_THROW(ringflow::prom::Exporter(engine, eo), std::runtime_error);
}

TEST(LatencyBuckets, BoundsAreLogLinearAndIndexFollowsLe) {
  using B = ringflow::LatencyBuckets;
  EXPECT_EQ(B::upper_bound_ns(0), 64U);
  EXPECT_EQ(B::upper_bound_ns(1), 80U);
  EXPECT_EQ(B::upper_bound_ns(4), 128U);
  EXPECT_EQ(B::upper_bound_ns(5), 160U);
  EXPECT_EQ(B::upper_bound_ns(B::kFinite - 1), std::uint64_t{1} << 34);
  for (std::size_t i = 1; i < B::kFinite; ++i) {
    EXPECT_LT(B::upper_bound_ns(i - 1), B::upper_bound_ns(i));
    EXPECT_EQ(B::index(B::upper_bound_ns(i)), i);          // le: the bound is inside
    EXPECT_EQ(B::index(B::upper_bound_ns(i - 1) + 1), i);  // just above the previous one
  }
  EXPECT_EQ(B::index(0), 0U);
  EXPECT_EQ(B::index((std::uint64_t{1} << 34) + 1), B::kFinite);
  EXPECT_EQ(B::index(UINT64_MAX), B::kFinite);
}

TEST(LatencyBuckets, QuantilesInterpolateInsideTheirBucket) {
  ringflow::HistogramSnapshot h;
  h.buckets.assign(ringflow::LatencyBuckets::kCount, 0);
  h.buckets[ringflow::LatencyBuckets::index(1000)] = 50;
  h.buckets[ringflow::LatencyBuckets::index(100'000)] = 50;
  h.count = 100;
  const double p50 = h.quantile_ns(0.5);
  const double p99 = h.quantile_ns(0.99);
  EXPECT_GT(p50, 896.0);
  EXPECT_LE(p50, 1024.0);
  EXPECT_GT(p99, 98304.0);
  EXPECT_LE(p99, 114688.0);
}

TEST(ScrapeParser, ReadsLabelsEscapesAndInf) {
  const auto v = ringflow::prom::parse_text(
      "# HELP x y\n# TYPE x counter\nx{a=\"q\\\"z\",b=\"\"} 3\nh_bucket{le=\"+Inf\"} 7\ny 1.5e3\n");
  ASSERT_EQ(v.size(), 3U);
  EXPECT_EQ(v[0].labels.at("a"), "q\"z");
  EXPECT_EQ(v[0].labels.at("b"), "");
  EXPECT_EQ(v[0].value, 3);
  EXPECT_EQ(v[1].labels.at("le"), "+Inf");
  EXPECT_EQ(v[2].value, 1500);
  EXPECT_THROW(ringflow::prom::parse_text("x{a=1} 2\n"), std::invalid_argument);
}

}  // namespace
