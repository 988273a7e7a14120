#pragma once
// Topic names and subscription patterns (NATS semantics).
//
// A topic name is one or more segments separated by '.', e.g. "orders.created" or
// "payments.eu.processed". Segments are 1..kMaxTopicSegmentBytes characters of [A-Za-z0-9_-];
// the whole name is at most kMaxTopicNameBytes. Names are checked when a topic is registered,
// never at publish time (publish takes a TopicId).
//
// A pattern is a name whose segments may also be '*' (exactly one segment) or, as the last
// segment only, '>' (one or more trailing segments): "orders.*" matches "orders.created" but not
// "orders.eu.created"; "orders.>" matches both, but not "orders" itself.
// Patterns are matched against topic ids when the engine starts, not per event.

#include <cstddef>
#include <string>
#include <string_view>

namespace ringflow {

inline constexpr std::size_t kMaxTopicNameBytes = 255;
inline constexpr std::size_t kMaxTopicSegmentBytes = 64;
/// A topic's default dead-letter topic is "<name>.dlq": up to 4 bytes longer than any topic
/// name, so that every valid name has one. Patterns may be as long, to name it.
inline constexpr std::size_t kMaxDeadLetterTopicNameBytes = kMaxTopicNameBytes + 4;

/// Empty when `name` is a valid topic name; else the reason, naming the offending part.
[[nodiscard]] std::string check_topic_name(std::string_view name);
/// Empty when `name` is a valid dead-letter topic name (as a topic name, up to
/// kMaxDeadLetterTopicNameBytes long); else the reason.
[[nodiscard]] std::string check_dead_letter_topic_name(std::string_view name);
/// Empty when `pattern` is a valid subscription pattern (up to kMaxDeadLetterTopicNameBytes
/// long); else the reason.
[[nodiscard]] std::string check_topic_pattern(std::string_view pattern);
/// Whether a valid `pattern` matches a valid topic `name`.
[[nodiscard]] bool topic_matches(std::string_view pattern, std::string_view name) noexcept;
/// Whether every topic `pattern` can match is also matched by `grant` (both valid patterns):
/// "orders.>" covers "orders.*" and "orders.eu.>"; "orders.*" covers "orders.created" but not
/// "orders.>".
[[nodiscard]] bool pattern_covers(std::string_view grant, std::string_view pattern) noexcept;

}  // namespace ringflow
