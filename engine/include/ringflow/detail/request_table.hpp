#pragma once
// Internals of request/reply: one table of pending requests per producer. Not API.
//
// A request claims a slot in its producer's table (the producer thread is the only one that
// claims), publishes the event with a 32-bit reply token naming (producer, slot), and waits on
// the slot. Whoever completes it — a handler's reply, a dead letter, the pipeline finding no
// subscriber, stop(), or the waiter itself at the deadline — wins one compare-and-swap; every
// later completion is refused (a late reply is dropped and counted, never delivered).
//
// Slot states: free -> pending (claimed) -> writing (one completer, briefly) -> a terminal
// status -> free (the handle released it). A handle destroyed while its request is pending
// marks the slot abandoned; the eventual completer frees it. A stale token (the slot was
// reused by a later request) is told apart by the request's publish time, which is checked
// while the completer holds `writing`.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <thread>

#include "ringflow/clock.hpp"
#include "ringflow/detail/cache.hpp"
#include "ringflow/event.hpp"
#include "ringflow/limits.hpp"
#include "ringflow/request_status.hpp"
#include "ringflow/wait_strategy.hpp"

namespace ringflow {
namespace detail {

struct alignas(kCacheLine) RequestSlot {
  std::atomic<std::uint32_t> state{0};
  std::uint16_t reply_len = 0;
  DeadLetterReason reason = DeadLetterReason::failed;
  std::int64_t publish_ns = 0;  ///< identifies the request (with the slot) against stale tokens
  std::int64_t deadline_ns = 0;
  std::byte reply[kMaxPayloadBytes];
};

class RequestTable {
 public:
  static constexpr std::uint32_t kFree = 0;
  static constexpr std::uint32_t kPending = 1;
  static constexpr std::uint32_t kWriting = 2;
  static constexpr std::uint32_t kAbandoned = 3;
  static constexpr std::uint32_t kDone = 8;  ///< kDone + RequestStatus: terminal
  static constexpr std::uint32_t kMaxSlots = 65536;

  RequestTable(std::uint32_t producer_index, std::uint32_t capacity)
      : producer_(producer_index),
        capacity_(capacity),
        slots_(capacity != 0 ? std::make_unique<RequestSlot[]>(capacity) : nullptr) {}

  /// The token an event carries: nonzero, names this table's producer and the slot.
  [[nodiscard]] std::uint32_t token(std::uint32_t slot) const noexcept {
    return ((producer_ + 1) << 16) | slot;
  }
  [[nodiscard]] static std::uint32_t producer_of(std::uint32_t token) noexcept {
    return (token >> 16) - 1;
  }
  [[nodiscard]] static std::uint32_t slot_of(std::uint32_t token) noexcept {
    return token & 0xFFFFU;
  }

  /// Producer thread only: a free slot, claimed for a request published at `publish_ns`, or
  /// UINT32_MAX when every slot is in use.
  std::uint32_t claim(std::int64_t publish_ns, std::int64_t deadline_ns) noexcept {
    for (std::uint32_t n = 0; n < capacity_; ++n) {
      const std::uint32_t i = next_;
      next_ = next_ + 1 == capacity_ ? 0 : next_ + 1;
      RequestSlot& s = slots_[i];
      // Acquire: pairs with release()'s store of kFree; the previous user is done with it.
      std::uint32_t st = s.state.load(std::memory_order_acquire);
      if (st == kAbandoned && now_ns() >= s.deadline_ns) {
        // Its handle is gone and its deadline passed: nobody will complete it; reclaim it.
        (void)complete(i, s.publish_ns, RequestStatus::expired);
        st = s.state.load(std::memory_order_acquire);
      }
      if (st != kFree) continue;
      s.publish_ns = publish_ns;
      s.deadline_ns = deadline_ns;
      // Release: completers that see kPending (acquire) see the fields above.
      s.state.store(kPending, std::memory_order_release);
      return i;
    }
    return UINT32_MAX;
  }

