#pragma once
// What a subscriber's handler says about one event.

#include <chrono>
#include <cstdint>
#include <string_view>

namespace ringflow {

class Outcome {
 public:
  enum class Kind : std::uint8_t { ok, retry, fail };

  static constexpr Outcome ok() noexcept { return Outcome{Kind::ok, {}, {}}; }
  /// Try again later (after `delay`, or the subscription's backoff when zero).
  static constexpr Outcome retry(std::chrono::nanoseconds delay = {}) noexcept {
    return Outcome{Kind::retry, delay, {}};
  }
  /// Give up on this event; `reason` must outlive the call (a literal is typical).
  static constexpr Outcome fail(std::string_view reason) noexcept {
    return Outcome{Kind::fail, {}, reason};
  }

  [[nodiscard]] constexpr Kind kind() const noexcept { return kind_; }
  [[nodiscard]] constexpr std::chrono::nanoseconds delay() const noexcept { return delay_; }
  [[nodiscard]] constexpr std::string_view reason() const noexcept { return reason_; }

 private:
  constexpr Outcome(Kind k, std::chrono::nanoseconds d, std::string_view r) noexcept
      : kind_(k), delay_(d), reason_(r) {}
  Kind kind_;
  std::chrono::nanoseconds delay_;
  std::string_view reason_;
};

}  // namespace ringflow
