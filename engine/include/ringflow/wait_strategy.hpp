#pragma once
// What a thread does while the ring it needs is empty (consumer) or full (producer).
//
// Every strategy has the same two members:
//   template <class Pred> void wait_until(Pred ready);        // returns once ready() is true
//   template <class Pred, class C, class D>
//   bool wait_until(Pred ready, std::chrono::time_point<C, D> deadline);  // false: timed out
//   void notify() noexcept;                                    // the other side, after publishing
// ready() is re-evaluated by the waiting thread only; it may have side effects (the helpers below
// pass a try_push/try_pop, so "ready" and "done" are one step). One strategy object serves both
// sides of one ring: the consumer waits on it when empty, the producer when full, and each side
// calls notify() after it publishes.
//
// The trade-off (wake-up latency after notify / CPU used while waiting):
//   BusySpin       ~ one cache-line transfer (~50-100 ns) / 100 % of a core, always.
//   SpinThenYield  same while spinning, then one sched_yield() round (~1 µs with an idle run
//                  queue) / 100 % of a core, but yields it to any other runnable thread.
//   Parking        spin latency for short gaps; after the spin, a futex wake-up (~5-50 µs,
//                  scheduler-dependent) / no CPU while parked. Its notify() costs a full fence
//                  (~20-40 ns on x86) per call even when nobody sleeps: notify once per batch.
// WaitStrategyKind (policy.hpp) names them for DynamicWaitStrategy.

#include <atomic>
#include <chrono>
#include <climits>
#include <concepts>
#include <cstdint>
#include <ctime>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "ringflow/detail/cache.hpp"
#include "ringflow/policy.hpp"
#include "ringflow/spsc_ring.hpp"

namespace ringflow {

/// One spin-loop hint: lets the core save power and leave a spin loop without a memory-order
/// mis-speculation penalty. ~40-140 cycles on recent x86.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// A type that can wait for a predicate and be notified: what push()/pop() accept.
template <class S>
concept WaitStrategy = requires(S& s, bool (*pred)(), std::chrono::steady_clock::time_point t) {
  s.wait_until(pred);
  { s.wait_until(pred, t) } -> std::same_as<bool>;
  { s.notify() }
  noexcept;
};

/// Spins on ready() with a pause hint. Lowest latency; burns its core even when idle.
class BusySpin {
 public:
  template <class Pred>
  void wait_until(Pred ready) noexcept(noexcept(ready())) {
    while (!ready()) {
      cpu_relax();
    }
  }

  template <class Pred, class Clock, class Duration>
  bool wait_until(Pred ready, const std::chrono::time_point<Clock, Duration>& deadline) {
    for (;;) {
      for (int i = 0; i < kChecksPerClockRead; ++i) {
        if (ready()) {
          return true;
        }
        cpu_relax();
      }
      if (Clock::now() >= deadline) {
        return ready();
      }
    }
  }

  void notify() noexcept {}  // a spinning waiter needs no wake-up

 private:
  static constexpr int kChecksPerClockRead = 32;
};

/// Spins `spins` times, then calls std::this_thread::yield() between checks. Near-spin latency
/// for short waits; gives the core to other runnable threads during long ones.
class SpinThenYield {
 public:
  static constexpr std::uint32_t kDefaultSpins = 256;

  explicit SpinThenYield(std::uint32_t spins = kDefaultSpins) noexcept : spins_(spins) {}

  template <class Pred>
  void wait_until(Pred ready) noexcept(noexcept(ready())) {
    for (std::uint32_t i = 0; i < spins_; ++i) {
      if (ready()) {
        return;
      }
      cpu_relax();
    }
    while (!ready()) {
      std::this_thread::yield();
    }
  }

  template <class Pred, class Clock, class Duration>
  bool wait_until(Pred ready, const std::chrono::time_point<Clock, Duration>& deadline) {
    for (std::uint32_t i = 0; i < spins_; ++i) {
      if (ready()) {
        return true;
      }
      cpu_relax();
    }
    while (!ready()) {
      if (Clock::now() >= deadline) {
        return ready();
      }
      std::this_thread::yield();
    }
    return true;
  }

