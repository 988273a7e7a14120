#pragma once
// Producer: the publishing handle an application thread gets from Engine::make_producer().
//
// One thread at a time (checked in debug builds). It owns one SPSC ring pair (normal + urgent
// lane) per shard, so every ring keeps exactly one writer and one reader. publish() is noexcept,
// never allocates, never locks and makes no system call (unless the backpressure policy is
// `park` and the ring is full); it returns a PublishStatus and never drops an event silently:
// `ok` means the event will be processed (or dead-lettered) exactly once, anything else means it
// was not accepted. Move it between threads only while no publish() is running (the hand-over
// needs its own synchronisation, e.g. the thread start that takes it along); the move resets
// the debug role checks, so the receiving thread becomes the owner.
// Publishing to a dead-letter topic returns `unauthorized`: only the engine writes dead letters
// (Engine::redrive() re-publishes them to their origin topics).

#include <cstdint>
#include <span>
#include <string_view>

#include "ringflow/clock.hpp"
#include "ringflow/detail/membarrier.hpp"
#include "ringflow/detail/producer_state.hpp"
#include "ringflow/event.hpp"
#include "ringflow/key_hash.hpp"
#include "ringflow/request.hpp"
#include "ringflow/status.hpp"

namespace ringflow {

class Engine;

/// Names one published event for a durable acknowledgement (Producer::last_mark()).
struct DurableMark {
  std::uint32_t ring = 0;   ///< shard * lanes + lane of the event
  std::uint64_t count = 0;  ///< the event's position in that ring's sequence (1-based; 0: none)
};

enum class DurableStatus : std::uint8_t {
  durable,    ///< on disk as wal.mode promises
  timed_out,  ///< the deadline passed first (it may still become durable)
  wal_off,    ///< the engine runs without a write-ahead log: nothing is ever durable
  failed,     ///< the log cannot be written (disk full, I/O error) and the engine stopped
};
[[nodiscard]] std::string_view to_string(DurableStatus s) noexcept;

struct ProducerStats {
  std::uint64_t by_status[kPublishStatusCount] = {};  ///< index: static_cast<size_t>(status)
  std::uint64_t waited_full = 0;
  [[nodiscard]] std::uint64_t count(PublishStatus s) const noexcept {
    return by_status[static_cast<std::size_t>(s)];
  }
};

class Producer {
 public:
  Producer() noexcept = default;  ///< an empty handle: publish() returns `stopped`
  /// Moving hands the producer over: the thread that next publishes through it becomes its
  /// owner (debug role checks). Move only while no publish() is running on it.
  Producer(Producer&& other) noexcept : engine_(other.engine_), state_(other.state_) {
    other.engine_ = nullptr;
    other.state_ = nullptr;
    hand_over();
  }
  Producer& operator=(Producer&& other) noexcept;
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;
  ~Producer();  ///< returns the rings to the engine (queued events are still processed)

  /// Publishes one event. `key` (<= kMaxKeyBytes) chooses the partition; events with the same
  /// key from this producer are processed in publish order.
  [[nodiscard]] PublishStatus publish(TopicId topic, std::string_view key,
                                      std::span<const std::byte> payload,
                                      const PublishOptions& options = {}) noexcept;
  [[nodiscard]] PublishStatus publish(TopicId topic, std::string_view key, std::string_view payload,
                                      const PublishOptions& options = {}) noexcept {
    return publish(topic, key,
                   std::span<const std::byte>(reinterpret_cast<const std::byte*>(payload.data()),
                                              payload.size()),
                   options);
  }

  /// Publishes `payload` as a request that handlers answer with Engine::reply(), and returns
  /// the handle to wait on or poll. `deadline_ns` (now_ns() clock) is required: the request
  /// ends by then at the latest (expired), and it is the event's deadline too (options'
  /// deadline_ns is ignored). Never blocks (except under a waiting backpressure policy, like
  /// publish()), never throws; a refused publish ends the handle at once (not_accepted, with
  /// publish_status()), as does a full request table (too_many_pending).
  [[nodiscard]] ReplyHandle request(TopicId topic, std::string_view key,
                                    std::span<const std::byte> payload, std::int64_t deadline_ns,
                                    const PublishOptions& options = {}) noexcept;
  [[nodiscard]] ReplyHandle request(TopicId topic, std::string_view key, std::string_view payload,
                                    std::int64_t deadline_ns,
                                    const PublishOptions& options = {}) noexcept {
    return request(topic, key,
                   std::span<const std::byte>(reinterpret_cast<const std::byte*>(payload.data()),
                                              payload.size()),
                   deadline_ns, options);
  }

  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }
  [[nodiscard]] ProducerStats stats() const noexcept;

  // ---- durable acknowledgements (write-ahead log; README "Durability") ----

  /// The mark of the last event this producer published with status ok: pass it to
  /// is_durable()/wait_durable(). Producer thread; no system call, nothing allocated.
  [[nodiscard]] DurableMark last_mark() const noexcept;
  /// True once the event of `mark` (and every event this producer published before it to the
  /// same shard and lane) is durable as the engine's wal.mode promises: written to the page
  /// cache (os) or covered by an fdatasync (interval, sync). One atomic load; any thread.
  [[nodiscard]] bool is_durable(DurableMark mark) const noexcept;
  /// Waits (spin, yield, then short sleeps) until is_durable(mark) or `deadline_ns`
  /// (now_ns() clock). wal_off at once when the engine has no write-ahead log.
  [[nodiscard]] DurableStatus wait_durable(DurableMark mark, std::int64_t deadline_ns) const;
  /// Waits until every event this producer published so far is durable (or `deadline_ns`).
  [[nodiscard]] DurableStatus wait_all_durable(std::int64_t deadline_ns) const;

