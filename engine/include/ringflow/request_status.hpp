#pragma once
// How a request (Producer::request) ended, and what Engine::reply() did.

#include <cstdint>
#include <string_view>

namespace ringflow {

/// How a request ended (RequestStatus::pending while it has not).
enum class RequestStatus : std::uint8_t {
  pending,           ///< not completed yet
  replied,           ///< a handler replied before the deadline: reply() holds the payload
  expired,           ///< the deadline passed before a reply (before or during processing)
  no_subscriber,     ///< no subscription got the event (none matches, or a stage dropped it)
  dead_lettered,     ///< a subscription gave up on it: dead_letter_reason() says why
  stopped,           ///< the engine stopped before a reply (or was not running)
  not_accepted,      ///< publish() refused it: publish_status() says why
  too_many_pending,  ///< the producer's ProducerOptions::max_pending_requests are all in use
};

constexpr std::string_view to_string(RequestStatus s) noexcept {
  switch (s) {
    case RequestStatus::pending:
      return "pending";
    case RequestStatus::replied:
      return "replied";
    case RequestStatus::expired:
      return "expired";
    case RequestStatus::no_subscriber:
      return "no_subscriber";
    case RequestStatus::dead_lettered:
      return "dead_lettered";
    case RequestStatus::stopped:
      return "stopped";
    case RequestStatus::not_accepted:
      return "not_accepted";
    case RequestStatus::too_many_pending:
      return "too_many_pending";
  }
  return "unknown";
}

/// What Engine::reply() did.
enum class ReplyStatus : std::uint8_t {
  ok,             ///< delivered to the waiting caller
  late,           ///< the request had already ended (deadline passed, or already replied)
  not_a_request,  ///< the event was published with publish(), not request()
  too_large,      ///< the reply is longer than max_payload_bytes
};

}  // namespace ringflow
