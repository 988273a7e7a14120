#pragma once
// Engine: producers -> SPSC rings -> shard workers (partition logs) -> the Pipeline's stages
// -> subscriptions (a oneTBB flow graph where graph workers fan them out in parallel).
// A complete program: examples/quick_start.cpp.
//
//   ringflow::Engine engine(ringflow::EngineConfig{});   // or load_config(path to a .toml)
//   const auto orders = engine.add_topic("orders.created");
//   engine.pipeline().filter("valid", is_valid);
//   engine.subscribe("orders.>", [](const ringflow::EventView& e) { ...; return Outcome::ok(); });
//   engine.start();
//   auto producer = engine.make_producer();          // one per publishing thread
//   producer.publish(orders, customer_id, bytes);    // noexcept, returns PublishStatus
//   engine.drain();                                  // everything accepted so far is processed
//   engine.stop();                                   // drain, then join the shard workers
//
// Lifecycle (misuse of these methods throws std::logic_error naming the state):
//   created --start()--> running --stop()--> stopped
//   - add_topic(), pipeline(), subscribe() only while created.
//   - make_producer() while created or running; publish() returns `stopped` unless running.
//   - drain() while running blocks until every event accepted before the call was processed
//     (or counted as expired/failed); in any other state it returns at once.
//   - stop() is idempotent; the destructor calls it. Every event that got `ok` is processed
//     exactly once before stop() returns, also when producers keep publishing during stop().
//   - Producers must be destroyed before their engine.
//
// From a handler or stage (they run on the engine's threads) you may call the read-only
// lookups (topic(), find_topic(), topic_name(), dead_letter_topic(), stats(), state(),
// config(), plan(), partitions(), log(), reader()), which are lock-free once started, and
// make_producer() / destroy producers. drain() and stop() throw std::logic_error there (they
// would wait for the calling handler itself). stop() holds no lock a handler needs while it
// waits for the shards.
//
// Threads: one pinned worker per shard (EngineConfig::shards, placed by ringflow::plan), plus
// graph_workers_per_shard TBB workers in each shard's arena. Handlers and stages run on those
// threads; a handler must not block for long (it holds up its shard). A call blocked past
// watchdog.handler_ms is reported by the engine's watchdog thread (a warn record through the
// log sink, repeated while it stays blocked; stats().handler_stalls). stop() waits for every
// running handler to return, however long: it never abandons or frees what a handler uses;
// while it waits, the watchdog keeps naming the blocked call.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ringflow/access.hpp"
#include "ringflow/config.hpp"
#include "ringflow/event.hpp"
#include "ringflow/log.hpp"
#include "ringflow/metrics.hpp"
#include "ringflow/outcome.hpp"
#include "ringflow/partition_log.hpp"
#include "ringflow/pipeline.hpp"
#include "ringflow/plan.hpp"
#include "ringflow/producer.hpp"
#include "ringflow/status.hpp"

