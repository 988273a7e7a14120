#pragma once
// PartitionLog: the in-memory, append-only event store of one partition.
//
// Design:
//   - One writer: the shard worker that owns the partition. Any number of readers
//     (PartitionReader), on any thread; readers never block the writer and never make it wait.
//   - Segmented: a fixed ring of retention_bytes / segment_bytes segments, each allocated once
//     on first use from the shard's NUMA-node memory resource. Appending never allocates per
//     event; when the ring is full the oldest segment is reused (evicted), which advances
//     first_offset(). Memory is bounded by retention_bytes (+ a small per-segment index).
//   - Offsets are dense and monotonic from 0. ingest_ns is non-decreasing within a partition,
//     so replay from a timestamp is a binary search.
//   - Retention by age: evict_older_than() evicts whole segments whose newest event is older
//     than the limit (the shard calls it between batches).
//
// Visibility: a record is published by a release store of end_offset(); a reader that
// acquires end_offset() > o sees record o complete. A reused segment is guarded by a seqlock:
// a reader copies a record, then checks that its segment was not reset meanwhile; if it was,
// the read reports `evicted` instead of returning torn data. Record bytes are copied with
// relaxed atomic word accesses on both sides, so the seqlock is free of data races.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringflow/detail/cache.hpp"
#include "ringflow/event.hpp"

namespace ringflow {

/// A copy of one stored event, returned by PartitionReader.
struct StoredEvent {
  std::uint64_t offset = 0;
  std::uint64_t id = 0;
  TopicId topic;
  std::uint32_t partition = 0;
  std::int64_t publish_ns = 0;
  std::int64_t ingest_ns = 0;
  std::int64_t deadline_ns = 0;
  std::uint64_t correlation_id = 0;
  std::uint64_t causation_id = 0;
  Priority priority = Priority::normal;
  std::uint32_t attempt = 0;
  std::optional<DeadLetterInfo> dead_letter;  ///< set for events of a dead-letter topic
  std::string key;
  std::vector<std::byte> payload;
};

enum class ReadStatus : std::uint8_t {
  ok,       ///< an event was copied out
  end,      ///< nothing more yet (the reader is at end_offset())
  evicted,  ///< the requested offset is no longer retained; the reader moved to first_offset()
};

class PartitionReader;

/// How far the write-ahead log has made a partition durable (the engine's WAL part writes it,
/// the log reads it): retention never evicts a record at or past `offset` unless `released`
/// (the engine is stopping with a log that can no longer be written).
struct DurableFloor {
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> offset{0};
  std::atomic<bool> released{false};
};

class PartitionLog {
 public:
  struct Options {
    std::size_t segment_bytes = std::size_t{1} << 20;
    std::size_t retention_bytes = std::size_t{8} << 20;
    std::chrono::milliseconds retention_age{0};  ///< 0 = none
    /// Allocate every segment up front and touch its pages, so appends never page-fault or
    /// allocate (the engine does this; off, segments are allocated on first use).
    bool preallocate = false;
  };

  /// Throws std::invalid_argument if segment_bytes cannot hold the largest record or
  /// retention_bytes is under two segments.
  PartitionLog(std::uint32_t partition, Options opts,
               std::pmr::memory_resource* mr = std::pmr::get_default_resource());
  ~PartitionLog();
  PartitionLog(const PartitionLog&) = delete;
  PartitionLog& operator=(const PartitionLog&) = delete;

  // ---- writer (the owning shard thread only) ----

  /// Appends one event (evicting the oldest segment when full). Throws std::length_error for
  /// a key over kMaxKeyBytes or a payload over kMaxPayloadBytes (the engine never passes one). The
  /// returned record stays valid until its segment is evicted. Allocates only when a segment is
  /// used for the first time.
  const detail::RecordHeader* append(const detail::RecordHeader& header, std::string_view key,
                                     std::span<const std::byte> payload,
                                     const DeadLetterInfo* dead_letter = nullptr);
  /// Evicts whole segments whose newest event was ingested before `cutoff_ns` (and, with a
  /// durable floor, whose events are all durable).
  void evict_older_than(std::int64_t cutoff_ns) noexcept;
  /// With the write-ahead log on: never evict records the floor does not cover (set before the
  /// first append; null = no floor).
  void set_durable_floor(const DurableFloor* floor) noexcept;
  /// False while records before the head segment are not durable yet: the shard stops
  /// ingesting (back-pressure) until the log's writer catches up, so the writer lags by about
  /// one segment at most.
  [[nodiscard]] bool durable_headroom() const noexcept;
  /// Recovery: the first record appended gets `offset` (the partition continues where its
  /// write-ahead log ended). Only on an empty log; throws std::logic_error otherwise.
  void start_at(std::uint64_t offset);
  /// Times an eviction had to wait for the durable floor (statistic).
  [[nodiscard]] std::uint64_t floor_waits() const noexcept {
    return floor_waits_.load(std::memory_order_relaxed);
  }

