#pragma once
// Events: what a producer publishes (PublishOptions), what the partition log stores
// (detail::RecordHeader + key + payload) and what stages and handlers see (EventView, Event).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include "ringflow/limits.hpp"

namespace ringflow {

/// A registered topic. Resolve names once (Engine::topic) and publish by id: the hot path never
/// compares strings.
struct TopicId {
  std::uint32_t value = UINT32_MAX;
  [[nodiscard]] constexpr bool valid() const noexcept { return value != UINT32_MAX; }
  friend constexpr bool operator==(TopicId, TopicId) = default;
};

enum class Priority : std::uint8_t { normal = 0, urgent = 1 };

struct PublishOptions {
  Priority priority = Priority::normal;
  /// Absolute deadline on the engine clock (ringflow::now_ns()); 0 = none. An event past its
  /// deadline is not processed: it is counted as expired (and dead-lettered once delivery
  /// semantics exist).
  std::int64_t deadline_ns = 0;
  /// Carried through stages; 0 = the engine uses the event id.
  std::uint64_t correlation_id = 0;
  /// The id of the event that caused this one (set by handlers that publish); 0 = none.
  std::uint64_t causation_id = 0;
  /// Publish time on the engine clock; 0 = the producer reads the clock.
  std::int64_t timestamp_ns = 0;
  /// Idempotency key; 0 = none. An event whose key was already seen in its partition within
  /// the idempotency window (idempotency.window events / idempotency.window_ms) is dropped at
  /// ingest and counted (EngineStats::duplicates); publish() still returns ok, since it cannot
  /// know. Subscribers see each key once per window.
  std::uint64_t idempotency_key = 0;
};

namespace detail {

/// One event as it sits in the log: this header, then the key, then the payload, padded to 8.
/// Fields are written once by the shard thread before the record is published.
struct RecordHeader {
  std::uint64_t offset;          ///< dense, monotonic per partition
  std::uint64_t id;              ///< unique per engine, never 0: make_event_id()
  std::int64_t publish_ns;       ///< producer's clock at publish
  std::int64_t ingest_ns;        ///< shard's clock when appended (monotonic per partition)
  std::int64_t deadline_ns;      ///< 0 = none
  std::uint64_t correlation_id;  ///< producer-supplied or = id
  std::uint64_t causation_id;    ///< 0 = none
  std::uint32_t topic;
  std::uint32_t partition;
  std::uint16_t attempt;  ///< 1 for the first delivery
  std::uint8_t flags;     ///< kRecordDeadLetter: a DeadLetterInfo follows the payload
  std::uint8_t reserved;
  std::uint16_t payload_len;
  std::uint8_t key_len;
  std::uint8_t priority;
  /// The publisher's idempotency key (0 = none): the write-ahead log carries it so recovery
  /// rebuilds the partition's idempotency window.
  std::uint64_t idempotency_key;
};
static_assert(sizeof(RecordHeader) == 80,
              "record header layout is part of the log format (docs/wal-format.md)");

inline constexpr std::uint8_t kRecordDeadLetter = 1;

/// Event ids: ((offset + 1) << 16) | partition. Unique per engine (partitions < 65536) for the
/// first kMaxEventIdOffset events of each partition (2^48 - 1: over 8 years at a million events
/// per second per partition), never 0 (0 means "none" in causation ids), and the partition and
/// offset can be read back from it. Past that offset the id saturates: still never 0 and still
/// naming its partition, but no longer unique (ids never wrap round to reuse small values).
inline constexpr std::uint64_t kMaxEventIdOffset = (std::uint64_t{1} << 48) - 2;
[[nodiscard]] constexpr std::uint64_t make_event_id(std::uint64_t offset,
                                                    std::uint32_t partition) noexcept {
  const std::uint64_t o = offset < kMaxEventIdOffset ? offset : kMaxEventIdOffset;
  return ((o + 1) << 16) | (partition & 0xFFFFU);
}

}  // namespace detail

/// Why an event became a dead letter.
enum class DeadLetterReason : std::uint8_t {
  failed,             ///< a handler returned Outcome::fail or threw
  retries_exhausted,  ///< a handler asked for a retry on the last allowed attempt
  expired,            ///< its deadline passed before it was processed (at ingest or a retry)
  retry_overflow,     ///< the shard's retry pool was full (retry.capacity): never dropped
};

constexpr std::string_view to_string(DeadLetterReason r) noexcept {
  switch (r) {
    case DeadLetterReason::failed:
      return "failed";
    case DeadLetterReason::retries_exhausted:
      return "retries_exhausted";
    case DeadLetterReason::expired:
      return "expired";
    case DeadLetterReason::retry_overflow:
      return "retry_overflow";
  }
  return "unknown";
}

/// What a dead letter adds to the original event (stored after its payload in the log).
struct DeadLetterInfo {
  static constexpr std::size_t kErrorBytes = 48;
  std::uint64_t origin_offset;  ///< offset of the original event in its partition
  std::int64_t dead_ns;         ///< when it was dead-lettered (engine clock)
  std::uint32_t origin_topic;   ///< the topic it was published to
  std::uint32_t subscription;   ///< index of the subscription that gave up (UINT32_MAX: none)
  std::uint32_t attempts;       ///< deliveries made
  DeadLetterReason reason;
  std::uint8_t reserved[3];
  char first_error[kErrorBytes];  ///< NUL-padded, truncated
  char last_error[kErrorBytes];

