#include "harness/platform_control.hpp"

#include <pthread.h>
#include <sched.h>

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

}  // namespace

void spin_and_record_gaps(SpinnerStats& out, const std::atomic<bool>& measuring,
                          const std::atomic<bool>& stop) noexcept {
  std::uint64_t prev = now_ns();
  std::uint64_t measured_from = 0;
  // relaxed: both flags are plain on/off signals; the stats are read after join().
  while (!stop.load(std::memory_order_relaxed)) {
    const std::uint64_t t = now_ns();
    const std::uint64_t gap = t - prev;
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
  if (measured_from != 0) out.spun_ns = prev - measured_from;
}

ControlResult run_platform_control(const ControlSpec& spec) {
  ControlResult r;
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};

  std::string spinner_error;
  std::thread spinner;
  if (spec.spinner_core >= 0) {
    spinner = std::thread([&] {
      spinner_error = pin_current_thread(spec.spinner_core);
      if (spinner_error.empty()) spin_and_record_gaps(r.spinner, measuring, stop);
    });
    r.spinner_ran = true;
  }

  AffinityGuard restore;
  if (auto err = pin_current_thread(spec.sender_core); !err.empty()) {
    stop.store(true, std::memory_order_relaxed);
    if (spinner.joinable()) spinner.join();
    throw std::runtime_error("platform control: " + err);
  }

  OpenLoopPlan plan;
  plan.rate_eps = spec.rate_eps;
  plan.events = spec.warmup_events + spec.events;
  plan.start_ns = now_ns() + 2'000'000;  // 2 ms for the spinner to start
  r.measured_start_ns = plan.scheduled_ns(spec.warmup_events);
  OpenLoopHooks hooks;
  hooks.abort = spec.abort;
  hooks.progress = spec.progress;
  const std::uint64_t warm = spec.warmup_events;
  r.send = run_open_loop(
      plan,
      [&](std::uint64_t i, std::uint64_t due) {
        if (i >= warm) {
          if (i == warm) measuring.store(true, std::memory_order_relaxed);
          r.lateness.record(now_ns() - due);
        }
        return true;  // no queue: the event is "sent" the moment the sender gets to it
      },
      hooks);
  stop.store(true, std::memory_order_relaxed);
  if (spinner.joinable()) spinner.join();
  if (!spinner_error.empty())
    throw std::runtime_error("platform control spinner: " + spinner_error);
  return r;
}

}  // namespace ringflow::bench