  /// Ends the request in `slot` published at `publish_ns` with `status` (and a reply payload
  /// or a dead-letter reason). Any thread. False when it had already ended (or the token is
  /// stale); a reply after the deadline ends it as expired and returns false.
  bool complete(std::uint32_t slot, std::int64_t publish_ns, RequestStatus status,
                std::span<const std::byte> reply = {},
                DeadLetterReason reason = DeadLetterReason::failed) noexcept {
    if (slot >= capacity_) return false;
    RequestSlot& s = slots_[slot];
    std::uint32_t st = s.state.load(std::memory_order_acquire);
    for (;;) {
      if (st == kPending || st == kAbandoned) {
        // Acquire: the claim's fields are visible; acq_rel orders our writes before the
        // terminal store below.
        if (s.state.compare_exchange_weak(st, kWriting, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
          break;
        }
      } else if (st == kWriting) {
        cpu_relax();  // another completer holds it for a few dozen instructions
        st = s.state.load(std::memory_order_acquire);
      } else {
        return false;  // free or terminal: nothing pending here
      }
    }
    const std::uint32_t was = st;
    if (s.publish_ns != publish_ns) {
      // A stale token: the slot now serves a later request. Put it back as it was.
      s.state.store(was, std::memory_order_release);
      return false;
    }
    if (was == kAbandoned) {
      // Its handle is gone: nobody will read the result; the slot is free again.
      s.state.store(kFree, std::memory_order_release);
      return false;
    }
    bool delivered = true;
    if (status == RequestStatus::replied && now_ns() > s.deadline_ns) {
      status = RequestStatus::expired;  // never delivered late
      delivered = false;
    }
    if (status == RequestStatus::replied) {
      const std::size_t n = std::min(reply.size(), sizeof s.reply);
      if (n != 0) std::memcpy(s.reply, reply.data(), n);
      s.reply_len = static_cast<std::uint16_t>(n);
    }
    s.reason = reason;
    // Release: the waiter's acquire of the terminal state sees the reply bytes.
    s.state.store(kDone + static_cast<std::uint32_t>(status), std::memory_order_release);
    done_.notify();
    return delivered;
  }

  /// The request's status now (pending, or how it ended). Marks it expired once the deadline
  /// has passed.
  RequestStatus poll(std::uint32_t slot) noexcept {
    RequestSlot& s = slots_[slot];
    // Acquire: pairs with complete()'s release; the reply bytes are visible.
    const std::uint32_t st = s.state.load(std::memory_order_acquire);
    if (st >= kDone) return static_cast<RequestStatus>(st - kDone);
    if (now_ns() >= s.deadline_ns) {
      (void)complete(slot, s.publish_ns, RequestStatus::expired);
      const std::uint32_t now = s.state.load(std::memory_order_acquire);
      if (now >= kDone) return static_cast<RequestStatus>(now - kDone);
    }
    return RequestStatus::pending;
  }

  /// Blocks until the request ends (at the latest at its deadline): spins briefly, then
  /// yields, then parks on the table's futex; a completion wakes it.
  RequestStatus wait(std::uint32_t slot) noexcept {
    for (std::uint32_t spins = 0;; ++spins) {
      const RequestStatus r = poll(slot);
      if (r != RequestStatus::pending) return r;
      if (spins < 256) {
        cpu_relax();
      } else if (spins < 320) {
        std::this_thread::yield();
      } else {
        const std::int64_t left = slots_[slot].deadline_ns - now_ns();
        const auto until =
            std::chrono::steady_clock::now() + std::chrono::nanoseconds(left > 0 ? left : 0);
        (void)done_.wait_until(
            [&] { return slots_[slot].state.load(std::memory_order_acquire) >= kDone; }, until);
      }
    }
  }

  /// Gives the slot back (the handle is done with it). Any thread.
  void release(std::uint32_t slot) noexcept {
    RequestSlot& s = slots_[slot];
    std::uint32_t st = s.state.load(std::memory_order_acquire);
    for (;;) {
      if (st >= kDone) {
        // Release: the next claim (acquire) happens after our last read of the reply.
        s.state.store(kFree, std::memory_order_release);
        return;
      }
      if (st == kPending) {
        // Acq_rel: a completer that later sees kAbandoned frees the slot.
        if (s.state.compare_exchange_weak(st, kAbandoned, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
          return;
        }
        continue;
      }
      cpu_relax();  // writing: a completer is about to store the terminal state
      st = s.state.load(std::memory_order_acquire);
    }
  }

  /// stop(): ends every pending request with `stopped`.
  void stop_all() noexcept {
    for (std::uint32_t i = 0; i < capacity_; ++i) {
      // Acquire: the claim's publish time is visible.
      const std::uint32_t st = slots_[i].state.load(std::memory_order_acquire);
      if (st == kPending || st == kAbandoned) {
        (void)complete(i, slots_[i].publish_ns, RequestStatus::stopped);
      }
    }
  }

  [[nodiscard]] const RequestSlot& slot(std::uint32_t i) const noexcept { return slots_[i]; }
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }

 private:
  std::uint32_t producer_;
  std::uint32_t capacity_;
  std::unique_ptr<RequestSlot[]> slots_;
  std::uint32_t next_ = 0;  ///< producer thread only: where claim() looks first
  Parking done_;            ///< waiters park here; every completion notifies
};

}  // namespace detail
}  // namespace ringflow
