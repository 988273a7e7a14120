#pragma once
// RetryWheel: the shard's timer wheel for handler retries. Internal; one per shard, used only by
// the shard thread (no synchronisation inside).
//
// Entries live in a pool allocated once (retry.capacity per shard): scheduling never allocates.
// A full pool is reported to the caller, which dead-letters the event with reason
// retry_overflow: nothing is dropped. The wheel is hashed: 512 slots of 2^20 ns (~1.05 ms);
// an entry due further out than one turn waits in its slot and is skipped until its turn comes.
// poll() visits each slot from the last polled tick up to now (at most one full turn), so a
// retry fires within about one tick of its due time whenever the shard polls. An occupancy
// bitmap of the slots gives the next tick worth visiting in O(slots / 64), so firing one entry
// never rescans the others.
//
// Retry chains: an event's retries form a chain (its first retry starts one, each further
// attempt continues it). Pending entries are also kept in an "age list" ordered by chain
// number, so oldest_chain() is O(1): drain() waits until every chain started before its call
// has ended, without waiting for chains of events accepted later.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ringflow/event.hpp"
#include "ringflow/limits.hpp"

namespace ringflow::detail {

/// Exponential backoff before attempt `attempt + 1`: base * 2^(attempt - 1), capped at `max`.
/// Saturates (no signed overflow for any base, max or attempt).
[[nodiscard]] constexpr std::int64_t retry_backoff(std::int64_t base, std::int64_t max,
                                                   std::uint32_t attempt) noexcept {
  std::int64_t d = base < max ? base : max;
  for (std::uint32_t i = 1; i < attempt && d < max; ++i)
    d = d > max / 2 ? max : d * 2;
  return d;
}

struct RetryEntry {
  RecordHeader hdr;  ///< the original record's header; attempt = the attempt about to be made
  std::byte data[kMaxKeyBytes + kMaxPayloadBytes];  ///< key, then the payload handlers see
  std::byte original[kMaxPayloadBytes];             ///< the payload as published (for the DLQ)
  std::uint16_t original_len = 0;
  std::uint16_t payload_len = 0;  ///< of the payload in `data`
  std::uint32_t topic = 0;        ///< topic the handler saw (after route stages)
  std::uint32_t subscription = 0;
  std::uint32_t reply_token = 0;  ///< nonzero for a request (detail/request_table.hpp)
  std::int64_t due_ns = 0;
  std::uint64_t chain = 0;     ///< retry chain: numbered when an event's first retry is scheduled
  std::uint32_t next = 0;      ///< intrusive list link (slot list or free list)
  std::uint32_t age_prev = 0;  ///< age list (pending entries by chain number), see RetryWheel
  std::uint32_t age_next = 0;
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
  /// Schedules an acquired entry at e->due_ns. `continues`: the entry (being fired) whose chain
  /// this retry continues; nullptr starts a new chain.
  void schedule(RetryEntry* e, const RetryEntry* continues = nullptr) noexcept {
    // An entry already due before the last polled tick goes to that tick's slot, which the
    // next poll visits first.
    const std::int64_t at =
        last_tick_ >= 0 ? std::max(e->due_ns, last_tick_ << kTickShift) : e->due_ns;
    const std::uint32_t slot = slot_of(at);
    e->next = slots_[slot];
    slots_[slot] = index_of(e);
    occupied_[slot / 64] |= std::uint64_t{1} << (slot % 64);
    ++pending_;
    if (e->due_ns < earliest_) earliest_ = e->due_ns;
    // Age list: a new chain goes last (the highest number); a continued chain takes its
    // predecessor's place (right after it; the predecessor is unlinked once fired).
    const std::uint32_t idx = index_of(e);
    if (continues == nullptr) {
      e->chain = next_chain_++;
      e->age_prev = age_tail_;
      e->age_next = kNil;
      (age_tail_ == kNil ? age_head_ : entries_[age_tail_].age_next) = idx;
      age_tail_ = idx;
    } else {
      const std::uint32_t before = index_of(continues);
      e->chain = continues->chain;
      e->age_prev = before;
      e->age_next = continues->age_next;
      (e->age_next == kNil ? age_tail_ : entries_[e->age_next].age_prev) = idx;
      entries_[before].age_next = idx;
    }
  }

