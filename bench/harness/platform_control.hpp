#pragma once
// The platform control (BENCHMARKING.md): the same open-loop schedule on the same two cores with
// no queue and no engine, so that its row shows what the platform alone imposes on an event
// that is sent on the producer core and must be handled on the worker core.
//
//   producer core: the sender spins to each planned time t_i and "sends" nothing; it stores its
//                  actual send time s_i = t_i + lateness_i (preallocated, one entry per event).
//   worker core:   a spinner reads the clock in a tight loop and stores every gap between two
//                  reads longer than gap_threshold_ns (1 µs) as [start, end) into a preallocated
//                  buffer: the intervals in which a handler on that core could not have run.
//
// After the run, each measured event gets the platform-imposed latency (control_latency()):
//
//   latency_i = max(s_i - t_i,                       the sender's own lateness
//                   end_g - s_i  if some gap g has start_g <= s_i < end_g, else 0)
//                                                    the rest of a worker-core stall it meets
//
// The baseline one-way cross-core cost (~100 ns) is NOT added: this is a control for stalls,
// not a model of a queue. A gap that ends before s_i costs nothing (a real worker would have
// caught up); overlapping stalls on both cores count once (the max). Recorded as the
// histogram of the row with system = "platform_control"; the sender-only lateness (the old
// control) and the spinner's gap statistics go into the row's note.

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "harness/histogram.hpp"
#include "harness/open_loop.hpp"

namespace ringflow::bench {

/// A span of time [start_ns, end_ns) in which the worker core's spinner did not run.
struct Gap {
  std::uint64_t start_ns = 0;
  std::uint64_t end_ns = 0;
};

struct ControlSpec {
  double rate_eps = 100'000;
  std::uint64_t warmup_events = 0;         ///< sent first, not recorded
  std::uint64_t events = 0;                ///< recorded
  int sender_core = -1;                    ///< -1: not pinned
  int spinner_core = -1;                   ///< -1: no spinner thread (the control is sender-only)
  std::uint64_t gap_threshold_ns = 1'000;  ///< spinner gaps above this are stored
  std::size_t max_gaps = 0;                ///< gap buffer size; 0: sized from the run length
  const std::atomic<bool>* abort = nullptr;
  std::atomic<std::uint64_t>* progress = nullptr;
};

struct SpinnerStats {
  Histogram gaps;             ///< every gap > 1 µs between two clock reads (measured phase)
  std::uint64_t spun_ns = 0;  ///< how long it spun (measured phase)
  std::uint64_t gaps_over_10us = 0;
  std::uint64_t gaps_over_1ms = 0;
  std::uint64_t lost_ns_over_10us = 0;  ///< sum of gaps > 10 µs
  [[nodiscard]] double lost_share_10us() const noexcept {
    return spun_ns ? static_cast<double>(lost_ns_over_10us) / static_cast<double>(spun_ns) : 0.0;
  }
};

/// The spinner's gap timeline: every gap above the threshold, in time order, in a buffer sized
/// before the run (no allocation while spinning). `dropped` counts gaps that did not fit.
struct GapTimeline {
  std::vector<Gap> gaps;  ///< size() = gaps stored
  std::uint64_t threshold_ns = 1'000;
  std::uint64_t dropped = 0;
};

struct ControlResult {
  Histogram latency;   ///< platform-imposed latency (see the header comment), measured events
  Histogram lateness;  ///< sender-only: send time - planned time, measured events (old control)
  SendStats send;      ///< whole run, warm-up included
  std::uint64_t measured_start_ns = 0;  ///< planned time of the first measured event
  SpinnerStats spinner;
  GapTimeline timeline;
  bool spinner_ran = false;
};

/// The platform-imposed latency of one event planned at `due_ns` and sent at `sent_ns`
/// (sent_ns >= due_ns), given the worker core's gaps: max(sent - due, end - sent) for the gap
/// with start <= sent < end, else sent - due. `gaps` must be sorted by start and not overlap.
[[nodiscard]] std::uint64_t control_latency(std::uint64_t due_ns, std::uint64_t sent_ns,
                                            std::span<const Gap> gaps) noexcept;

/// The same over a whole run in one merge pass: events in send order (sent_ns non-decreasing),
/// gaps sorted and non-overlapping. Calls `out(i, latency)` for each event i.
class ControlCombiner {
 public:
  explicit ControlCombiner(std::span<const Gap> gaps) noexcept : gaps_(gaps) {}
  /// Latency of the next event; `sent_ns` must not be less than the previous call's.
  [[nodiscard]] std::uint64_t next(std::uint64_t due_ns, std::uint64_t sent_ns) noexcept;

 private:
  std::span<const Gap> gaps_;
  std::size_t cursor_ = 0;  ///< first gap whose end is > the last sent_ns
};

/// Runs the control on the calling thread (pinned to sender_core for the run) plus one spinner
/// thread on spinner_core. Throws std::runtime_error if a core cannot be used.
[[nodiscard]] ControlResult run_platform_control(const ControlSpec& spec);

/// Spins on the clock on the calling thread until `stop`. Gaps above `timeline.threshold_ns` go
/// into `timeline` (its buffer's capacity is used, never grown) from the first iteration; the
/// statistics in `out` cover only the time `measuring` is set. Sets `ready` once spinning.
void spin_and_record_gaps(SpinnerStats& out, GapTimeline& timeline,
                          const std::atomic<bool>& measuring, const std::atomic<bool>& stop,
                          std::atomic<bool>* ready = nullptr) noexcept;

}  // namespace ringflow::bench
