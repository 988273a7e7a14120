#include "harness/platform_control.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <thread>

#include "harness/affinity.hpp"
#include "harness/clock.hpp"

namespace ringflow::bench {
namespace {

/// Restores the calling thread's affinity mask when it goes out of scope.
class AffinityGuard {
 public:
  AffinityGuard() noexcept {
    saved_ok_ = pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_) == 0;
  }
  ~AffinityGuard() {
    if (saved_ok_) (void)pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
  }
  AffinityGuard(const AffinityGuard&) = delete;
  AffinityGuard& operator=(const AffinityGuard&) = delete;

 private:
  cpu_set_t saved_{};
  bool saved_ok_ = false;
};

/// Residual of the gap covering `sent_ns` ([start, end) contains it), or 0.
std::uint64_t residual(const Gap& g, std::uint64_t sent_ns) noexcept {
  return g.start_ns <= sent_ns && sent_ns < g.end_ns ? g.end_ns - sent_ns : 0;
}

}  // namespace

std::uint64_t control_latency(std::uint64_t due_ns, std::uint64_t sent_ns,
                              std::span<const Gap> gaps) noexcept {
  const std::uint64_t late = sent_ns > due_ns ? sent_ns - due_ns : 0;
  // The last gap starting at or before sent_ns is the only one that can cover it.
  const auto it = std::upper_bound(gaps.begin(), gaps.end(), sent_ns,
                                   [](std::uint64_t t, const Gap& g) { return t < g.start_ns; });
  if (it == gaps.begin()) return late;
  return std::max(late, residual(*std::prev(it), sent_ns));
}

std::uint64_t ControlCombiner::next(std::uint64_t due_ns, std::uint64_t sent_ns) noexcept {
  const std::uint64_t late = sent_ns > due_ns ? sent_ns - due_ns : 0;
  // Gaps are sorted and disjoint, so their ends are sorted too: skip those already over.
  while (cursor_ < gaps_.size() && gaps_[cursor_].end_ns <= sent_ns)
    ++cursor_;
  if (cursor_ == gaps_.size()) return late;
  return std::max(late, residual(gaps_[cursor_], sent_ns));
}

void spin_and_record_gaps(SpinnerStats& out, GapTimeline& timeline,
                          const std::atomic<bool>& measuring, const std::atomic<bool>& stop,
                          std::atomic<bool>* ready) noexcept {
  Gap* const buf = timeline.gaps.data();
  const std::size_t cap = timeline.gaps.size();
  const std::uint64_t threshold = timeline.threshold_ns;
  std::size_t stored = 0;
  std::uint64_t prev = now_ns();
  std::uint64_t measured_from = 0;
  // release: pairs with the sender's acquire; nothing else is published through it.
  if (ready != nullptr) ready->store(true, std::memory_order_release);
  // relaxed: both flags are plain on/off signals; the stats are read after join().
  while (!stop.load(std::memory_order_relaxed)) {
    const std::uint64_t t = now_ns();
    const std::uint64_t gap = t - prev;
    if (gap > threshold) [[unlikely]] {
      if (stored < cap) {
        buf[stored++] = Gap{prev, t};
      } else {
        ++timeline.dropped;
      }
    }
    prev = t;
    if (!measuring.load(std::memory_order_relaxed)) continue;
    if (measured_from == 0) measured_from = t;
    if (gap > 1'000) {
      out.gaps.record(gap);
      if (gap > 10'000) {
        ++out.gaps_over_10us;
        out.lost_ns_over_10us += gap;
      }
      if (gap > 1'000'000) ++out.gaps_over_1ms;
    }
  }
  timeline.gaps.resize(stored);  // shrinking: no allocation
  if (measured_from != 0) out.spun_ns = prev - measured_from;
}

ControlResult run_platform_control(const ControlSpec& spec) {
  ControlResult r;
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<bool> spinner_ready{false};

  OpenLoopPlan plan;
  plan.rate_eps = spec.rate_eps;
  plan.events = spec.warmup_events + spec.events;

  // Preallocated and touched before any thread spins: one send time per measured event, and
  // the gap buffer (by default room for one gap every 10 µs of the whole run, at least 64 Ki).
  std::vector<std::uint64_t> sent(spec.events, 0);
  r.timeline.threshold_ns = spec.gap_threshold_ns;
  if (spec.spinner_core >= 0) {
    const double run_s = static_cast<double>(plan.events) / spec.rate_eps + 0.1;
    const std::size_t n =
        spec.max_gaps != 0
            ? spec.max_gaps
            : std::max<std::size_t>(std::size_t{1} << 16, static_cast<std::size_t>(run_s * 1e5));
    r.timeline.gaps.resize(n);
  }

  std::string spinner_error;
  std::thread spinner;
  if (spec.spinner_core >= 0) {
    spinner = std::thread([&] {
      spinner_error = pin_current_thread(spec.spinner_core);
      if (spinner_error.empty()) {
        spin_and_record_gaps(r.spinner, r.timeline, measuring, stop, &spinner_ready);
      } else {
        spinner_ready.store(true, std::memory_order_release);
      }
    });
    r.spinner_ran = true;
  }
  auto join_spinner = [&] {
    stop.store(true, std::memory_order_relaxed);
    if (spinner.joinable()) spinner.join();
  };

  AffinityGuard restore;
  if (auto err = pin_current_thread(spec.sender_core); !err.empty()) {
    join_spinner();
    throw std::runtime_error("platform control: " + err);
  }
  if (spec.spinner_core >= 0) {
    // The whole measured phase must be covered by the timeline: start the plan only once the
    // spinner spins (acquire: pairs with its release; a plain ready signal).
    while (!spinner_ready.load(std::memory_order_acquire))
      std::this_thread::yield();
  }

  plan.start_ns = now_ns() + 2'000'000;  // 2 ms: every thread is settled by then
  r.measured_start_ns = plan.scheduled_ns(spec.warmup_events);
  OpenLoopHooks hooks;
  hooks.abort = spec.abort;
  hooks.progress = spec.progress;
  const std::uint64_t warm = spec.warmup_events;
  std::uint64_t* const sent_at = sent.data();
  std::uint64_t measured_sent = 0;
  r.send = run_open_loop(
      plan,
      [&](std::uint64_t i, std::uint64_t due) {
        if (i >= warm) {
          if (i == warm) measuring.store(true, std::memory_order_relaxed);
          const std::uint64_t now = now_ns();
          r.lateness.record(now - due);
          sent_at[i - warm] = now;
          ++measured_sent;
        }
        return true;  // no queue: the event is "sent" the moment the sender gets to it
      },
      hooks);
  join_spinner();
  if (!spinner_error.empty())
    throw std::runtime_error("platform control spinner: " + spinner_error);

  // Combine (see the header): one merge pass over the send times and the worker's gaps.
  ControlCombiner combine(r.timeline.gaps);
  for (std::uint64_t i = 0; i < measured_sent; ++i)
    r.latency.record(combine.next(plan.scheduled_ns(warm + i), sent[i]));
  return r;
}

}  // namespace ringflow::bench