namespace ringflow {

class Topology;

using Handler = std::function<Outcome(const EventView&)>;

struct ProducerOptions {
  /// Restrict it to the principal's publish grants (see access.hpp).
  std::optional<Principal> principal;
  /// What publish() does on a full ring, for this producer: fail_fast (return full at once),
  /// spin (spin, then yield, until space or the timeout) or park (sleep until the shard frees
  /// space or the timeout). A wait that times out returns full. Default: backpressure.policy.
  std::optional<BackpressurePolicy> backpressure;
  std::optional<std::chrono::microseconds> backpressure_timeout;
  /// Requests (Producer::request) this producer may have pending at once, 0..65536; one slot
  /// each (~256 bytes), allocated by make_producer(). A request beyond it ends at once with
  /// RequestStatus::too_many_pending.
  std::uint32_t max_pending_requests = 256;
};

struct TopicOptions {
  /// Where this topic's dead letters go; empty = "<name>.dlq". Registered with the topic.
  std::string dead_letter_topic;
};

struct SubscribeOptions {
  /// Deliveries per event, the first included: a handler returning Outcome::retry() is called
  /// again until this many attempts were made, then the event is dead-lettered
  /// (retries_exhausted). Outcome::fail() or an exception dead-letters at once. 1..65535.
  std::uint32_t max_attempts = 3;
  /// Delay before the first retry when the handler gives none; doubles per attempt up to
  /// retry_backoff_max, with +-25 % jitter. Retries run on the shard's timer wheel.
  std::chrono::nanoseconds retry_backoff = std::chrono::milliseconds(1);
  std::chrono::nanoseconds retry_backoff_max = std::chrono::seconds(1);
  /// Subscribe on behalf of this principal: the pattern must lie within one of its
  /// `subscribe` grants, else subscribe() throws Unauthorized (counted).
  std::optional<Principal> principal;
  /// Consumer group. Empty: this subscription gets every matching event (pub-sub). Members of
  /// one group (same name, same pattern) share the topic's partitions instead: member k of n
  /// gets the partitions p with p % n == k, so each event reaches one member and each key stays
  /// in order at its member.
  std::string group;
  /// Durable subscription: a name (1..64 characters of [A-Za-z0-9_.-], unique per engine) under
  /// which its position is checkpointed in <wal.dir>/checkpoints/<name>.ckpt, so that it
  /// resumes there after a restart. Needs wal.mode != off. Empty (default): not durable.
  /// Promise: at-least-once from the checkpoint. Per partition the checkpoint is the lowest
  /// offset this subscription has not finished (handler ok, or dead-lettered after its retries);
  /// it is written every ~100 ms when it moved, and at stop(), never past the partition's
  /// durable offset. At start() the partitions' events from the checkpoint to the end of what
  /// the log recovered are delivered again to this subscription only (same stages, retries and
  /// dead letters), before any newly published event of that partition reaches it; other
  /// subscriptions do not see them. Events finished after the last checkpoint write are
  /// delivered again: with idempotent handlers (or idempotency keys checked by the handler)
  /// the effect is once. The first start with a name (no checkpoint file) starts at the end of
  /// the recovered log, unless replay_from_start.
  /// subscribe() throws std::invalid_argument for a bad or duplicate name, or wal.mode = off.
  std::string durable_name;
  /// With durable_name: on the first start with that name (no checkpoint file yet), deliver
  /// every event the recovered log still holds (event sourcing) instead of starting at its end.
  bool replay_from_start = false;
};

/// One topic's event accounting (after drain(), with no event in flight):
///   accepted == appended + expired + duplicates        (accepted = publish() returned ok)
struct TopicStats {
  std::string name;
  std::uint64_t accepted = 0;       ///< events of this topic that publish() accepted
  std::uint64_t appended = 0;       ///< stored and run through the pipeline
  std::uint64_t expired = 0;        ///< deadline passed before ingest (each a dead letter)
  std::uint64_t duplicates = 0;     ///< dropped by the idempotency window
  std::uint64_t dead_lettered = 0;  ///< dead letters made from this topic's events
};

/// One subscription's delivery accounting (after drain()):
///   first_deliveries == ok + dead_lettered       (every event it got ends one way or the other)
/// For a subscription to a dead-letter topic, dead_lettered counts the dead letters its handler
/// failed (one attempt each; they stay in the log, also counted in dead_letter_failures).
struct SubscriptionStats {
  std::string pattern;
  std::string group;
  std::uint64_t first_deliveries = 0;  ///< events handed to it (first attempts)
  std::uint64_t retries = 0;           ///< further attempts
  std::uint64_t ok = 0;                ///< events it finished (on whichever attempt)
  std::uint64_t dead_lettered = 0;     ///< events it gave up on
  std::string durable_name;            ///< SubscribeOptions::durable_name (empty: not durable)
  std::uint64_t replayed = 0;  ///< of first_deliveries: events redelivered from its checkpoint
};

/// Totals since start. After drain():
///   published(ok) == appended + expired + duplicates, and with no stage faults
///   appended == processed == filtered + stage_failures + (events that reached subscriptions).
struct EngineStats {
  std::uint64_t published[kPublishStatusCount] = {};  ///< publish() results, by status
  std::uint64_t appended = 0;                         ///< events stored in partition logs
  std::uint64_t expired = 0;                          ///< deadline passed before processing
  std::uint64_t processed = 0;                        ///< events that went through the pipeline
  std::uint64_t filtered = 0;                         ///< dropped by a filter stage
  std::uint64_t stage_failures = 0;                   ///< dropped because a stage threw
  std::uint64_t deliveries = 0;         ///< handler calls (one per event per matching subscription)
  std::uint64_t handler_ok = 0;         ///< handler calls that returned ok
  std::uint64_t handler_failures = 0;   ///< returned fail/retry or threw
  std::uint64_t evicted_segments = 0;   ///< log segments reused by retention
  std::uint64_t retries = 0;            ///< handler retries scheduled
  std::uint64_t duplicates = 0;         ///< dropped by the idempotency window
  std::uint64_t subscribe_denied = 0;   ///< subscribe() calls refused by access control
  std::uint64_t late_replies = 0;       ///< reply() calls after their request had ended
  std::uint64_t wal_bytes_written = 0;  ///< write-ahead log: record bytes written to its files
  std::uint64_t wal_syncs = 0;          ///< write-ahead log: fdatasync calls
  /// write-ahead log: segment files deleted by wal.retention_bytes / wal.retention_age_ms
  std::uint64_t wal_segments_deleted = 0;
  std::uint64_t wal_waits = 0;  ///< shard passes that waited for the log's writer (back-pressure)
  bool wal_failing = false;     ///< the write-ahead log cannot be written right now
  std::uint64_t handler_stalls = 0;  ///< handler/stage calls blocked past watchdog.handler_ms
  std::uint64_t replayed = 0;  ///< events redelivered to durable subscriptions at start() (their
                               ///< first deliveries, not appended or processed again)
  std::uint64_t dead_lettered[4] = {};     ///< by DeadLetterReason (failed, retries_exhausted,
                                           ///< expired, retry_overflow)
  std::uint64_t dead_letter_failures = 0;  ///< a dead-letter topic's handler failed (not re-queued)
  std::uint64_t batches = 0;
  std::vector<TopicStats> topics;                ///< by topic id (dead-letter topics included)
  std::vector<SubscriptionStats> subscriptions;  ///< by subscription index               ///< shard
                                                 ///< batches (events/batches = mean batch size)

