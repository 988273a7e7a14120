#pragma once
// Internals shared by Producer (inline hot path) and the engine's shard workers. Not API.
//
// Thread roles:
//   - one producer thread per ProducerState at a time (checked by `role` in debug builds); it
//     is the only writer of its rings' producer sides, of `active` and of the counters;
//   - each shard worker is the only consumer of ring (state, shard, lane) for its shard and the
//     only writer of `completed[shard][lane]`;
//   - drain()/stop()/stats() read the counters, `active` and `completed` from any thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string>
#include <vector>

#include "ringflow/detail/cache.hpp"
#include "ringflow/detail/event_slot.hpp"
#include "ringflow/detail/request_table.hpp"
#include "ringflow/detail/role_check.hpp"
#include "ringflow/limits.hpp"
#include "ringflow/policy.hpp"
#include "ringflow/spsc_ring.hpp"
#include "ringflow/status.hpp"
#include "ringflow/wait_strategy.hpp"

namespace ringflow::detail {

using EventRing = SpscRing<EventSlot, std::pmr::polymorphic_allocator<EventSlot>>;

inline constexpr std::uint32_t kLanes = 2;  // 0 = normal, 1 = urgent

/// PublishContext::topic_flags: only the engine writes dead letters (publish() refuses them).
inline constexpr std::uint8_t kTopicDeadLetter = 1;
/// PublishContext::topic_flags: some subscription matches the topic.
inline constexpr std::uint8_t kTopicHasSubscriber = 2;

/// What every producer reads on publish. Written before start(); afterwards only `running`
/// changes.
struct PublishContext {
  /// 1 while publish() may accept. Cleared by stop() before its heavy_barrier().
  alignas(kCacheLine) std::atomic<std::uint32_t> running{0};
  std::uint32_t partitions = 1;
  std::uint32_t shards = 1;
  std::uint32_t topic_count = 0;
  /// By topic id (topic_count entries): kTopic* flags, e.g. dead-letter topics refuse publish.
  const std::uint8_t* topic_flags = nullptr;
  std::uint32_t max_payload = 0;
  BackpressurePolicy backpressure = BackpressurePolicy::fail_fast;
  bool wake_shards = false;  ///< shards park when idle: publishers must notify
  /// Some producer uses park backpressure: shards notify RingPair::space after each batch.
  std::atomic<bool> notify_space{false};
  std::int64_t backpressure_timeout_ns = 0;
  std::vector<std::uint16_t> partition_shard;  ///< partition -> owning shard
  /// Per shard: parked shard workers wait here for work (wait strategy `park`).
  std::unique_ptr<Parking[]> shard_work;
};

/// A producer's counters. Single writer (the producer thread): plain load + store, relaxed.
struct ProducerCounters {
  std::atomic<std::uint64_t> by_status[kPublishStatusCount] = {};
  std::atomic<std::uint64_t> waited_full = {};  ///< publishes that found a ring full, then waited

  void bump(PublishStatus s) noexcept {
    auto& c = by_status[static_cast<std::size_t>(s)];
    // Relaxed: a statistic with one writer; readers only need an eventually-current value.
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

struct RingPair {
  RingPair(std::size_t capacity, std::pmr::memory_resource* mr)
      : lanes{EventRing(capacity, std::pmr::polymorphic_allocator<EventSlot>(mr)),
              EventRing(capacity, std::pmr::polymorphic_allocator<EventSlot>(mr))} {}
  EventRing lanes[kLanes];
  /// Events of each lane fully processed by the shard (written by the shard only, release,
  /// once per batch; drain() acquires it: everything the handlers did is then visible).
  alignas(kCacheLine) std::atomic<std::uint64_t> completed[kLanes] = {};
  /// Events of each lane appended to the partition logs (the shard, release, once per batch
  /// before the pipeline; only with the write-ahead log on): the log's writer snapshots it.
  std::atomic<std::uint64_t> appended[kLanes] = {};
  /// Events of each lane durable in the write-ahead log (its writer, release; the producer's
  /// is_durable() acquires it).
  alignas(kCacheLine) std::atomic<std::uint64_t> durable[kLanes] = {};
  /// Its producer, parked on a full lane (backpressure `park`), waits here for space; the shard
  /// notifies it after draining this pair, so a drain wakes only the producer it freed.
  Parking space;
};

struct ProducerState {
  ProducerState(const PublishContext* c, std::uint32_t idx) : ctx(c), index(idx) {}

  const PublishContext* ctx;
  std::uint32_t index;
  std::vector<std::unique_ptr<RingPair>> rings;  ///< one pair per shard

  /// 1 while a publish() is between its `running` check and its ring push (see membarrier.hpp).
  alignas(kCacheLine) std::atomic<std::uint32_t> active{0};
  /// The ring (shard * kLanes + lane) of the last successful publish (producer thread only):
  /// Producer::last_mark() names it.
  std::uint32_t last_ring = 0;
  [[no_unique_address]] RoleCheck role;
  /// Access control: when restricted, allowed[topic] != 0 for the topics its principal may
  /// publish to. Written before the producer is handed out or before start() (both ordered by
  /// the engine's lock and start()'s release of `running`).
  BackpressurePolicy backpressure = BackpressurePolicy::fail_fast;  ///< this producer's policy
  std::int64_t backpressure_timeout_ns = 0;
  bool restricted = false;
  std::vector<std::uint8_t> allowed;
  std::vector<std::string> publish_grants;
  ProducerCounters counters;
  /// Events pushed per (shard, lane), written by the producer after each successful push
  /// (release: pairs with drain()'s acquire, so a drain that sees the count sees the event).
  std::unique_ptr<std::atomic<std::uint64_t>[]> pushed;
  /// Publishes that found ring (shard, lane) full, whatever happened next (statistic; written
  /// by the producer on the cold full path only).
  std::unique_ptr<std::atomic<std::uint64_t>[]> full;
  void note_full(std::size_t ring) noexcept {
    auto& c = full[ring];
    // Relaxed: a statistic with one writer; readers only need an eventually-current value.
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  /// Its pending requests (request.hpp); sized by ProducerOptions::max_pending_requests.
  /// Read by shards and reply() from any thread: release-stored by make_producer(), acquired by
  /// readers. Every table it ever pointed to stays in request_tables (handles of a previous
  /// owner may still use an older one), so a reader never sees a freed table.
  std::atomic<RequestTable*> requests{nullptr};
  std::vector<std::unique_ptr<RequestTable>> request_tables;  ///< owned; under the engine lock
};

}  // namespace ringflow::detail