 private:
  friend class Engine;
  Producer(Engine* e, detail::ProducerState* s) noexcept : engine_(e), state_(s) {}

  /// Resets the debug role checks of this producer and its rings' producer sides, so that
  /// another thread may take it over (the move itself must be synchronised by the caller).
  void hand_over() noexcept {
    if (state_ == nullptr) return;
    state_->role.reset();
    for (auto& rp : state_->rings) {
      for (auto& ring : rp->lanes)
        ring.reset_producer_role();
    }
  }
  PublishStatus reject(PublishStatus s) noexcept {
    state_->counters.bump(s);
    return s;
  }
  /// Cold path: the ring is full and the policy says wait. Returns true once pushed.
  bool wait_and_push(detail::EventRing& ring, std::uint32_t shard, const PublishOptions& o,
                     std::int64_t ts, std::uint32_t topic, std::uint32_t partition,
                     std::string_view key, std::span<const std::byte> payload,
                     std::uint32_t reply_token) noexcept;
  /// publish(), carrying a request's reply token (0: none).
  PublishStatus publish_event(TopicId topic, std::string_view key,
                              std::span<const std::byte> payload, const PublishOptions& o,
                              std::uint32_t reply_token) noexcept;

  Engine* engine_ = nullptr;
  detail::ProducerState* state_ = nullptr;
};

inline PublishStatus Producer::publish(TopicId topic, std::string_view key,
                                       std::span<const std::byte> payload,
                                       const PublishOptions& o) noexcept {
  return publish_event(topic, key, payload, o, 0);
}

inline PublishStatus Producer::publish_event(TopicId topic, std::string_view key,
                                             std::span<const std::byte> payload,
                                             const PublishOptions& o,
                                             std::uint32_t reply_token) noexcept {
  if (state_ == nullptr) [[unlikely]]
    return PublishStatus::stopped;
  detail::ProducerState& s = *state_;
  s.role.claim("ringflow::Producer");
  const detail::PublishContext& ctx = *s.ctx;
  // Acquire: pairs with start()'s release; the topic count and shard tables written before
  // start() are visible. (The stop handshake below is what orders against stop().)
  if (ctx.running.load(std::memory_order_acquire) == 0) [[unlikely]] {
    return reject(PublishStatus::stopped);
  }
  if (topic.value >= ctx.topic_count) [[unlikely]] {
    return reject(PublishStatus::unknown_topic);
  }
  // A dead-letter topic is written by the engine only (its events carry a DeadLetterInfo).
  if ((ctx.topic_flags[topic.value] & detail::kTopicDeadLetter) != 0 ||
      (s.restricted && s.allowed[topic.value] == 0)) [[unlikely]] {
    return reject(PublishStatus::unauthorized);
  }
  if (key.size() > kMaxKeyBytes || payload.size() > ctx.max_payload) [[unlikely]] {
    return reject(PublishStatus::too_large);
  }
  const std::int64_t ts = o.timestamp_ns != 0 ? o.timestamp_ns : now_ns();
  if (o.deadline_ns != 0 && o.deadline_ns <= ts) [[unlikely]] {
    return reject(PublishStatus::expired);
  }
  const std::uint32_t partition = partition_of(key, ctx.partitions);
  const std::uint32_t shard = ctx.partition_shard[partition];
  const std::uint32_t lane = o.priority == Priority::urgent ? 1U : 0U;
  detail::EventRing& ring = s.rings[shard]->lanes[lane];

  // Publish/stop handshake (see detail/membarrier.hpp): mark active, then check `running`.
  // Relaxed store + light barrier; stop() pairs with its heavy barrier.
  s.active.store(1, std::memory_order_relaxed);
  detail::light_barrier();
  // Relaxed: ordering against stop() comes from the barrier pair, not from this load.
  if (ctx.running.load(std::memory_order_relaxed) == 0) [[unlikely]] {
    s.active.store(0, std::memory_order_release);
    return reject(PublishStatus::stopped);
  }
  bool pushed = ring.try_emplace(o, ts, topic.value, partition, key, payload, reply_token);
  if (!pushed) [[unlikely]] {
    s.note_full(std::size_t{shard} * detail::kLanes + lane);
    pushed = s.backpressure != BackpressurePolicy::fail_fast &&
             wait_and_push(ring, shard, o, ts, topic.value, partition, key, payload, reply_token);
  }
  if (pushed) {
    auto& count = s.pushed[shard * detail::kLanes + lane];
    // Release: drain() acquires this count; the ring push above is then visible to it.
    count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    s.last_ring = shard * detail::kLanes + lane;
  }
  // Release: stop() acquires `active` == 0, after which this publish's push is visible.
  s.active.store(0, std::memory_order_release);
  if (!pushed) [[unlikely]]
    return reject(PublishStatus::full);
  if (ctx.wake_shards) ctx.shard_work[shard].notify();
  s.counters.bump(PublishStatus::ok);
  return PublishStatus::ok;
}

}  // namespace ringflow
