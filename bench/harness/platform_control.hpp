#pragma once
// The platform control (BENCHMARKING.md): the same open-loop schedule on the same cores with no
// queue and no engine. The sender spins to each planned time and "sends" nothing; its lateness
// against the plan is what the platform alone costs an event (p99 and beyond here are set by
// VM stalls, not by any engine). Meanwhile a thread on the worker core spins on the clock and
// records every gap > 1 µs: how often the core a handler would run on was taken away.
// Reported as a row with system = "platform_control".

#include <atomic>
#include <cstdint>

#include "harness/histogram.hpp"
#include "harness/open_loop.hpp"

namespace ringflow::bench {

struct ControlSpec {
  double rate_eps = 100'000;
  std::uint64_t warmup_events = 0;  ///< sent first, not recorded
  std::uint64_t events = 0;         ///< recorded
  int sender_core = -1;             ///< -1: not pinned
  int spinner_core = -1;            ///< -1: no spinner thread
  const std::atomic<bool>* abort = nullptr;
  std::atomic<std::uint64_t>* progress = nullptr;
};

struct SpinnerStats {
  Histogram gaps;             ///< every gap > 1 µs between two clock reads
  std::uint64_t spun_ns = 0;  ///< how long it spun (measured phase)
  std::uint64_t gaps_over_10us = 0;
  std::uint64_t gaps_over_1ms = 0;
  std::uint64_t lost_ns_over_10us = 0;  ///< sum of gaps > 10 µs
  [[nodiscard]] double lost_share_10us() const noexcept {
    return spun_ns ? static_cast<double>(lost_ns_over_10us) / static_cast<double>(spun_ns) : 0.0;
  }
};

struct ControlResult {
  Histogram lateness;                   ///< sender's send time - planned time, measured events only
  SendStats send;                       ///< whole run, warm-up included
  std::uint64_t measured_start_ns = 0;  ///< planned time of the first measured event
  SpinnerStats spinner;
  bool spinner_ran = false;
};

/// Runs the control on the calling thread (pinned to sender_core for the run) plus one spinner
/// thread. Throws std::runtime_error if a core cannot be used.
[[nodiscard]] ControlResult run_platform_control(const ControlSpec& spec);

/// Spins on the clock on the calling thread until `stop`, recording gaps while `measuring`.
void spin_and_record_gaps(SpinnerStats& out, const std::atomic<bool>& measuring,
                          const std::atomic<bool>& stop) noexcept;

}  // namespace ringflow::bench
