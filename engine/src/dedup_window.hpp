#pragma once
// DedupWindow: the idempotency window of one partition. Internal; used only by the shard thread
// that owns the partition.
//
// Remembers the last `capacity` idempotency keys seen (and, with an age limit, only those seen
// within it). A key seen again inside the window is a duplicate. Memory is fixed at
// construction: a FIFO of (key, time) and an open-addressing set (linear probing, load <= 1/2,
// backward-shift deletion so no tombstones build up). Key 0 means "no idempotency key".

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringflow::detail {

class DedupWindow {
 public:
  DedupWindow(std::size_t capacity, std::int64_t max_age_ns)
      : fifo_(capacity), max_age_ns_(max_age_ns) {
    std::size_t slots = 16;
    while (slots < 2 * capacity)
      slots *= 2;
    table_.assign(slots, 0);
    mask_ = slots - 1;
  }

  /// True if `key` was seen within the window (a duplicate); otherwise remembers it.
  bool seen_or_insert(std::uint64_t key, std::int64_t now_ns) noexcept {
    expire(now_ns);
    std::size_t i = slot_of(key);
    while (table_[i] != 0) {
      if (table_[i] == key) return true;
      i = (i + 1) & mask_;
    }
    if (count_ == fifo_.size()) evict_oldest();
    // Insert (re-probe: eviction may have shifted entries).
    i = slot_of(key);
    while (table_[i] != 0)
      i = (i + 1) & mask_;
    table_[i] = key;
    fifo_[(head_ + count_) % fifo_.size()] = Entry{key, now_ns};
    ++count_;
    return false;
  }

  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return fifo_.size(); }

 private:
  struct Entry {
    std::uint64_t key;
    std::int64_t seen_ns;
  };

  [[nodiscard]] std::size_t slot_of(std::uint64_t key) const noexcept {
    std::uint64_t h = key * 0x9E3779B97F4A7C15ULL;  // Fibonacci hashing
    return static_cast<std::size_t>(h >> 32) & mask_;
  }

  void expire(std::int64_t now_ns) noexcept {
    if (max_age_ns_ <= 0) return;
    while (count_ != 0 && now_ns - fifo_[head_].seen_ns > max_age_ns_)
      evict_oldest();
  }

  void evict_oldest() noexcept {
    erase(fifo_[head_].key);
    head_ = (head_ + 1) % fifo_.size();
    --count_;
  }

  void erase(std::uint64_t key) noexcept {
    std::size_t i = slot_of(key);
    while (table_[i] != key) {
      if (table_[i] == 0) return;  // not present (cannot happen for FIFO keys)
      i = (i + 1) & mask_;
    }
    // Backward-shift deletion: pull later entries of the probe run into the hole.
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask_; table_[j] != 0; j = (j + 1) & mask_) {
      const std::size_t home = slot_of(table_[j]);
      // Move j into the hole if its home is not in the cyclic range (hole, j].
      const bool in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (!in_range) {
        table_[hole] = table_[j];
        hole = j;
      }
    }
    table_[hole] = 0;
  }

  std::vector<Entry> fifo_;
  std::vector<std::uint64_t> table_;
  std::size_t mask_ = 0;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::int64_t max_age_ns_;
};

}  // namespace ringflow::detail