  [[nodiscard]] std::string_view first_error_text() const noexcept {
    return {first_error, ::strnlen(first_error, kErrorBytes)};
  }
  [[nodiscard]] std::string_view last_error_text() const noexcept {
    return {last_error, ::strnlen(last_error, kErrorBytes)};
  }
};
static_assert(sizeof(DeadLetterInfo) == 128);
static_assert(std::is_trivially_copyable_v<DeadLetterInfo>);

namespace detail {

[[nodiscard]] constexpr std::size_t record_size(std::size_t key_len, std::size_t payload_len,
                                                bool dead_letter = false) noexcept {
  return ((sizeof(RecordHeader) + key_len + payload_len + 7) & ~std::size_t{7}) +
         (dead_letter ? sizeof(DeadLetterInfo) : 0);
}

/// The DeadLetterInfo of a dead-letter record (8-aligned, after the padded payload).
[[nodiscard]] inline const DeadLetterInfo* dead_letter_of(const RecordHeader* rec) noexcept {
  if ((rec->flags & kRecordDeadLetter) == 0) return nullptr;
  const std::size_t off = record_size(rec->key_len, rec->payload_len);
  return reinterpret_cast<const DeadLetterInfo*>(reinterpret_cast<const std::byte*>(rec) + off);
}

}  // namespace detail

/// A read-only view of one event during processing. Valid only inside the stage or handler
/// call that received it; copy what you need to keep.
class EventView {
 public:
  EventView() = default;
  EventView(const detail::RecordHeader* rec, const std::byte* payload, std::uint32_t payload_len,
            std::uint32_t topic, std::uint32_t reply_token = 0) noexcept
      : rec_(rec),
        payload_(payload),
        payload_len_(payload_len),
        topic_(topic),
        reply_token_(reply_token) {}

  [[nodiscard]] std::uint64_t id() const noexcept { return rec_->id; }
  [[nodiscard]] TopicId topic() const noexcept { return TopicId{topic_}; }
  [[nodiscard]] TopicId original_topic() const noexcept { return TopicId{rec_->topic}; }
  [[nodiscard]] std::uint32_t partition() const noexcept { return rec_->partition; }
  [[nodiscard]] std::uint64_t offset() const noexcept { return rec_->offset; }
  [[nodiscard]] std::int64_t publish_ns() const noexcept { return rec_->publish_ns; }
  [[nodiscard]] std::int64_t ingest_ns() const noexcept { return rec_->ingest_ns; }
  [[nodiscard]] std::int64_t deadline_ns() const noexcept { return rec_->deadline_ns; }
  [[nodiscard]] Priority priority() const noexcept { return static_cast<Priority>(rec_->priority); }
  [[nodiscard]] std::uint64_t correlation_id() const noexcept { return rec_->correlation_id; }
  [[nodiscard]] std::uint64_t causation_id() const noexcept { return rec_->causation_id; }
  [[nodiscard]] std::uint32_t attempt() const noexcept { return rec_->attempt; }
  /// Non-null for events of a dead-letter topic: why and where the original failed.
  [[nodiscard]] const DeadLetterInfo* dead_letter() const noexcept {
    return detail::dead_letter_of(rec_);
  }
  [[nodiscard]] std::string_view key() const noexcept {
    return {reinterpret_cast<const char*>(rec_ + 1), rec_->key_len};
  }
  [[nodiscard]] std::span<const std::byte> payload() const noexcept {
    return {payload_, payload_len_};
  }
  [[nodiscard]] std::string_view payload_string() const noexcept {
    return {reinterpret_cast<const char*>(payload_), payload_len_};
  }
  /// True for an event published with Producer::request(): Engine::reply() answers it.
  [[nodiscard]] bool is_request() const noexcept { return reply_token_ != 0; }

 protected:
  friend class Engine;
  const detail::RecordHeader* rec_ = nullptr;
  const std::byte* payload_ = nullptr;
  std::uint32_t payload_len_ = 0;
  std::uint32_t topic_ = 0;
  std::uint32_t reply_token_ = 0;  ///< nonzero for a request (detail/request_table.hpp)
};

/// Options for an event caused by `cause` (a handler publishing a follow-up, a saga step):
/// the correlation id is carried over and the causation id is the cause's id, so the chain
/// order -> reservation -> payment -> compensation can be followed through the logs.
[[nodiscard]] inline PublishOptions caused_by(const EventView& cause) noexcept {
  PublishOptions o;
  o.correlation_id = cause.correlation_id();
  o.causation_id = cause.id();
  return o;
}

/// A mutable event, handed to map stages. The stored (logged) event never changes: a new
/// payload lives in a per-event scratch buffer for the rest of the pipeline.
class Event : public EventView {
 public:
  Event(const detail::RecordHeader* rec, const std::byte* payload, std::uint32_t payload_len,
        std::uint32_t topic, std::span<std::byte> scratch, std::uint32_t reply_token = 0) noexcept
      : EventView(rec, payload, payload_len, topic, reply_token), scratch_(scratch) {}

  /// Replaces the payload for later stages and handlers. Returns false (payload unchanged) if
  /// `bytes` is larger than the engine's max_payload_bytes.
  bool set_payload(std::span<const std::byte> bytes) noexcept {
    if (bytes.size() > scratch_.size()) return false;
    if (!bytes.empty() && bytes.data() != scratch_.data()) {
      std::memmove(scratch_.data(), bytes.data(), bytes.size());
    }
    payload_ = scratch_.data();
    payload_len_ = static_cast<std::uint32_t>(bytes.size());
    return true;
  }
  /// The payload as writable bytes (copied into the scratch buffer on first use).
  std::span<std::byte> mutable_payload() noexcept {
    if (payload_ != scratch_.data()) (void)set_payload(payload());
    return {scratch_.data(), payload_len_};
  }
  /// Re-targets the event at another topic: later stages and subscriptions see `t`.
  void set_topic(TopicId t) noexcept { topic_ = t.value; }

 private:
  std::span<std::byte> scratch_;
};

}  // namespace ringflow