  [[nodiscard]] std::uint64_t published_count(PublishStatus s) const noexcept {
    return published[static_cast<std::size_t>(s)];
  }
  [[nodiscard]] std::uint64_t dead_letters(DeadLetterReason r) const noexcept {
    return dead_lettered[static_cast<std::size_t>(r)];
  }
  [[nodiscard]] std::uint64_t dead_letters_total() const noexcept {
    return dead_lettered[0] + dead_lettered[1] + dead_lettered[2] + dead_lettered[3];
  }
};

class Engine {
 public:
  enum class State : std::uint8_t { created, running, stopped };

  /// Validates `cfg` against the machine's topology and plans thread placement.
  /// Throws ConfigError (every problem listed) for a config that cannot run.
  explicit Engine(EngineConfig cfg);
  /// Same, against a given topology (tests; a machine description).
  Engine(EngineConfig cfg, const Topology& topology);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Registers a topic and its dead-letter topic ("<name>.dlq", up to 4 bytes past the name
  /// limit, or options.dead_letter_topic, which may be shared with other topics). Throws
  /// std::invalid_argument for a bad or duplicate name, the name of a dead-letter topic, or a
  /// dead-letter name that is already an ordinary topic (message says why),
  /// std::length_error past max_topics, std::logic_error once started.
  TopicId add_topic(std::string_view name, const TopicOptions& options = {});
  /// The dead-letter topic of `topic` (invalid TopicId for a dead-letter topic itself).
  [[nodiscard]] TopicId dead_letter_topic(TopicId topic) const;

  /// Re-publishes chosen dead letters of `dead_letter_topic` to their origin topics through
  /// `producer` (original key, payload, correlation id; causation = the dead letter). Reads
  /// every partition's log; `select` (may be empty: all) picks. Waits on `full` up to 1 s per
  /// event. Returns how many were re-published; the first other status stops it (thrown as
  /// std::runtime_error naming it).
  std::size_t redrive(TopicId dead_letter_topic,
                      const std::function<bool(const StoredEvent&)>& select, Producer& producer);
  /// The id of a registered topic; throws std::out_of_range naming it if unknown.
  /// (Lookups: lock-free once started; callable from handlers. topic_name()'s view is valid for
  /// the engine's life.)
  [[nodiscard]] TopicId topic(std::string_view name) const;
  [[nodiscard]] std::optional<TopicId> find_topic(std::string_view name) const noexcept;
  [[nodiscard]] std::string_view topic_name(TopicId id) const;

  /// The pipeline to add stages to (before start()).
  Pipeline& pipeline();

  /// Subscribes a handler to every topic matching `pattern` (NATS wildcards). Before start().
  /// Throws std::invalid_argument for a bad pattern, an empty handler, or a consumer group whose
  /// members differ in pattern. Returns the subscription's index.
  std::uint32_t subscribe(std::string_view pattern, Handler handler,
                          const SubscribeOptions& options = {});
  /// Convenience: a handler returning void counts as Outcome::ok().
  template <class F>
  requires std::is_void_v<std::invoke_result_t<F&, const EventView&>> std::uint32_t subscribe(
      std::string_view pattern, F f, const SubscribeOptions& options = {}) {
    return subscribe(pattern, Handler([g = std::move(f)](const EventView& e) mutable {
                       g(e);
                       return Outcome::ok();
                     }),
                     options);
  }

  /// A producer for the calling thread. Throws std::runtime_error when max_producers are in
  /// use, std::logic_error once stopped. Off the hot path: allocates its rings.
  [[nodiscard]] Producer make_producer();
  /// A producer that may publish only to topics matching `who.publish` (else `unauthorized`,
  /// counted). Throws std::invalid_argument for a bad grant pattern.
  [[nodiscard]] Producer make_producer(const Principal& who);
  /// A producer with its own principal and/or backpressure policy (defaults: the config's).
  [[nodiscard]] Producer make_producer(const ProducerOptions& options);

  /// Answers a request (an event published with Producer::request()) with `payload`: the
  /// caller's handle ends `replied`. Any handler or stage, on any attempt; the first reply
  /// wins. A reply after the request ended (deadline passed, already replied, dead-lettered,
  /// stopped) is dropped and counted (stats().late_replies): never delivered late.
  ReplyStatus reply(const EventView& event, std::span<const std::byte> payload) noexcept;
  ReplyStatus reply(const EventView& event, std::string_view payload) noexcept {
    return reply(event, std::span<const std::byte>(
                            reinterpret_cast<const std::byte*>(payload.data()), payload.size()));
  }

  /// Where lifecycle and error records go (log.hpp): start, plan and pinning, stop, handler
  /// exceptions (rate limited), stalled handlers. Before start() (std::logic_error after); an
  /// empty sink drops everything. Default: stderr_log_sink(LogLevel::warn).
  void set_log_sink(LogSink sink);

  void start();
  void drain();
  void stop();

  [[nodiscard]] State state() const noexcept;
  /// A snapshot of every counter (off the hot path: allocates the per-topic lists).
  [[nodiscard]] EngineStats stats() const;
  /// Every metric of kMetricDefs (metrics.hpp) with its labelled samples: counters summed over
  /// the shards and producers that own them, ring depths, partition offsets, latency
  /// histograms. Off the hot path (allocates); safe from any thread, handlers included.
  [[nodiscard]] MetricsSnapshot metrics() const;
  [[nodiscard]] const EngineConfig& config() const noexcept;
  [[nodiscard]] const Plan& plan() const noexcept;
  [[nodiscard]] std::uint32_t partitions() const noexcept;
  /// The log of one partition (readers may be used from any thread, while running too).
  [[nodiscard]] const PartitionLog& log(std::uint32_t partition) const;
  /// With the write-ahead log on: offsets of `partition` below this are durable as wal.mode
  /// promises (0 before start() or with wal.mode = off). Any thread; one atomic load.
  [[nodiscard]] std::uint64_t durable_offset(std::uint32_t partition) const;
  [[nodiscard]] PartitionReader reader(std::uint32_t partition) const {
    return log(partition).reader();
  }

 private:
  struct Impl;
  friend class Producer;
  void release_producer(detail::ProducerState* s) noexcept;

  std::unique_ptr<Impl> impl_;
};

}  // namespace ringflow