  /// Calls fire(RetryEntry&) for every entry due at `now_ns`, then frees it (fire may acquire
  /// and schedule new entries, continuing the fired entry's chain). Returns how many fired.
  template <class F>
  std::size_t poll(std::int64_t now_ns, F&& fire) {
    if (pending_ == 0 || now_ns < earliest_) return 0;
    const std::int64_t now_tick = now_ns >> kTickShift;
    std::int64_t from = last_tick_ < 0 ? (earliest_ >> kTickShift) : last_tick_;
    if (now_tick - from >= kSlots) from = now_tick - kSlots + 1;
    std::size_t fired = 0;
    earliest_ = INT64_MAX;                // from here on lowered by schedule() calls from fire()
    std::int64_t walked_min = INT64_MAX;  // earliest entry left in a visited slot
    for (std::int64_t t = from; t <= now_tick; ++t) {
      const auto slot = static_cast<std::uint32_t>(t) & (kSlots - 1);
      if ((occupied_[slot / 64] & (std::uint64_t{1} << (slot % 64))) == 0) continue;
      std::uint32_t* link = &slots_[slot];
      while (*link != kNil) {
        RetryEntry& e = entries_[*link];
        if (e.due_ns <= now_ns) {
          const std::uint32_t idx = *link;
          *link = e.next;  // unlink first: fire() may schedule into this very slot
          --pending_;
          fire(e);
          unlink_age(idx);
          release(&entries_[idx]);
          ++fired;
        } else {
          walked_min = std::min(walked_min, e.due_ns);
          link = &e.next;
        }
      }
      if (slots_[slot] == kNil) occupied_[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
    }
    last_tick_ = now_tick;
    // A lower bound of the next due time, without rescanning entries: what is left in the
    // visited slots (exact), what fire() scheduled (exact), and the start of the next occupied
    // slot's tick (an entry there may be due turns later; polling then just walks that slot).
    if (pending_ == 0) {
      earliest_ = INT64_MAX;
    } else {
      earliest_ = std::min({earliest_, walked_min, next_occupied_tick(now_tick + 1) << kTickShift});
    }
    return fired;
  }

  /// The chain number the next new chain gets (= chains started so far).
  [[nodiscard]] std::uint64_t chains_started() const noexcept { return next_chain_; }
  /// Every chain numbered below this has ended (no entry of it is pending).
  [[nodiscard]] std::uint64_t oldest_chain() const noexcept {
    return age_head_ == kNil ? next_chain_ : entries_[age_head_].chain;
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

  void unlink_age(std::uint32_t idx) noexcept {
    RetryEntry& e = entries_[idx];
    (e.age_prev == kNil ? age_head_ : entries_[e.age_prev].age_next) = e.age_next;
    (e.age_next == kNil ? age_tail_ : entries_[e.age_next].age_prev) = e.age_prev;
  }
  /// The first tick at or after `tick` whose slot is occupied (within one turn).
  [[nodiscard]] std::int64_t next_occupied_tick(std::int64_t tick) const noexcept {
    const auto start = static_cast<std::uint32_t>(tick) & (kSlots - 1);
    for (std::uint32_t d = 0; d < kSlots;) {
      const std::uint32_t slot = (start + d) & (kSlots - 1);
      const std::uint64_t word = occupied_[slot / 64] >> (slot % 64);
      if (word != 0) {
        const auto skip = static_cast<std::uint32_t>(__builtin_ctzll(word));
        if (d + skip < kSlots) return tick + d + skip;
        break;
      }
      d += 64 - slot % 64;  // rest of this word is empty
    }
    return tick;  // unreachable while entries are pending; a safe lower bound anyway
  }

  std::vector<RetryEntry> entries_;
  std::vector<std::uint32_t> slots_;
  std::uint64_t occupied_[kSlots / 64] = {};  ///< bit per slot: its list is non-empty
  std::uint32_t age_head_ = kNil;             ///< pending entry of the oldest chain
  std::uint32_t age_tail_ = kNil;
  std::uint64_t next_chain_ = 0;
  std::uint32_t free_ = kNil;
  std::size_t pending_ = 0;
  std::int64_t earliest_ = INT64_MAX;
  std::int64_t last_tick_ = -1;
};

}  // namespace ringflow::detail