  void notify() noexcept {}  // a yielding waiter polls; no wake-up needed

  [[nodiscard]] std::uint32_t spins() const noexcept { return spins_; }

 private:
  std::uint32_t spins_;
};

/// Spins `spins` times, then sleeps on a futex until notify(). No CPU while parked.
///
/// Why no wake-up is lost (Dekker-style pairing of two seq_cst fences):
///   waiter (wait_until)                    notifier (notify, after publishing with a store P)
///   W1 sleepers_ += 1                      N1 P: e.g. the ring's release store of write_
///   W2 fence(seq_cst)  ---- pairs with --- N2 fence(seq_cst)
///   W3 e = epoch_ (acquire)                N3 s = sleepers_ (relaxed)
///   W4 ready()? -> leave                   N4 if s != 0: epoch_ += 1 (release); futex wake all
///   W5 futex_wait(epoch_, e)
/// The fences are totally ordered. If W2 comes first, N3 sees W1 (sleepers_ != 0) and N4 bumps
/// the epoch; then either W3 read the bumped epoch -- acquire pairs with N4's release, so W4 sees
/// P and does not sleep -- or W3 read the old epoch and W5 returns at once (the futex compares
/// the word in the kernel) or is woken by N4's wake. If N2 comes first, W4 sees P. So the
/// waiter cannot sleep on a publish it missed, and a notify() with nobody parked costs only the
/// fence and one relaxed load of a line that is written only when somebody parks.
/// (The epoch may wrap after 2^32 parked wake-ups; a waiter would have to miss all of them
/// between W3 and W5 for that to matter.)
///
/// Whoever changes what ready() tests (a stop flag, a deadline-driven abort) must call notify()
/// afterwards, exactly like a publisher.
///
/// Implementation: a raw futex on Linux, because std::atomic::wait has no timeout and libstdc++'s
/// notify skips the wake for waiters it did not register itself, so the two cannot be mixed.
/// Elsewhere std::atomic<uint32_t>::wait/notify_all, with timed waits polling with yield().
class Parking {
 public:
  static constexpr std::uint32_t kDefaultSpins = 256;

  explicit Parking(std::uint32_t spins = kDefaultSpins) noexcept : spins_(spins) {}
  Parking(const Parking&) = delete;
  Parking& operator=(const Parking&) = delete;

  template <class Pred>
  void wait_until(Pred ready) noexcept(noexcept(ready())) {
    if (spin(ready)) {
      return;
    }
    for (;;) {
      const std::uint32_t e = announce();
      if (ready()) {
        retire();
        return;
      }
      park(e, nullptr);
      retire();
      if (ready()) {
        return;
      }
    }
  }

  template <class Pred, class Clock, class Duration>
  bool wait_until(Pred ready, const std::chrono::time_point<Clock, Duration>& deadline) {
    if (spin(ready)) {
      return true;
    }
    for (;;) {
      const auto left = deadline - Clock::now();
      if (left <= decltype(left)::zero()) {
        return ready();
      }
      const std::uint32_t e = announce();
      if (ready()) {
        retire();
        return true;
      }
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count() + 1;
      timespec ts{};
      ts.tv_sec = static_cast<std::time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      park(e, &ts);
      retire();
      if (ready()) {
        return true;
      }
    }
  }

  /// Wakes every parked waiter if there is one. Call after publishing (once per batch is enough).
  void notify() noexcept {
    seq_cst_fence();  // N2: pairs with W2 in announce() (see the class comment)
    // N3: relaxed is enough; the fence pair above decides what this load can miss.
    if (sleepers_.load(std::memory_order_relaxed) != 0) [[unlikely]] {
      wake_all();
    }
  }

