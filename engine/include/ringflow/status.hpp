#pragma once
// Every status a publisher can get back. publish() never throws; it returns one of these.

#include <cstdint>
#include <string_view>

namespace ringflow {

enum class PublishStatus : std::uint8_t {
  ok,             ///< accepted: it will be processed (or dead-lettered) exactly once
  full,           ///< the ring to its shard was full and the backpressure policy gave up
  too_large,      ///< key longer than kMaxKeyBytes or payload longer than max_payload_bytes
  unknown_topic,  ///< the TopicId was not registered with this engine
  stopped,        ///< the engine is not running (not started yet, or stop() has begun)
  unauthorized,   ///< the producer's principal may not write to this topic, or the topic is a
                  ///< dead-letter topic (only the engine writes dead letters)
  expired,        ///< the event's deadline had already passed at publish time
};

constexpr std::string_view to_string(PublishStatus s) noexcept {
  switch (s) {
    case PublishStatus::ok:
      return "ok";
    case PublishStatus::full:
      return "full";
    case PublishStatus::too_large:
      return "too_large";
    case PublishStatus::unknown_topic:
      return "unknown_topic";
    case PublishStatus::stopped:
      return "stopped";
    case PublishStatus::unauthorized:
      return "unauthorized";
    case PublishStatus::expired:
      return "expired";
  }
  return "unknown";
}

inline constexpr std::size_t kPublishStatusCount = 7;

}  // namespace ringflow
