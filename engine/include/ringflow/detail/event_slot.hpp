#pragma once
// The fixed-size ring slot an event travels in from a producer to its shard (256 bytes: four
// cache lines, key and payload inline so publish never allocates).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "ringflow/event.hpp"
#include "ringflow/limits.hpp"

namespace ringflow::detail {

struct alignas(64) EventSlot {
  static constexpr std::size_t kBytes = 256;
  static constexpr std::size_t kHeaderBytes = 56;
  static constexpr std::size_t kDataBytes = kBytes - kHeaderBytes;

  EventSlot(const PublishOptions& o, std::int64_t ts, std::uint32_t topic_id,
            std::uint32_t partition_id, std::string_view key, std::span<const std::byte> payload,
            std::uint32_t reply = 0) noexcept
      : publish_ns(ts),
        deadline_ns(o.deadline_ns),
        correlation_id(o.correlation_id),
        causation_id(o.causation_id),
        idempotency_key(o.idempotency_key),
        topic(topic_id),
        partition(partition_id),
        payload_len(static_cast<std::uint16_t>(payload.size())),
        key_len(static_cast<std::uint8_t>(key.size())),
        priority(static_cast<std::uint8_t>(o.priority)),
        reply_token(reply) {
    // Copies only the bytes in use, not the whole slot.
    if (!key.empty()) std::memcpy(data, key.data(), key.size());
    if (!payload.empty()) std::memcpy(data + key.size(), payload.data(), payload.size());
  }

  [[nodiscard]] std::string_view key() const noexcept {
    return {reinterpret_cast<const char*>(data), key_len};
  }
  [[nodiscard]] std::span<const std::byte> payload() const noexcept {
    return {data + key_len, payload_len};
  }

  std::int64_t publish_ns;
  std::int64_t deadline_ns;
  std::uint64_t correlation_id;
  std::uint64_t causation_id;
  std::uint64_t idempotency_key;
  std::uint32_t topic;
  std::uint32_t partition;
  std::uint16_t payload_len;
  std::uint8_t key_len;
  std::uint8_t priority;
  std::uint32_t reply_token;  ///< nonzero for a request: its RequestTable slot (request.hpp)
  std::byte data[kDataBytes];
};
static_assert(sizeof(EventSlot) == EventSlot::kBytes, "slot must be exactly four cache lines");
static_assert(offsetof(EventSlot, data) == EventSlot::kHeaderBytes);
static_assert(kMaxKeyBytes + kMaxPayloadBytes <= EventSlot::kDataBytes,
              "the largest key and payload must fit inline");
static_assert(std::is_trivially_destructible_v<EventSlot>);

}  // namespace ringflow::detail
