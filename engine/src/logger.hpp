// The engine's internal side of logging: a Logger forwards to the configured sink (never throws
// into the engine), and a LogRateLimit keeps a repeating record (a handler throwing on every
// event) to a few per second. Cold path only.
#pragma once

#include <cstdint>
#include <string_view>

#include "ringflow/log.hpp"

namespace ringflow::detail {

class Logger {
 public:
  Logger() = default;
  explicit Logger(const LogSink* sink) noexcept : sink_(sink) {}

  /// Passes the record on; a sink that throws is ignored (logging must not fail the engine).
  void log(LogLevel level, std::string_view component, std::string_view message,
           std::uint64_t suppressed = 0) const noexcept {
    if (sink_ == nullptr || !*sink_) return;
    try {
      (*sink_)(LogRecord{level, component, message, suppressed});
    } catch (...) {  // NOLINT(bugprone-empty-catch): a broken sink must not stop the engine
    }
  }

 private:
  const LogSink* sink_ = nullptr;
};

/// At most `burst` records per `window_ns`; the rest are counted and reported with the next
/// admitted record. Owned by one thread (not synchronised).
class LogRateLimit {
 public:
  explicit LogRateLimit(std::uint32_t burst = 5, std::int64_t window_ns = 1'000'000'000) noexcept
      : burst_(burst), window_ns_(window_ns) {}

  /// True when a record at `now_ns` may be logged; then `suppressed` is how many were dropped
  /// since the last admitted one.
  [[nodiscard]] bool admit(std::int64_t now_ns, std::uint64_t& suppressed) noexcept {
    if (now_ns - window_start_ >= window_ns_ || now_ns < window_start_) {
      window_start_ = now_ns;
      in_window_ = 0;
    }
    if (in_window_ >= burst_) {
      ++dropped_;
      return false;
    }
    ++in_window_;
    suppressed = dropped_;
    dropped_ = 0;
    return true;
  }

 private:
  std::uint32_t burst_;
  std::int64_t window_ns_;
  std::int64_t window_start_ = INT64_MIN / 2;
  std::uint32_t in_window_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace ringflow::detail