  // ---- any thread ----

  [[nodiscard]] std::uint32_t partition() const noexcept { return partition_; }
  /// The next offset to be assigned (= events ever appended).
  [[nodiscard]] std::uint64_t end_offset() const noexcept {
    // Acquire: pairs with append()'s release store; records below it are complete.
    return end_offset_.load(std::memory_order_acquire);
  }
  /// The oldest retained offset.
  [[nodiscard]] std::uint64_t first_offset() const noexcept {
    // Acquire: pairs with the eviction's release store.
    return first_offset_.load(std::memory_order_acquire);
  }
  [[nodiscard]] std::uint64_t evicted_segments() const noexcept {
    return evictions_.load(std::memory_order_relaxed);  // statistic only
  }
  [[nodiscard]] std::size_t segment_count() const noexcept { return segments_.size(); }
  /// Bytes of the records it holds (evicted segments no longer count).
  [[nodiscard]] std::uint64_t bytes_held() const noexcept {
    return bytes_held_.load(std::memory_order_relaxed);  // statistic only
  }
  [[nodiscard]] PartitionReader reader() const noexcept;

  /// The largest record a segment must hold.
  static constexpr std::size_t kMaxRecordBytes =
      detail::record_size(kMaxKeyBytes, kMaxPayloadBytes, /*dead_letter=*/true);

 private:
  friend class PartitionReader;
  struct Segment;

  void open_segment(std::size_t index);
  [[nodiscard]] bool floor_covers(std::uint64_t end) const noexcept;
  Segment& segment_for(std::uint64_t offset) const noexcept;
  void add_bytes_held(std::int64_t delta) noexcept {
    // Relaxed load + store: one writer; readers only report the value.
    bytes_held_.store(
        bytes_held_.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(delta),
        std::memory_order_relaxed);
  }

  std::uint32_t partition_;
  Options opts_;
  std::pmr::memory_resource* mr_;
  std::size_t index_slots_;  ///< records a segment can index
  std::vector<std::unique_ptr<Segment>> segments_;
  std::size_t head_ = 0;                     ///< segment being appended to (writer only)
  bool started_ = false;                     ///< writer only
  std::int64_t last_ingest_ns_ = INT64_MIN;  ///< writer only: ingest_ns of the last append
  const DurableFloor* floor_ = nullptr;      ///< set before the first append
  std::atomic<std::uint64_t> floor_waits_{0};

  alignas(detail::kCacheLine) std::atomic<std::uint64_t> end_offset_{0};
  std::atomic<std::uint64_t> first_offset_{0};
  std::atomic<std::uint64_t> evictions_{0};
  std::atomic<std::uint64_t> bytes_held_{0};  ///< written by the writer only
};

/// Reads one partition's log from any thread, copying events out. Not thread-safe itself
/// (one reader object per reading thread); any number of readers per log.
class PartitionReader {
 public:
  explicit PartitionReader(const PartitionLog& log) noexcept : log_(&log) {}

  /// Positions at `offset`. Returns `evicted` (positioned at first_offset()) when it is no
  /// longer retained, `end` when offset >= end_offset() (positioned at end), else ok.
  ReadStatus seek(std::uint64_t offset) noexcept;
  /// Positions at the first retained event ingested at or after `ingest_ns`.
  ReadStatus seek_time(std::int64_t ingest_ns) noexcept;
  /// Copies the event at the position and advances. `evicted`: the position was overtaken by
  /// retention; the reader jumped to first_offset() (call next() again to continue there).
  ReadStatus next(StoredEvent& out);
  /// Like next(), but copies the record's bytes as stored (detail::RecordHeader, key, payload
  /// padded to 8, [DeadLetterInfo]) into `out` (kMaxRecordBytes at least) and sets `size`.
  ReadStatus next_raw(std::byte* out, std::size_t& size) noexcept;

  [[nodiscard]] std::uint64_t position() const noexcept { return pos_; }

 private:
  /// Copies record `offset` into `out` if it is still retained and intact.
  bool copy_record(std::uint64_t offset, StoredEvent& out) const;
  /// Copies record `offset`'s bytes into `buf`; its size, or 0 if not retained/intact.
  std::size_t copy_raw(std::uint64_t offset, std::byte* buf) const noexcept;
  bool ingest_of(std::uint64_t offset, std::int64_t& ingest_ns) const noexcept;

  const PartitionLog* log_;
  std::uint64_t pos_ = 0;
  mutable std::size_t seg_hint_ = 0;  ///< the segment that held the last record copied
};

inline PartitionReader PartitionLog::reader() const noexcept {
  return PartitionReader(*this);
}

}  // namespace ringflow