  /// Times a waiter actually went to sleep (statistics and tests; relaxed, approximate).
  [[nodiscard]] std::uint64_t parks() const noexcept {
    return parks_.load(std::memory_order_relaxed);
  }
  /// Waiters currently between announce and retire (relaxed, approximate).
  [[nodiscard]] std::uint32_t sleepers() const noexcept {
    return sleepers_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint32_t spins() const noexcept { return spins_; }

 private:
  template <class Pred>
  bool spin(Pred& ready) {
    for (std::uint32_t i = 0; i < spins_; ++i) {
      if (ready()) {
        return true;
      }
      cpu_relax();
    }
    return false;
  }

  std::uint32_t announce() noexcept {
    // W1: relaxed; ordered before W3/W4 by the fence W2.
    sleepers_.fetch_add(1, std::memory_order_relaxed);
    seq_cst_fence();  // W2: pairs with N2 in notify()
    // W3: acquire pairs with the release increment in wake_all() (N4).
    return epoch_.load(std::memory_order_acquire);
  }

  void retire() noexcept {
    // Relaxed: a notifier that still sees us only pays a spurious wake.
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }

  void park(std::uint32_t e, const timespec* timeout) noexcept {
    parks_.fetch_add(1, std::memory_order_relaxed);  // statistics only
#if defined(__linux__)
    // Returns at once (EAGAIN) if the epoch is no longer e; EINTR/timeouts are handled by the
    // caller's loop. The kernel reads the 32-bit value of the lock-free atomic directly.
    static_assert(sizeof(epoch_) == sizeof(std::uint32_t));
    syscall(SYS_futex, &epoch_, FUTEX_WAIT_PRIVATE, e, timeout, nullptr, 0);
#else
    if (timeout != nullptr) {
      std::this_thread::yield();
    } else {
      epoch_.wait(e, std::memory_order_acquire);
    }
#endif
  }

  void wake_all() noexcept {
    // N4: release pairs with W3's acquire, so a waiter that reads the new epoch also sees P.
    epoch_.fetch_add(1, std::memory_order_release);
#if defined(__linux__)
    syscall(SYS_futex, &epoch_, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
    epoch_.notify_all();
#endif
  }

  static void seq_cst_fence() noexcept {
#if defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 12)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"  // TSan cannot model fences; the protocol is still sound
#endif
    std::atomic_thread_fence(std::memory_order_seq_cst);
#if defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 12)
#pragma GCC diagnostic pop
#endif
  }

  // One line, written only when somebody parks or wakes a parked waiter; notify() reads it.
  alignas(detail::kCacheLine) std::atomic<std::uint32_t> epoch_{0};  // futex word
  std::atomic<std::uint32_t> sleepers_{0};  // waiters that may be (about to be) parked
  std::atomic<std::uint64_t> parks_{0};
  std::uint32_t spins_;
};

/// A strategy chosen at run time (EngineConfig::wait_strategy). Costs one branch per call over
/// the static types; not copyable or movable (Parking owns a futex word).
class DynamicWaitStrategy {
 public:
  explicit DynamicWaitStrategy(WaitStrategyKind kind,
                               std::uint32_t spins = SpinThenYield::kDefaultSpins)
      : kind_(kind) {
    switch (kind) {
      case WaitStrategyKind::busy_spin:
        impl_.emplace<BusySpin>();
        break;
      case WaitStrategyKind::spin_yield:
        impl_.emplace<SpinThenYield>(spins);
        break;
      case WaitStrategyKind::park:
        impl_.emplace<Parking>(spins);
        break;
    }
  }
  DynamicWaitStrategy(const DynamicWaitStrategy&) = delete;
  DynamicWaitStrategy& operator=(const DynamicWaitStrategy&) = delete;

  template <class Pred>
  void wait_until(Pred ready) {
    std::visit([&](auto& s) { s.wait_until(ready); }, impl_);
  }

  template <class Pred, class Clock, class Duration>
  bool wait_until(Pred ready, const std::chrono::time_point<Clock, Duration>& deadline) {
    return std::visit([&](auto& s) { return s.wait_until(ready, deadline); }, impl_);
  }

  void notify() noexcept {
    if (auto* p = std::get_if<Parking>(&impl_)) {
      p->notify();
    }
  }

  [[nodiscard]] WaitStrategyKind kind() const noexcept { return kind_; }

 private:
  WaitStrategyKind kind_;
  std::variant<BusySpin, SpinThenYield, Parking> impl_;
};

// ------------------------------------------------------------------ blocking ring helpers
// Producer-side helpers must be called from the ring's producer thread, consumer-side ones from
// its consumer thread; `strategy` is the one object both sides of `ring` share.

/// Pushes `item` (constructing a T from it), waiting while the ring is full, then notifies.
template <class T, class A, class U, WaitStrategy S>
void push(SpscRing<T, A>& ring, U&& item, S& strategy) {
  // try_emplace constructs only on success, so retrying with a forwarded rvalue is safe.
  if (!ring.try_emplace(std::forward<U>(item))) {
    strategy.wait_until([&] { return ring.try_emplace(std::forward<U>(item)); });
  }
  strategy.notify();
}

/// Pops the oldest item into `out`, waiting while the ring is empty, then notifies.
template <class T, class A, WaitStrategy S>
void pop(SpscRing<T, A>& ring, T& out, S& strategy) {
  if (!ring.try_pop(out)) {
    strategy.wait_until([&] { return ring.try_pop(out); });
  }
  strategy.notify();
}

/// push() that gives up at `deadline`. True: pushed (and notified). False: timed out, item
/// untouched.
template <class T, class A, class U, WaitStrategy S, class Clock, class Duration>
[[nodiscard]] bool push_until(SpscRing<T, A>& ring, U&& item, S& strategy,
                              const std::chrono::time_point<Clock, Duration>& deadline) {
  if (!ring.try_emplace(std::forward<U>(item)) &&
      !strategy.wait_until([&] { return ring.try_emplace(std::forward<U>(item)); }, deadline)) {
    return false;
  }
  strategy.notify();
  return true;
}

/// push() that gives up once `stop` is true. Whoever sets `stop` must then call
/// strategy.notify() so that a parked producer sees it. True: pushed; false: stopped.
template <class T, class A, class U, WaitStrategy S>
[[nodiscard]] bool push_until(SpscRing<T, A>& ring, U&& item, S& strategy,
                              const std::atomic<bool>& stop) {
  bool pushed = ring.try_emplace(std::forward<U>(item));
  if (!pushed) {
    strategy.wait_until([&] {
      pushed = ring.try_emplace(std::forward<U>(item));
      // Acquire pairs with the stopper's release store: what it did before stopping is visible.
      return pushed || stop.load(std::memory_order_acquire);
    });
  }
  if (pushed) {
    strategy.notify();
  }
  return pushed;
}

/// pop() that gives up at `deadline`. True: popped into `out`; false: timed out, `out` untouched.
template <class T, class A, WaitStrategy S, class Clock, class Duration>
[[nodiscard]] bool pop_until(SpscRing<T, A>& ring, T& out, S& strategy,
                             const std::chrono::time_point<Clock, Duration>& deadline) {
  if (!ring.try_pop(out) && !strategy.wait_until([&] { return ring.try_pop(out); }, deadline)) {
    return false;
  }
  strategy.notify();
  return true;
}

/// pop() that gives up once `stop` is true (the stopper then calls strategy.notify()).
/// True: popped; false: stopped, and every item pushed before `stop` was set has been popped.
template <class T, class A, WaitStrategy S>
[[nodiscard]] bool pop_until(SpscRing<T, A>& ring, T& out, S& strategy,
                             const std::atomic<bool>& stop) {
  bool popped = ring.try_pop(out);
  if (!popped) {
    strategy.wait_until([&] {
      // Stop is read before the pop: acquire pairs with the stopper's release store, so every
      // item pushed before `stop` was set is seen by this try_pop and none is left behind.
      const bool stopping = stop.load(std::memory_order_acquire);
      popped = ring.try_pop(out);
      return popped || stopping;
    });
  }
  if (popped) {
    strategy.notify();
  }
  return popped;
}

}  // namespace ringflow
