#pragma once
// A shard worker: one pinned thread that drains its rings (urgent lane first), appends events
// to the partition logs it owns, and runs the pipeline graph on each batch. Internal.

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "dedup_window.hpp"
#include "logger.hpp"
#include "retry_wheel.hpp"
#include "ringflow/clock.hpp"
#include "ringflow/config.hpp"
#include "ringflow/detail/cache.hpp"
#include "ringflow/detail/producer_state.hpp"
#include "ringflow/engine.hpp"
#include "ringflow/metrics.hpp"
#include "ringflow/partition_log.hpp"
#include "ringflow/pipeline.hpp"

namespace ringflow::detail {

class PinnedArena;

/// Depth of engine-thread scopes on this thread: nonzero while it runs a shard loop, a stage or
/// a handler. drain() and stop() refuse to run there (they would wait for themselves).
inline thread_local std::uint32_t t_engine_thread_depth = 0;
[[nodiscard]] inline bool on_engine_thread() noexcept {
  return t_engine_thread_depth != 0;
}
struct EngineThreadScope {
  EngineThreadScope() noexcept { ++t_engine_thread_depth; }
  ~EngineThreadScope() { --t_engine_thread_depth; }
  EngineThreadScope(const EngineThreadScope&) = delete;
  EngineThreadScope& operator=(const EngineThreadScope&) = delete;
};

/// One event moving through the graph: where it is stored, and what stages made of it.
struct WorkItem {
  const RecordHeader* rec;
  const std::byte* payload;
  std::uint32_t payload_len;
  std::uint32_t topic;
  bool live;                  ///< false once filtered out or failed in a stage
  std::uint32_t reply_token;  ///< nonzero for a request (detail/request_table.hpp)
};

/// The unit the graph passes around: one shard batch (never a single event).
struct Batch {
  WorkItem* items = nullptr;
  std::size_t size = 0;
  std::byte* scratch = nullptr;  ///< size * scratch_stride bytes for map stages
  std::size_t scratch_stride = 0;
};

/// A statistic with a single writer at a time (hand-overs are ordered by TBB or the batch
/// protocol): relaxed load + store, no locked instruction.
struct Counter {
  std::atomic<std::uint64_t> v{0};
  void add(std::uint64_t n) noexcept {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

struct ShardCounters {
  Counter appended, expired, processed, filtered, stage_failures, batches;
  Counter retries;               ///< retries scheduled
  Counter duplicates;            ///< dropped by the idempotency window
  Counter dead_lettered[4];      ///< by DeadLetterReason
  Counter dead_letter_failures;  ///< a handler of a dead-letter topic failed (not re-queued)
  Counter idle_polls;            ///< run loop passes that found no work
  Counter yields;                ///< idle passes that yielded the core (spin_yield)
  Counter parks;                 ///< idle waits on the shard's parking spot (park)
  Counter wal_waits;  ///< passes that stopped ingesting until the write-ahead log caught up
};

/// A log-linear latency histogram (LatencyBuckets) with one writer, the shard thread.
struct LatencyRecorder {
  Counter buckets[LatencyBuckets::kCount];
  Counter count, sum_ns;
  void record(std::uint64_t ns, std::uint64_t weight) noexcept {
    buckets[LatencyBuckets::index(ns)].add(weight);
    count.add(weight);
    sum_ns.add(ns * weight);
  }
};
struct SubscriptionCounters {
  alignas(kCacheLine) Counter deliveries;  ///< handler calls, retries included
  Counter ok, failures;                    ///< calls that returned ok / did not
  Counter retried;                         ///< calls that were retries
  Counter dead_lettered;                   ///< events this subscription gave up on
  Counter replayed;  ///< first deliveries that were replays from its checkpoint (start())
};

/// A handler or stage call as the watchdog (watchdog.hpp) sees it: a call number that changes
/// with every call, odd while a call runs, and the topic of its event. One writer at a time
/// (the subscription's serial node, or the shard thread); the watchdog only samples it. No
/// clock read: the watchdog times a call number that stays the same on its own clock.
struct alignas(kCacheLine) CallWatch {
  std::atomic<std::uint64_t> state{0};  ///< (calls << 1) | 1 while a call runs; even: idle
  std::atomic<std::uint32_t> topic{0};  ///< topic of the running call's event
  std::uint64_t calls = 0;              ///< the writer's own count

  void enter(std::uint32_t t) noexcept {
    // Relaxed (both): a sample for the watchdog; nothing is handed over through them.
    topic.store(t, std::memory_order_relaxed);
    state.store((++calls << 1) | 1U, std::memory_order_relaxed);
  }
  void leave() noexcept {
    state.store(calls << 1, std::memory_order_relaxed);  // relaxed: as in enter()
  }
};

/// The shard's time for what it stores and schedules (ingest_ns, retry due times, ages): the
/// engine clock, except that it never goes backwards. Should now_ns() jump back, it carries on
/// from where it was at the clock's rate, so ingest times stay non-decreasing and a retry is
/// never put off by the size of the jump. Deadlines are compared with now_ns() itself (the
/// producers' clock). Shard thread only.
class ShardClock {
 public:
  /// The shard time for a reading `raw` of now_ns().
  [[nodiscard]] std::int64_t at(std::int64_t raw) noexcept {
    std::int64_t t = raw + adjust_;
    if (t < last_) [[unlikely]] {
      adjust_ += last_ - t;
      t = last_;
    }
    last_ = t;
    return t;
  }
  [[nodiscard]] std::int64_t now() noexcept { return at(now_ns()); }

 private:
  std::int64_t adjust_ = 0;
  std::int64_t last_ = INT64_MIN;
};

/// Per topic, written by the shard thread only.
struct TopicCounters {
  Counter accepted, appended, expired, duplicates, dead_lettered;
};

struct Subscription {
  std::string pattern;
  Handler handler;
  std::string group;
  std::vector<std::uint8_t> matches;  ///< by topic id: 1 when the pattern matches
  std::uint32_t group_size = 1;       ///< members of its consumer group (1 = no group)
  std::uint32_t member = 0;  ///< its index in the group: gets partitions p % size == member
  std::uint32_t max_attempts = 1;
  std::int64_t backoff_ns = 0;
  std::int64_t backoff_max_ns = 0;
  std::string durable_name;  ///< empty: not durable
  bool replay_from_start = false;
  std::uint32_t durable = kNotDurable;  ///< index into the positions (start())
  static constexpr std::uint32_t kNotDurable = UINT32_MAX;
};

/// Per topic: where its dead letters go (kNoTopic for a dead-letter topic itself).
inline constexpr std::uint32_t kNoTopic = UINT32_MAX;

/// A handler outcome other than ok, noted by the subscription's (serial) node and acted on by
/// the shard thread after the batch.
struct Failure {
  std::uint32_t item;
  Outcome::Kind kind;
  std::int64_t delay_ns;
  bool threw;  ///< the handler threw (logged, rate limited, by the shard thread)
  char error[DeadLetterInfo::kErrorBytes];
};

/// Failure handling's own copy of a failing event, taken before any dead letter is appended:
/// those appends may reuse the log segments that hold the batch's records.
struct StagedEvent {
  RecordHeader hdr;
  std::uint32_t payload_len = 0;       ///< of the payload the handlers saw
  const std::byte* payload = nullptr;  ///< the handlers' payload (staged copy or map scratch)
  std::byte bytes[kMaxKeyBytes + kMaxPayloadBytes];  ///< key, then the stored payload
  std::uint32_t reply_token = 0;
  bool staged = false;

  [[nodiscard]] std::string_view key() const noexcept {
    return {reinterpret_cast<const char*>(bytes), hdr.key_len};
  }
  [[nodiscard]] std::span<const std::byte> original() const noexcept {
    return {bytes + hdr.key_len, hdr.payload_len};
  }
};

/// What a shard needs from its engine (owned by Engine::Impl, outlives every shard).
struct RecoveredKey;          // store/wal/durability.hpp
class SubscriptionPositions;  // store/checkpoint/checkpoint_store.hpp

struct ShardEnv {
  const EngineConfig* cfg;
  PublishContext* ctx;
  const Pipeline* pipeline;
  std::vector<Subscription>* subscriptions;
  std::unique_ptr<ProducerState>* producers;  ///< max_producers slots
  std::atomic<std::uint32_t>* producer_count;
  std::vector<std::unique_ptr<PartitionLog>>* logs;     ///< by partition
  const std::vector<std::uint32_t>* dead_letter_topic;  ///< by topic id
  const LogSink* log_sink;                              ///< the engine's (lifecycle, errors)
  /// Idempotency keys recovered from the write-ahead log, by partition (oldest first).
  const std::vector<std::vector<RecoveredKey>>* recovered_keys;
  bool wal;  ///< the write-ahead log is on: respect durable floors, publish `appended`
  const std::deque<std::string>* topic_names;  ///< by topic id (for log records)
  /// Durable subscriptions (SubscribeOptions::durable_name): their positions, which the shard
  /// writes for the partitions it owns (null when there are none), and by durable index *
  /// partitions + partition the offset to replay from at start (UINT64_MAX: nothing).
  SubscriptionPositions* positions = nullptr;
  const std::vector<std::uint64_t>* replay_from = nullptr;
};

/// Saturating signed addition (due times: now + a handler's delay may not overflow).
[[nodiscard]] inline std::int64_t add_saturating(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

class Shard {
 public:
  Shard(ShardEnv env, std::uint32_t id, ThreadPlacement placement,
        std::vector<int> graph_worker_pus, bool pin);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  void start();
  /// Asks the worker to exit once its rings are empty; join() waits for it.
  void request_exit() noexcept;
  void join();

  [[nodiscard]] const ShardCounters& counters() const noexcept { return counters_; }
  [[nodiscard]] const std::vector<std::unique_ptr<SubscriptionCounters>>& subscription_counters()
      const noexcept {
    return sub_counters_;
  }
  [[nodiscard]] const std::string& pin_note() const noexcept { return pin_note_; }
  /// True once the worker has replayed what its durable subscriptions had not finished (at
  /// once without any): drain() waits for it, so the replay counts as events in flight.
  [[nodiscard]] bool replay_done() const noexcept {
    return replay_done_.load(std::memory_order_acquire);  // pairs with run()'s release
  }
  [[nodiscard]] const std::vector<TopicCounters>& topic_counters() const noexcept {
    return topic_counters_;
  }
  [[nodiscard]] const LatencyRecorder& ingest_to_done() const noexcept { return ingest_to_done_; }
  [[nodiscard]] const LatencyRecorder& stage_latency(LatencyStage s) const noexcept {
    return stage_latency_[static_cast<std::size_t>(s)];
  }
  /// For the watchdog: the call slot of subscription `s`, and the one of the stages.
  [[nodiscard]] const CallWatch& subscription_watch(std::size_t s) const noexcept {
    return *sub_watch_[s];
  }
  [[nodiscard]] const CallWatch& stage_watch() const noexcept { return stage_watch_; }
  /// The stage whose call stage_watch() shows (index into the pipeline's stages).
  [[nodiscard]] std::uint32_t watched_stage() const noexcept {
    return watched_stage_.load(std::memory_order_relaxed);  // relaxed: a sample, as CallWatch
  }

 private:
  void run();
  void build_graph();
  std::size_t poll_once();
  std::size_t drain_ring(ProducerState& p, std::uint32_t lane);
  void run_pipeline();
  void run_stage(const Pipeline::Stage& stage, Batch& b);
  void deliver(std::size_t sub, Batch& b);
  [[nodiscard]] bool rings_empty() const noexcept;
  [[nodiscard]] bool idle() const noexcept { return rings_empty() && wheel_.pending() == 0; }

  // Delivery semantics: retries on the wheel, dead letters to the topic's DLQ.
  void handle_failures();
  void stage(std::uint32_t item);
  /// `continues`: the retry entry being fired whose chain this failure continues (or null).
  void on_failure(std::uint32_t sub, const RecordHeader& rec, std::string_view key,
                  std::span<const std::byte> original, std::span<const std::byte> payload,
                  std::uint32_t topic, std::uint32_t attempt, const Failure& f,
                  const char* first_error, const RetryEntry* continues, std::uint32_t reply_token);
  void fire_retry(RetryEntry& e);
  /// Appends a dead letter with ingest time `ingest_ns` (non-decreasing per partition).
  void dead_letter(std::uint32_t sub, const RecordHeader& rec, std::string_view key,
                   std::span<const std::byte> original, std::uint32_t attempts,
                   DeadLetterReason reason, const char* first_error, const char* last_error,
                   std::int64_t ingest_ns, std::uint32_t reply_token);
  /// Ends the request behind `reply_token` (if any) with `status`.
  void complete_request(std::uint32_t reply_token, std::int64_t publish_ns, RequestStatus status,
                        DeadLetterReason reason = DeadLetterReason::failed) noexcept;
  /// After the pipeline: requests that no subscription got end as no_subscriber.
  void complete_unheard_requests() noexcept;
  /// Whether a stage may send an event to topic `t` (registered, not a dead-letter topic).
  [[nodiscard]] bool routable(std::uint32_t t) const noexcept {
    return t < env_.ctx->topic_count && (env_.ctx->topic_flags[t] & kTopicDeadLetter) == 0;
  }
  /// Runs the handlers of dead-letter subscriptions for one stored dead letter.
  /// `only`: replay, deliver to that subscription alone (SIZE_MAX: every matching one).
  void deliver_dead_letter(const RecordHeader* rec, std::size_t only = SIZE_MAX);
  void publish_retry_pending() noexcept;

  // Durable subscriptions: positions and the replay at start (shard thread only).
  /// Before the run loop: delivers each durable subscription's events from its checkpoint to
  /// the recovered end, to that subscription only.
  void replay();
  void replay_partition(std::uint32_t sub, std::uint32_t partition, std::uint64_t from,
                        std::uint64_t end);
  void run_replay_batch(std::uint32_t sub, std::size_t n);
  /// A partition whose durable positions may move (owner thread; no allocation).
  void touch(std::uint32_t partition) noexcept {
    if (touched_flag_[partition] != 0) return;
    touched_flag_[partition] = 1;
    touched_[ntouched_++] = partition;
  }
  /// For each touched partition: every durable subscription with no retry outstanding there
  /// has finished everything below the log's end; publish that as its position.
  void publish_positions() noexcept;
  void store_position(std::uint32_t durable, std::uint32_t partition,
                      std::uint64_t offset) noexcept;
  // Error logs (shard thread only; rate limited, nothing built unless a record is admitted).
  void log_handler_exception(std::uint32_t sub, std::uint32_t topic, const char* what) noexcept;
  void note_stage_exception(const Pipeline::Stage& st, const char* what) noexcept;
  void log_stage_exceptions() noexcept;
  void log_retry_overflow() noexcept;
  [[nodiscard]] std::string topic_name(std::uint32_t t) const;
  std::int64_t backoff(const Subscription& sub, std::uint32_t attempt) noexcept;

  ShardEnv env_;
  std::uint32_t id_;
  ThreadPlacement placement_;
  std::vector<int> graph_pus_;
  bool pin_;
  std::string pin_note_;
  std::thread thread_;

  // Batch buffers, allocated once.
  std::vector<WorkItem> items_;
  std::vector<std::byte> scratch_;
  Batch batch_;

  std::unique_ptr<PinnedArena> arena_;
  std::unique_ptr<tbb::flow::graph> graph_;
  std::vector<std::unique_ptr<tbb::flow::graph_node>> nodes_;
  tbb::flow::receiver<Batch*>* head_ = nullptr;
  bool inline_pipeline_ = false;  ///< stages and deliveries called directly (no graph built)

  RetryWheel wheel_;
  std::vector<std::unique_ptr<DedupWindow>> dedup_;  ///< by partition (owned ones only)
  std::vector<std::vector<Failure>> failures_;       ///< per subscription, batch_size each
  std::vector<StagedEvent> staged_;                  ///< by batch item, batch_size
  std::vector<std::size_t> nfailures_;
  std::uint64_t rng_ = 0x9E3779B97F4A7C15ULL;  ///< backoff jitter (xorshift)

  ShardCounters counters_;
  ShardClock clock_;                                   ///< what the shard stores and schedules by
  std::vector<std::unique_ptr<CallWatch>> sub_watch_;  ///< by subscription
  CallWatch stage_watch_;
  std::atomic<std::uint32_t> watched_stage_{0};
  std::vector<TopicCounters> topic_counters_;  ///< by topic id
  std::vector<std::unique_ptr<SubscriptionCounters>> sub_counters_;
  bool wal_blocked_ = false;  ///< the last poll stopped at a durable floor (owner only)
  // Durable positions (owner thread only). outstanding_: retry chains pending per (durable
  // subscription, partition); while nonzero the position stays at the oldest failing event.
  bool tracking_ = false;  ///< there are durable subscriptions
  std::atomic<bool> replay_done_{false};
  bool replaying_ = false;  ///< replay() runs: stages do not count as new processing
  std::vector<std::uint32_t> outstanding_;  ///< by durable * partitions + partition
  std::vector<std::uint32_t> touched_;      ///< partitions to publish, ntouched_ of them
  std::vector<std::uint8_t> touched_flag_;  ///< by partition
  std::size_t ntouched_ = 0;
  std::vector<std::uint64_t> replay_buf_;  ///< batch_size records, 8-aligned (replay only)
  std::int64_t next_retention_check_ns_ = 0;
  LatencyRecorder ingest_to_done_;
  std::int64_t sample_every_ = 0;                      ///< metrics_latency_sample_every (0 = off)
  std::int64_t sample_left_ = 0;                       ///< events until the next timed batch
  LatencyRecorder stage_latency_[kLatencyStageCount];  ///< by LatencyStage, the timed batches
  /// On a timed batch: the pipeline stages' time so far. Written by run_stage() (serial nodes,
  /// ordered before the shard reads it by the graph's wait_for_all()).
  std::int64_t stages_ns_ = 0;
  bool timing_ = false;  ///< the current batch is timed

  // Error logs, rate limited per shard and kind (LogRateLimit: owner thread only).
  LogRateLimit handler_log_limit_;
  LogRateLimit stage_log_limit_;
  LogRateLimit overflow_log_limit_;
  /// Stage exceptions of the current batch: how many, and the first one's stage and what().
  /// Written by run_stage() (stages run one at a time), read by the shard after the pipeline.
  std::uint64_t stage_throws_ = 0;
  const Pipeline::Stage* stage_thrower_ = nullptr;
  char stage_error_[DeadLetterInfo::kErrorBytes] = {};

  alignas(kCacheLine) std::atomic<bool> exit_{false};
  /// Retries still scheduled, retry chains started, and the oldest chain not yet ended (see
  /// RetryWheel). Written by the shard thread only; drain() and stop() wait on them.
  std::atomic<std::uint64_t> retry_pending_{0};
  std::atomic<std::uint64_t> retry_chains_started_{0};
  std::atomic<std::uint64_t> retry_oldest_chain_{0};

 public:
  [[nodiscard]] std::uint64_t retry_pending() const noexcept {
    // Acquire: pairs with publish_retry_pending()'s release; handler effects are visible.
    return retry_pending_.load(std::memory_order_acquire);
  }
  [[nodiscard]] std::uint64_t retry_chains_started() const noexcept {
    // Acquire: pairs with publish_retry_pending()'s release.
    return retry_chains_started_.load(std::memory_order_acquire);
  }
  /// Every retry chain numbered below `chain` has ended (UINT64_MAX: no retry is pending).
  [[nodiscard]] bool retry_chains_done_below(std::uint64_t chain) const noexcept {
    if (chain == UINT64_MAX) return retry_pending() == 0;
    // Acquire: pairs with publish_retry_pending()'s release; handler effects are visible.
    return retry_oldest_chain_.load(std::memory_order_acquire) >= chain;
  }
};

}  // namespace ringflow::detail
