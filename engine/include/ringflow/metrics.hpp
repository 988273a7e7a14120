#pragma once
// Engine metrics: every metric the engine exports is declared once, in kMetricDefs (name, help,
// kind, label names). Engine::metrics() fills a MetricsSnapshot with one family per entry, in
// table order, so an exporter loops over the families without knowing any metric by name.
//
// The counters behind it are written only by the thread that owns them (a shard worker, a
// producer) with plain relaxed stores, and summed on read: taking a snapshot costs the hot path
// nothing. A snapshot allocates; take it off the hot path (a scrape, a status page).

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace ringflow {

enum class MetricKind : std::uint8_t { counter, gauge, histogram };

/// One metric's declaration. Names follow Prometheus conventions: counters end in `_total`,
/// histograms are in seconds and end in `_seconds`.
struct MetricDef {
  std::string_view name;
  std::string_view help;
  MetricKind kind;
  std::array<std::string_view, 3> labels;  ///< the first label_count are used
  std::uint8_t label_count;
};

/// Index into kMetricDefs and MetricsSnapshot::families.
enum class Metric : std::uint16_t {
  published,                  ///< publish() results {status}
  producer_waits,             ///< publishes that found their ring full and waited
  events,                     ///< events a shard took from its rings {topic}
  events_stored,              ///< {topic}
  events_expired,             ///< {topic}
  events_duplicate,           ///< {topic}
  topic_dead_letters,         ///< {topic}
  processed,                  ///< events run through the pipeline
  filtered,                   ///< dropped by a filter stage
  stage_failures,             ///< dropped because a stage threw or routed nowhere
  batches,                    ///< {shard}
  deliveries,                 ///< first deliveries {subscription, pattern, group}
  retries,                    ///< handler retries {subscription, pattern, group}
  handled_ok,                 ///< {subscription, pattern, group}
  handler_failures,           ///< calls that returned fail/retry or threw {subscription, ...}
  subscription_dead_letters,  ///< {subscription, pattern, group}
  replayed,                   ///< redelivered from a checkpoint {subscription, pattern, group}
  dead_letters,               ///< dead letters made {reason}
  dead_letter_failures,       ///< a dead-letter topic's handler failed
  subscribe_denied,           ///< subscribe() calls refused by access control
  late_replies,               ///< reply() after the request had ended
  handler_stalls,             ///< calls blocked past watchdog.handler_ms {shard}
  ring_depth,                 ///< gauge: events accepted, not yet processed {shard, lane}
  ring_full,                  ///< publishes that found the ring full {shard, lane}
  partition_end_offset,       ///< gauge {partition}
  partition_first_offset,     ///< gauge: oldest retained offset {partition}
  partition_segments,         ///< gauge: log segments held {partition}
  partition_bytes,            ///< gauge: record bytes the partition log holds {partition}
  retention_evictions,        ///< log segments reused by retention {partition}
  shard_idle_polls,           ///< polls that found no work {shard}
  shard_yields,               ///< idle polls that yielded the core (spin_yield) {shard}
  shard_parks,                ///< idle waits on the shard's parking spot (park) {shard}
  ingest_to_done,             ///< histogram {shard}
  stage_latency,              ///< histogram {shard, stage} (LatencyStage)
  count_
};
inline constexpr std::size_t kMetricCount = static_cast<std::size_t>(Metric::count_);

inline constexpr std::array<MetricDef, kMetricCount> kMetricDefs = {{
    {"ringflow_published_total",
     "publish() and request() results, by status",
     MetricKind::counter,
     {"status"},
     1},
    {"ringflow_producer_waits_total",
     "publishes that found their ring full and waited (backpressure spin/park)",
     MetricKind::counter,
     {},
     0},
    {"ringflow_events_total",
     "events a shard took from its rings, by topic",
     MetricKind::counter,
     {"topic"},
     1},
    {"ringflow_events_stored_total",
     "events appended to their partition log, by topic",
     MetricKind::counter,
     {"topic"},
     1},
    {"ringflow_events_expired_total",
     "events whose deadline passed before ingest, by topic",
     MetricKind::counter,
     {"topic"},
     1},
    {"ringflow_events_duplicate_total",
     "events dropped by the idempotency window, by topic",
     MetricKind::counter,
     {"topic"},
     1},
    {"ringflow_topic_dead_letters_total",
     "dead letters made from this topic's events",
     MetricKind::counter,
     {"topic"},
     1},
    {"ringflow_processed_total",
     "events that went through the pipeline",
     MetricKind::counter,
     {},
     0},
    {"ringflow_filtered_total", "events dropped by a filter stage", MetricKind::counter, {}, 0},
    {"ringflow_stage_failures_total",
     "events dropped because a stage threw or routed nowhere",
     MetricKind::counter,
     {},
     0},
    {"ringflow_batches_total",
     "batches a shard drained from its rings",
     MetricKind::counter,
     {"shard"},
     1},
    {"ringflow_deliveries_total",
     "first deliveries of events to a subscription",
     MetricKind::counter,
     {"subscription", "pattern", "group"},
     3},
    {"ringflow_retries_total",
     "handler calls that were retries",
     MetricKind::counter,
     {"subscription", "pattern", "group"},
     3},
    {"ringflow_handled_ok_total",
     "events a subscription finished (on whichever attempt)",
     MetricKind::counter,
     {"subscription", "pattern", "group"},
     3},
    {"ringflow_handler_failures_total",
     "handler calls that returned fail or retry, or threw",
     MetricKind::counter,
     {"subscription", "pattern", "group"},
     3},
    {"ringflow_subscription_dead_letters_total",
     "events a subscription gave up on",
     MetricKind::counter,
     {"subscription", "pattern", "group"},
     3},
    {"ringflow_replayed_total",
     "events a durable subscription got again from its checkpoint at start (part of deliveries)",
     MetricKind::counter,
     {"subscription", "pattern", "group"},
     3},
    {"ringflow_dead_letters_total",
     "dead letters made, by reason",
     MetricKind::counter,
     {"reason"},
     1},
    {"ringflow_dead_letter_failures_total",
     "dead letters a dead-letter topic's handler failed (kept, not re-queued)",
     MetricKind::counter,
     {},
     0},
    {"ringflow_subscribe_denied_total",
     "subscribe() calls refused by access control",
     MetricKind::counter,
     {},
     0},
    {"ringflow_late_replies_total",
     "reply() calls after their request had ended",
     MetricKind::counter,
     {},
     0},
    {"ringflow_handler_stalls_total",
     "handler or stage calls that blocked past watchdog.handler_ms (each counted once)",
     MetricKind::counter,
     {"shard"},
     1},
    {"ringflow_ring_depth",
     "events accepted by publish() and not yet processed, per ring lane",
     MetricKind::gauge,
     {"shard", "lane"},
     2},
    {"ringflow_ring_full_total",
     "publishes that found their ring lane full",
     MetricKind::counter,
     {"shard", "lane"},
     2},
    {"ringflow_partition_end_offset",
     "next offset of the partition log (events ever appended)",
     MetricKind::gauge,
     {"partition"},
     1},
    {"ringflow_partition_first_offset",
     "oldest offset the partition log still holds",
     MetricKind::gauge,
     {"partition"},
     1},
    {"ringflow_partition_segments",
     "log segments the partition holds",
     MetricKind::gauge,
     {"partition"},
     1},
    {"ringflow_partition_bytes",
     "bytes of records (headers, keys, payloads) the partition log holds",
     MetricKind::gauge,
     {"partition"},
     1},
    {"ringflow_retention_evictions_total",
     "log segments reused by retention",
     MetricKind::counter,
     {"partition"},
     1},
    {"ringflow_shard_idle_polls_total",
     "shard polls that found no work",
     MetricKind::counter,
     {"shard"},
     1},
    {"ringflow_shard_yields_total",
     "idle shard polls that yielded the core (spin_yield)",
     MetricKind::counter,
     {"shard"},
     1},
    {"ringflow_shard_parks_total",
     "idle shard waits on its parking spot (wait strategy park)",
     MetricKind::counter,
     {"shard"},
     1},
    {"ringflow_ingest_to_done_seconds",
     "time from ingest to the end of the batch's handlers, sampled (one batch per "
     "metrics_latency_sample_every events, weighted by its events)",
     MetricKind::histogram,
     {"shard"},
     1},
    {"ringflow_stage_seconds",
     "time a batch spent in each stage of the shard (store, stages, handlers, failures), "
     "sampled with ingest_to_done (the same batches, weighted by their events)",
     MetricKind::histogram,
     {"shard", "stage"},
     2},
}};

/// The parts of a shard's work on one batch, timed on the sampled batches (the `stage` label of
/// ringflow_stage_seconds). Together they make up ingest -> done.
enum class LatencyStage : std::uint8_t {
  store,     ///< ingest: deadline and idempotency checks, appending to the partition logs
  stages,    ///< the pipeline's filter/map/route stages
  handlers,  ///< the subscriptions' handlers (and requests nobody heard)
  failures,  ///< retries scheduled and dead letters made for the batch's failures
  count_
};
inline constexpr std::size_t kLatencyStageCount = static_cast<std::size_t>(LatencyStage::count_);
inline constexpr std::array<std::string_view, kLatencyStageCount> kLatencyStageNames = {
    "store", "stages", "handlers", "failures"};

[[nodiscard]] constexpr const MetricDef& metric_def(Metric m) noexcept {
  return kMetricDefs[static_cast<std::size_t>(m)];
}

/// Log-linear latency buckets in nanoseconds: <= 64 ns, then 4 buckets per power of two up to
/// 2^34 ns (~17 s), then +Inf. Bucket i holds values v with bound(i-1) < v <= bound(i), as a
/// Prometheus `le` bucket does.
struct LatencyBuckets {
  static constexpr std::uint32_t kMinExp = 6;   ///< first bound 2^6 ns
  static constexpr std::uint32_t kMaxExp = 33;  ///< last octave [2^33, 2^34]
  static constexpr std::uint32_t kSubBits = 2;  ///< 4 buckets per octave
  static constexpr std::size_t kFinite = 1 + (kMaxExp - kMinExp + 1) * (1U << kSubBits);
  static constexpr std::size_t kCount = kFinite + 1;  ///< the last one is +Inf

  /// Upper bound of bucket i in ns (UINT64_MAX for the +Inf bucket).
  [[nodiscard]] static constexpr std::uint64_t upper_bound_ns(std::size_t i) noexcept {
    if (i == 0) return std::uint64_t{1} << kMinExp;
    if (i >= kFinite) return UINT64_MAX;
    const std::size_t k = i - 1;
    const std::uint32_t m = kMinExp + static_cast<std::uint32_t>(k >> kSubBits);
    const std::uint64_t s = k & ((1U << kSubBits) - 1);
    return (std::uint64_t{1} << m) + ((s + 1) << (m - kSubBits));
  }
  [[nodiscard]] static constexpr std::size_t index(std::uint64_t ns) noexcept {
    if (ns <= (std::uint64_t{1} << kMinExp)) return 0;
    const std::uint64_t w = ns - 1;
    const auto m = static_cast<std::uint32_t>(63 - __builtin_clzll(w));
    if (m > kMaxExp) return kFinite;
    const std::uint64_t s = (w >> (m - kSubBits)) & ((1U << kSubBits) - 1);
    return 1 + (std::size_t{m - kMinExp} << kSubBits) + s;
  }
};

/// A histogram's state at snapshot time (per bucket, not cumulative).
struct HistogramSnapshot {
  std::vector<std::uint64_t> buckets;  ///< LatencyBuckets::kCount entries
  std::uint64_t count = 0;
  std::uint64_t sum_ns = 0;

  /// The q-quantile (0..1) in ns, by linear interpolation inside its bucket; 0 when empty.
  [[nodiscard]] double quantile_ns(double q) const noexcept;
  HistogramSnapshot& operator+=(const HistogramSnapshot& o);
};

struct MetricSample {
  std::vector<std::string> label_values;  ///< in the order of the def's label names
  std::uint64_t value = 0;                ///< counters and gauges
  HistogramSnapshot histogram;            ///< histograms
};

struct MetricFamilySnapshot {
  Metric id;
  const MetricDef* def;
  std::vector<MetricSample> samples;
};

struct MetricsSnapshot {
  std::int64_t taken_ns = 0;                   ///< ringflow::now_ns() when taken
  std::vector<MetricFamilySnapshot> families;  ///< kMetricCount, in kMetricDefs order

  [[nodiscard]] const MetricFamilySnapshot& family(Metric m) const {
    return families.at(static_cast<std::size_t>(m));
  }
  /// The sample whose label values equal `labels` (in the def's order), or null.
  [[nodiscard]] const MetricSample* find(Metric m,
                                         std::initializer_list<std::string_view> labels) const;
  /// Its value, 0 when there is no such sample.
  [[nodiscard]] std::uint64_t value(Metric m,
                                    std::initializer_list<std::string_view> labels = {}) const;
  /// Sum over every sample of a counter or gauge.
  [[nodiscard]] std::uint64_t total(Metric m) const;
  /// Every sample of a histogram merged (e.g. all shards).
  [[nodiscard]] HistogramSnapshot merged_histogram(Metric m) const;
};

}  // namespace ringflow
