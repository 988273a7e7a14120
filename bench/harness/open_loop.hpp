#pragma once
// Open-loop sender: send times are planned in advance at a constant rate, t_i = t0 + i / rate,
// and the sender spins until each one. Whatever the system under test does, the offered load
// stays the same; when the sender is late (the system blocked it, or the platform stalled it)
// it sends the overdue events at once, and each event still carries its *scheduled* time.
// Latency is then measured from that scheduled time to the handler's completion, so a stall is
// charged to every event it delayed (coordinated omission corrected).
//
// Usage (one sender thread; give each sender its own plan and histogram):
//   OpenLoopPlan plan{.rate_eps = 500'000, .events = n, .start_ns = now_ns() + 1'000'000};
//   auto stats = run_open_loop(plan, [&](std::uint64_t i, std::uint64_t scheduled_ns) {
//     return system_send(i, scheduled_ns);   // false = the system refused the event
//   });
// A refused event is counted (SendStats::refused), never retried and never silently dropped.

#include <atomic>
#include <concepts>
#include <cstdint>
#include <vector>

#include "harness/clock.hpp"
#include "harness/histogram.hpp"

namespace ringflow::bench {

struct OpenLoopPlan {
  double rate_eps = 0;         ///< offered events per second (> 0)
  std::uint64_t events = 0;    ///< events to send
  std::uint64_t start_ns = 0;  ///< t0 on the now_ns() clock

  /// t_i = t0 + i * 1e9 / rate, computed without accumulating rounding error.
  [[nodiscard]] std::uint64_t scheduled_ns(std::uint64_t i) const noexcept {
    const long double offset = static_cast<long double>(i) * 1e9L / rate_eps;
    return start_ns + static_cast<std::uint64_t>(offset);
  }
  [[nodiscard]] std::uint64_t duration_ns() const noexcept { return scheduled_ns(events); }
};

struct SendStats {
  std::uint64_t sent = 0;             ///< accepted by the system
  std::uint64_t refused = 0;          ///< the send callback returned false (lost, counted)
  std::uint64_t first_send_ns = 0;    ///< now_ns() at the first send
  std::uint64_t last_send_ns = 0;     ///< now_ns() at the last send
  std::uint64_t max_lateness_ns = 0;  ///< worst (send time - scheduled time)
};

/// Optional side channels of run_open_loop().
struct OpenLoopHooks {
  Histogram* lateness = nullptr;                   ///< the sender's own lateness per event
  const std::atomic<bool>* abort = nullptr;        ///< set to stop early (remaining are not sent)
  std::atomic<std::uint64_t>* progress = nullptr;  ///< events handled so far, every 1024
};

/// Runs the plan on the calling thread. `send(i, scheduled_ns)` returns true when accepted.
template <class Send>
requires std::invocable<Send&, std::uint64_t, std::uint64_t> &&
    std::convertible_to < std::invoke_result_t<Send&, std::uint64_t, std::uint64_t>,
bool > SendStats run_open_loop(const OpenLoopPlan& plan, Send&& send,
                               const OpenLoopHooks& hooks = {}) {
  SendStats st;
  for (std::uint64_t i = 0; i < plan.events; ++i) {
    const std::uint64_t due = plan.scheduled_ns(i);
    std::uint64_t now = now_ns();
    while (now < due) {
      cpu_relax();
      now = now_ns();
    }
    const std::uint64_t late = now - due;
    if (hooks.lateness != nullptr) hooks.lateness->record(late);
    if (late > st.max_lateness_ns) st.max_lateness_ns = late;
    if (i == 0) st.first_send_ns = now;
    if (send(i, due)) {
      ++st.sent;
    } else {
      ++st.refused;
    }
    if ((i & 1023u) == 0) {
      // relaxed: progress is a display hint and abort a best-effort early stop; neither
      // publishes data to another thread.
      if (hooks.progress != nullptr) hooks.progress->store(i, std::memory_order_relaxed);
      if (hooks.abort != nullptr && hooks.abort->load(std::memory_order_relaxed)) break;
    }
  }
  st.last_send_ns = now_ns();
  if (hooks.progress != nullptr) hooks.progress->store(plan.events, std::memory_order_relaxed);
  return st;
}

}  // namespace ringflow::bench

namespace ringflow::bench {

/// Splits one open-loop stream of `events` at `rate_eps` starting at `start_ns` over
/// `producers` senders: sender k sends global events k, k+P, k+2P, ... at rate/P, phase-shifted
/// so that the merged stream is the single evenly spaced schedule.
[[nodiscard]] std::vector<OpenLoopPlan> split_plan(double rate_eps, std::uint64_t events,
                                                   std::uint64_t start_ns, unsigned producers);

}  // namespace ringflow::bench
