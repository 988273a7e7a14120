// Lifecycle and error logs: where the engine says what it did and what went wrong, off the hot
// path. The embedding service replaces the sink (Engine::set_log_sink) to route records into its
// own logging; the default writes warnings and errors to stderr.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace ringflow {

enum class LogLevel : std::uint8_t { debug, info, warn, error };

[[nodiscard]] std::string_view to_string(LogLevel level) noexcept;

/// One log record. The views are valid only during the sink's call: copy what you keep.
struct LogRecord {
  LogLevel level = LogLevel::info;
  std::string_view component;  ///< "engine", "shard", "delivery", "watchdog", "config", ...
  std::string_view message;
  /// Records of the same kind dropped by rate limiting since the last one that was passed on
  /// (repeating errors, e.g. a handler throwing on every event, are passed on a few per second).
  std::uint64_t suppressed = 0;
};

/// Called from the engine's threads (shard workers, the thread calling start()/stop(), the
/// watchdog), possibly from several at once: a sink must be thread-safe and should return
/// quickly. Never called per event on the hot path; repeating records are rate limited.
using LogSink = std::function<void(const LogRecord&)>;

/// A sink writing one line per record, "ringflow <level> <component>: <message>", to stderr,
/// for records at or above `min_level`. The engine's default sink is
/// stderr_log_sink(LogLevel::warn).
[[nodiscard]] LogSink stderr_log_sink(LogLevel min_level = LogLevel::warn);

/// A sink that drops everything.
[[nodiscard]] LogSink null_log_sink();

}  // namespace ringflow
