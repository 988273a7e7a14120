#pragma once
// RetryWheel: the shard's timer wheel for handler retries. Internal; one per shard, used only by
// the shard thread (no synchronisation inside).
//
// Entries live in a pool allocated once (retry.capacity per shard): scheduling never allocates.
// A full pool is reported to the caller, which dead-letters the event with reason
// retry_overflow: nothing is dropped. The wheel is hashed: 512 slots of 2^20 ns (~1.05 ms);
// an entry due further out than one turn waits in its slot and is skipped until its turn comes.
// poll() visits each slot from the last polled tick up to now (at most one full turn), so a
// retry fires within about one tick of its due time whenever the shard polls.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ringflow/config.hpp"
#include "ringflow/event.hpp"

namespace ringflow::detail {

struct RetryEntry {
  RecordHeader hdr;  ///< the original record's header; attempt = the attempt about to be made
  std::byte data[kMaxKeyBytes + kMaxPayloadBytes];  ///< key, then the payload handlers see
  std::byte original[kMaxPayloadBytes];             ///< the payload as published (for the DLQ)
  std::uint16_t original_len = 0;
  std::uint16_t payload_len = 0;  ///< of the payload in `data`
  std::uint32_t topic = 0;        ///< topic the handler saw (after route stages)
  std::uint32_t subscription = 0;
  std::int64_t due_ns = 0;
  std::uint32_t next = 0;  ///< intrusive list link (slot list or free list)
  char first_error[DeadLetterInfo::kErrorBytes] = {};

  [[nodiscard]] std::string_view key() const noexcept {
    return {reinterpret_cast<const char*>(data), hdr.key_len};
  }
  [[nodiscard]] const std::byte* payload() const noexcept { return data + hdr.key_len; }
};

class RetryWheel {
 public:
  static constexpr std::uint32_t kNil = UINT32_MAX;
  static constexpr unsigned kTickShift = 20;  // 2^20 ns ~ 1.05 ms per slot
  static constexpr std::uint32_t kSlots = 512;

  explicit RetryWheel(std::size_t capacity) : entries_(capacity), slots_(kSlots, kNil) {
    for (std::size_t i = 0; i < capacity; ++i) {
      entries_[i].next = i + 1 < capacity ? static_cast<std::uint32_t>(i + 1) : kNil;
    }
    free_ = capacity != 0 ? 0 : kNil;
  }

  /// A free entry to fill, or nullptr when the pool is full.
  RetryEntry* acquire() noexcept {
    if (free_ == kNil) return nullptr;
    RetryEntry* e = &entries_[free_];
    free_ = e->next;
    return e;
  }
  /// Gives back an entry from acquire() that was not scheduled.
  void release(RetryEntry* e) noexcept {
    e->next = free_;
    free_ = index_of(e);
  }
  /// Schedules an acquired entry at e->due_ns.
  void schedule(RetryEntry* e) noexcept {
    // An entry already due before the last polled tick goes to that tick's slot, which the
    // next poll visits first.
    const std::int64_t at =
        last_tick_ >= 0 ? std::max(e->due_ns, last_tick_ << kTickShift) : e->due_ns;
    const std::uint32_t slot = slot_of(at);
    e->next = slots_[slot];
    slots_[slot] = index_of(e);
    ++pending_;
    if (e->due_ns < earliest_) earliest_ = e->due_ns;
  }

  /// Calls fire(RetryEntry&) for every entry due at `now_ns`, then frees it (fire may acquire
  /// and schedule new entries). Returns how many fired.
  template <class F>
  std::size_t poll(std::int64_t now_ns, F&& fire) {
    if (pending_ == 0 || now_ns < earliest_) return 0;
    const std::int64_t now_tick = now_ns >> kTickShift;
    std::int64_t from = last_tick_ < 0 ? (earliest_ >> kTickShift) : last_tick_;
    if (now_tick - from >= kSlots) from = now_tick - kSlots + 1;
    std::size_t fired = 0;
    std::int64_t next_earliest = INT64_MAX;
    for (std::int64_t t = from; t <= now_tick; ++t) {
      std::uint32_t* link = &slots_[static_cast<std::uint32_t>(t) & (kSlots - 1)];
      while (*link != kNil) {
        RetryEntry& e = entries_[*link];
        if (e.due_ns <= now_ns) {
          const std::uint32_t idx = *link;
          *link = e.next;  // unlink first: fire() may schedule into this very slot
          --pending_;
          fire(e);
          release(&entries_[idx]);
          ++fired;
        } else {
          link = &e.next;
        }
      }
    }
    last_tick_ = now_tick;
    // Recompute the earliest due time over what is left (cheap: pending entries only).
    if (pending_ != 0) {
      for (std::uint32_t s = 0; s < kSlots; ++s) {
        for (std::uint32_t i = slots_[s]; i != kNil; i = entries_[i].next) {
          if (entries_[i].due_ns < next_earliest) next_earliest = entries_[i].due_ns;
        }
      }
    }
    earliest_ = next_earliest;
    return fired;
  }

  [[nodiscard]] std::size_t pending() const noexcept { return pending_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return entries_.size(); }
  /// Due time of the earliest pending entry (INT64_MAX when none).
  [[nodiscard]] std::int64_t earliest_due() const noexcept { return earliest_; }

 private:
  [[nodiscard]] static std::uint32_t slot_of(std::int64_t due_ns) noexcept {
    return static_cast<std::uint32_t>(due_ns >> kTickShift) & (kSlots - 1);
  }
  [[nodiscard]] std::uint32_t index_of(const RetryEntry* e) const noexcept {
    return static_cast<std::uint32_t>(e - entries_.data());
  }

  std::vector<RetryEntry> entries_;
  std::vector<std::uint32_t> slots_;
  std::uint32_t free_ = kNil;
  std::size_t pending_ = 0;
  std::int64_t earliest_ = INT64_MAX;
  std::int64_t last_tick_ = -1;
};

}  // namespace ringflow::detail
