#pragma once
// ringflow::SpscRing: the bounded single-producer/single-consumer ring every event travels
// through. Header-only; see the design block on the class.

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "ringflow/detail/cache.hpp"
#include "ringflow/detail/role_check.hpp"

namespace ringflow {

/// Bounded lock-free queue for exactly one producer thread and one consumer thread.
///
/// Thread roles
///   producer: try_push, try_emplace, try_push_n.
///   consumer: try_pop, try_pop_n, front_span, release, front, pop.
///   either:   capacity (exact), size and empty (approximate: see there).
///   The constructor and destructor must not run concurrently with anything else.
///   Debug builds (RINGFLOW_CHECK_ROLES, detail/role_check.hpp) abort with a message when a second
///   thread uses a side; reset_roles() hands both sides over.
///
/// Indices and ownership
///   write_ (producer writes, consumer reads) and read_ (consumer writes, producer reads) count
///   every item ever pushed/popped; they are 64-bit and never wrap in practice (2^64 items at
///   10^9/s is 584 years). A slot's position is index & mask_. Each side also keeps a private
///   copy of the other side's index (read_cache_, write_cache_) and reloads the shared atomic
///   only when that copy cannot satisfy the request, so while the ring is neither nearly full nor
///   nearly empty neither side touches the other's line at all.
///
/// Invariants (I1, I2 always; I3 for each side's view)
///   I1  read_ <= write_ <= read_ + capacity()           (all 2^k slots usable; no sentinel slot)
///   I2  slots [read_, write_) hold constructed T; all other slots hold raw storage.
///   I3  read_ <= read_cache_ <= write_ and read_ <= write_cache_ <= write_: the caches are stale
///       but always on the safe side (the producer never sees more room, the consumer never sees
///       more items, than really exist).
///
/// Visibility contract
///   Everything the producer wrote before try_push/try_emplace/try_push_n returned success
///   (including the item itself) is visible to the consumer once try_pop/try_pop_n/front_span/
///   front returns that item. Symmetrically, everything the consumer did with a slot before
///   try_pop/try_pop_n/release/pop returned (reading the item, destroying it) happens before the
///   producer reuses that slot.
///
/// Guarantees
///   Wait-free: every operation finishes in a bounded number of its own steps. No allocation
///   after construction. try_* operations that fail leave the ring and their arguments untouched
///   (an rvalue passed to a failing try_push is not moved from), so they can be retried in a loop.
///   Each batch operation publishes its index once. Items still in the ring are destroyed exactly
///   once by the destructor.
///
/// Memory: capacity() rounded up to 2^k slots, plus 128-191 bytes of slot padding and alignment,
/// plus the 5 cache lines of the ring object itself.
///
/// When not to use it
///   More than one producer or consumer (use one ring per producer, as the engine does); a
///   consumer that must block without a wait strategy (see wait_strategy.hpp); items that are
///   large and expensive to move (store them elsewhere and pass an index or pointer).
template <class T, class Allocator = std::allocator<T>>
requires std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T> &&
    std::is_same_v<typename std::allocator_traits<Allocator>::value_type, T>
class SpscRing {
  using AllocTraits = std::allocator_traits<Allocator>;

 public:
  using value_type = T;
  using allocator_type = Allocator;
  using size_type = std::size_t;

  /// Largest capacity accepted: 2^32 slots. Larger requests are almost always a unit mistake
  /// (bytes for slots) and would take tens of GiB.
  static constexpr std::size_t kMaxCapacity = std::size_t{1} << 32;

  /// Builds an empty ring of std::bit_ceil(capacity) slots, all usable.
  /// Throws std::invalid_argument for 0, std::length_error above kMaxCapacity (or above what the
  /// allocator can provide), and whatever the allocator throws.
  explicit SpscRing(std::size_t capacity, const Allocator& alloc = Allocator())
      : alloc_(alloc),
        capacity_(checked_capacity(capacity)),
        mask_(capacity_ - 1),
        alloc_slots_(capacity_ + 2 * kPadSlots + kAlignSlots) {
    if (alloc_slots_ > AllocTraits::max_size(alloc_)) {
      throw std::length_error("ringflow::SpscRing: capacity " + std::to_string(capacity) +
                              " exceeds what the allocator can provide");
    }
    storage_ = AllocTraits::allocate(alloc_, alloc_slots_);
    slots_ = first_slot(std::to_address(storage_));
  }

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;
  SpscRing(SpscRing&&) = delete;
  SpscRing& operator=(SpscRing&&) = delete;

  /// Destroys the items still in the ring, oldest first. Both threads must be done with the ring
  /// (e.g. joined) before this runs.
  ~SpscRing() {
    static_assert(layout_is_line_per_concern());
    // Relaxed: the caller's join/hand-over already ordered both threads' last operations
    // before this point.
    const std::uint64_t w = write_.load(std::memory_order_relaxed);
    for (std::uint64_t r = read_.load(std::memory_order_relaxed); r != w; ++r) {
      AllocTraits::destroy(alloc_, slots_ + (r & mask_));
    }
    AllocTraits::deallocate(alloc_, storage_, alloc_slots_);
  }

  // ---------------------------------------------------------------- producer side

  /// Copies `item` into the ring. False (and nothing changed) when the ring is full.
  [[nodiscard]] bool try_push(const T& item) noexcept(
      std::is_nothrow_copy_constructible_v<T>) requires std::is_copy_constructible_v<T> {
    return try_emplace(item);
  }

  /// Moves `item` into the ring. False when full; then `item` is not moved from.
  [[nodiscard]] bool try_push(T&& item) noexcept { return try_emplace(std::move(item)); }

  /// Constructs an item in place from `args`. False when full (args untouched). If the
  /// constructor throws, nothing is published and the exception propagates.
  template <class... A>
  requires std::is_constructible_v<T, A&&...>
  [[nodiscard]] bool try_emplace(A&&... args) noexcept(std::is_nothrow_constructible_v<T, A&&...>) {
    producer_check_.claim("producer");
    const std::uint64_t w = write_.load(std::memory_order_relaxed);  // own index
    if (w - read_cache_ == capacity_) [[unlikely]] {
      // Pairs with the consumer's release store of read_: the old item in slot w is gone.
      read_cache_ = read_.load(std::memory_order_acquire);
      if (w - read_cache_ == capacity_) {
        return false;
      }
    }
    AllocTraits::construct(alloc_, slots_ + (w & mask_), std::forward<A>(args)...);
    // Pairs with the consumer's acquire load of write_: publishes the item constructed above.
    write_.store(w + 1, std::memory_order_release);
    return true;
  }

  /// Copies up to `n` items from `items` (as many as fit, in order) and publishes them with one
  /// index store. Returns how many were pushed (0 when full or n == 0). Reloads the consumer's
  /// index only when the cached one shows less room than min(n, capacity()). If a copy throws,
  /// the items copied so far are destroyed, nothing is published, and the exception propagates.
  std::size_t try_push_n(const T* items, std::size_t n) noexcept(
      std::is_nothrow_copy_constructible_v<T>) requires std::is_copy_constructible_v<T> {
    producer_check_.claim("producer");
    const std::uint64_t w = write_.load(std::memory_order_relaxed);  // own index
    std::uint64_t room = capacity_ - (w - read_cache_);
    if (room < n && room < capacity_) {
      // Pairs with the consumer's release store of read_: freed slots are really free.
      read_cache_ = read_.load(std::memory_order_acquire);
      room = capacity_ - (w - read_cache_);
    }
    const std::size_t count = n < room ? n : static_cast<std::size_t>(room);
    if (count == 0) {
      return 0;
    }
    const std::size_t first = (w & mask_);
    const std::size_t head = count < capacity_ - first ? count : capacity_ - first;
    if constexpr (std::is_nothrow_copy_constructible_v<T>) {
      construct_copies(slots_ + first, items, head);
      construct_copies(slots_, items + head, count - head);
    } else {
      std::size_t done = 0;
      try {
        for (; done < count; ++done) {
          AllocTraits::construct(alloc_, slots_ + ((w + done) & mask_), items[done]);
        }
      } catch (...) {
        for (std::size_t i = 0; i < done; ++i) {
          AllocTraits::destroy(alloc_, slots_ + ((w + i) & mask_));
        }
        throw;
      }
    }
    // Pairs with the consumer's acquire load of write_: publishes the whole batch at once.
    write_.store(w + count, std::memory_order_release);
    return count;
  }

  // ---------------------------------------------------------------- consumer side

  /// Moves the oldest item into `out` and removes it. False (and `out` untouched) when empty.
  [[nodiscard]] bool try_pop(T& out) noexcept(
      std::is_nothrow_move_assignable_v<T>) requires std::is_move_assignable_v<T> {
    consumer_check_.claim("consumer");
    const std::uint64_t r = read_.load(std::memory_order_relaxed);  // own index
    if (r == write_cache_) [[unlikely]] {
      // Pairs with the producer's release store of write_: makes the item in slot r visible.
      write_cache_ = write_.load(std::memory_order_acquire);
      if (r == write_cache_) {
        return false;
      }
    }
    T* slot = slots_ + (r & mask_);
    out = std::move(*slot);
    AllocTraits::destroy(alloc_, slot);
    // Pairs with the producer's acquire load of read_: our use of the slot precedes its reuse.
    read_.store(r + 1, std::memory_order_release);
    return true;
  }

  /// Moves up to `max` oldest items into out[0..) in order and publishes the read index once.
  /// Returns how many were popped. Reloads the producer's index only when the cached one shows
  /// fewer than `max` items.
  std::size_t try_pop_n(T* out, std::size_t max) noexcept(
      std::is_nothrow_move_assignable_v<T>) requires std::is_move_assignable_v<T> {
    consumer_check_.claim("consumer");
    const std::uint64_t r = read_.load(std::memory_order_relaxed);  // own index
    std::uint64_t avail = write_cache_ - r;
    if (avail < max && avail < capacity_) {
      // Pairs with the producer's release store of write_: makes its items visible.
      write_cache_ = write_.load(std::memory_order_acquire);
      avail = write_cache_ - r;
    }
    const std::size_t count = max < avail ? max : static_cast<std::size_t>(avail);
    if (count == 0) {
      return 0;
    }
    const std::size_t first = r & mask_;
    const std::size_t head = count < capacity_ - first ? count : capacity_ - first;
    move_out(out, slots_ + first, head);
    move_out(out + head, slots_, count - head);
    // Pairs with the producer's acquire load of read_: our use of the slots precedes reuse.
    read_.store(r + count, std::memory_order_release);
    return count;
  }

  /// Zero-copy read: the oldest readable items, contiguous in memory, up to `max` and up to the
  /// wrap point of the slot array (call again after release() for the rest). Empty when the ring
  /// is empty. The items stay in the ring, owned by it, until release(); the consumer may read
  /// and modify them in place. Reloads the producer's index only when the cached one shows fewer
  /// items than could be returned.
  [[nodiscard]] std::span<T> front_span(std::size_t max = SIZE_MAX) noexcept {
    consumer_check_.claim("consumer");
    const std::uint64_t r = read_.load(std::memory_order_relaxed);  // own index
    const std::size_t first = r & mask_;
    const std::size_t to_wrap = capacity_ - first;
    const std::size_t want = max < to_wrap ? max : to_wrap;
    std::uint64_t avail = write_cache_ - r;
    if (avail < want) {
      // Pairs with the producer's release store of write_: makes its items visible.
      write_cache_ = write_.load(std::memory_order_acquire);
      avail = write_cache_ - r;
    }
    const std::size_t count = want < avail ? want : static_cast<std::size_t>(avail);
    return {slots_ + first, count};
  }

  /// Destroys the `n` oldest items (normally the first n of the last front_span()) and publishes
  /// the read index once. n == 0 is a no-op. Aborts if fewer than n items are known readable:
  /// releasing unread slots would hand uninitialised memory to the next read and break I1.
  void release(std::size_t n) noexcept {
    consumer_check_.claim("consumer");
    const std::uint64_t r = read_.load(std::memory_order_relaxed);  // own index
    if (n > write_cache_ - r) [[unlikely]] {
      // Pairs with the producer's release store of write_ (only reached on a caller error or a
      // release() without a preceding front_span()/front()).
      write_cache_ = write_.load(std::memory_order_acquire);
      if (n > write_cache_ - r) {
        contract_violation("release(n)/pop() with n greater than the readable items");
      }
    }
    if (n == 0) {
      return;
    }
    if constexpr (!std::is_trivially_destructible_v<T>) {
      for (std::uint64_t i = r; i != r + n; ++i) {
        AllocTraits::destroy(alloc_, slots_ + (i & mask_));
      }
    }
    // Pairs with the producer's acquire load of read_: our use of the slots precedes reuse.
    read_.store(r + n, std::memory_order_release);
  }

  /// The oldest item, or nullptr when empty. Valid until pop()/release()/try_pop*.
  [[nodiscard]] T* front() noexcept {
    consumer_check_.claim("consumer");
    const std::uint64_t r = read_.load(std::memory_order_relaxed);  // own index
    if (r == write_cache_) [[unlikely]] {
      // Pairs with the producer's release store of write_: makes the item in slot r visible.
      write_cache_ = write_.load(std::memory_order_acquire);
      if (r == write_cache_) {
        return nullptr;
      }
    }
    return slots_ + (r & mask_);
  }

  /// Destroys the oldest item. Precondition: front() returned non-null (aborts otherwise).
  void pop() noexcept { release(1); }

  // ---------------------------------------------------------------- either side

  /// Usable slots: a power of two, all of them usable.
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  /// Items in the ring at some moment during the call. Approximate when the other side is active:
  /// the answer may be stale by the time it is used. Exact for the producer as a lower bound of
  /// free room (capacity() - size()), and for the consumer as a lower bound of readable items.
  [[nodiscard]] std::size_t size() const noexcept {
    // read_ first, with acquire: it then pairs with the consumer's release store, so the load of
    // write_ below sees at least the value the consumer had seen, and w >= r.
    const std::uint64_t r = read_.load(std::memory_order_acquire);
    const std::uint64_t w = write_.load(std::memory_order_acquire);  // pairs with producer store
    const std::uint64_t n = w - r;
    return static_cast<std::size_t>(n < capacity_ ? n : capacity_);
  }

  /// size() == 0, with the same caveat.
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }

  [[nodiscard]] allocator_type get_allocator() const noexcept { return alloc_; }

  /// Lets other threads take over the producer and consumer sides (debug role check only).
  /// Call while neither side is in use; the hand-over itself must be synchronised by the caller.
  void reset_roles() noexcept {
    producer_check_.reset();
    consumer_check_.reset();
  }
  /// Hands over the producer side only (the consumer keeps using the ring meanwhile).
  void reset_producer_role() noexcept { producer_check_.reset(); }

 private:
  /// Slots of padding at each end of the slot array: neighbouring heap objects never share a
  /// cache line with a live slot, whatever the allocation's alignment.
  static constexpr std::size_t kPadSlots = (detail::kCacheLine - 1) / sizeof(T) + 1;
  /// Extra slots that let the slot array start on a cache line, so that a batch of whole lines
  /// does not share its first and last lines with its neighbours (only when T's size divides
  /// the line; other sizes straddle lines anyway).
  static constexpr std::size_t kAlignSlots =
      detail::kCacheLine % sizeof(T) == 0 ? detail::kCacheLine / sizeof(T) - 1 : 0;

  /// Slot 0: kPadSlots into the allocation, moved up to the next line boundary when possible.
  static T* first_slot(T* base) noexcept {
    T* first = base + kPadSlots;
    if constexpr (kAlignSlots != 0) {
      const auto addr = reinterpret_cast<std::uintptr_t>(first);
      const std::uintptr_t gap =
          (detail::kCacheLine - addr % detail::kCacheLine) % detail::kCacheLine;
      if (gap % sizeof(T) == 0) {  // always true unless the allocation is under-aligned for T
        first += gap / sizeof(T);
      }
    }
    return first;
  }

  static std::size_t checked_capacity(std::size_t requested) {
    if (requested == 0) {
      throw std::invalid_argument("ringflow::SpscRing: capacity must be at least 1, got 0");
    }
    if (requested > kMaxCapacity) {
      throw std::length_error("ringflow::SpscRing: capacity " + std::to_string(requested) +
                              " exceeds the maximum of 2^32 slots");
    }
    return std::bit_ceil(requested);
  }

  void construct_copies(T* dst, const T* src, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      AllocTraits::construct(alloc_, dst + i, src[i]);
    }
  }

  void move_out(T* dst, T* src, std::size_t n) noexcept(std::is_nothrow_move_assignable_v<T>) {
    for (std::size_t i = 0; i < n; ++i) {
      dst[i] = std::move(src[i]);
      AllocTraits::destroy(alloc_, src + i);
    }
  }

  // Each concern on its own cache line (see the members): checked relative to the first shared
  // index because a stateful allocator may make line 0 longer.
  static constexpr bool layout_is_line_per_concern() noexcept {
    constexpr std::size_t kLine = detail::kCacheLine;
    static_assert(alignof(SpscRing) >= kLine, "the ring must start on a cache line");
    static_assert(offsetof(SpscRing, write_) % kLine == 0, "write_ must start a line");
    static_assert(offsetof(SpscRing, slots_) + sizeof(T*) <= offsetof(SpscRing, write_),
                  "constant fields must not share write_'s line");
    static_assert(offsetof(SpscRing, read_cache_) == offsetof(SpscRing, write_) + kLine,
                  "producer-private line must follow write_'s line");
    static_assert(offsetof(SpscRing, read_) == offsetof(SpscRing, read_cache_) + kLine,
                  "read_ must have its own line");
    static_assert(offsetof(SpscRing, write_cache_) == offsetof(SpscRing, read_) + kLine,
                  "consumer-private line must follow read_'s line");
    static_assert(sizeof(SpscRing) == offsetof(SpscRing, write_cache_) + kLine,
                  "nothing may follow the consumer-private line inside the ring");
    return true;
  }

  [[noreturn, gnu::cold, gnu::noinline]] static void contract_violation(const char* what) noexcept {
    std::fprintf(stderr, "ringflow::SpscRing: contract violation: %s\n", what);
    std::fflush(stderr);
    std::abort();
  }

  // Line 0: set by the constructor, then only read by both sides (shared, never invalidated).
  [[no_unique_address]] Allocator alloc_;
  std::size_t capacity_;                     // 2^k
  std::uint64_t mask_;                       // capacity_ - 1
  std::size_t alloc_slots_;                  // capacity_ + 2 * kPadSlots + kAlignSlots
  typename AllocTraits::pointer storage_{};  // start of the allocation
  T* slots_ = nullptr;                       // storage_ + kPadSlots (+ alignment)

  // Line 1: written by the producer on every publish, read by the consumer only when its cache
  // says empty.
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> write_{0};

  // Line 2: producer-private. Never touched by the consumer, so refreshing write_ on the
  // consumer side does not steal it.
  alignas(detail::kCacheLine) std::uint64_t read_cache_ = 0;
  [[no_unique_address]] detail::RoleCheck producer_check_;

  // Line 3: written by the consumer on every release, read by the producer only when its cache
  // says full.
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> read_{0};

  // Line 4: consumer-private.
  alignas(detail::kCacheLine) std::uint64_t write_cache_ = 0;
  [[no_unique_address]] detail::RoleCheck consumer_check_;

  // Padding to the end of line 4 comes from the class alignment (sizeof is a multiple of 64), so
  // an object placed after the ring never shares line 4.

  static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                "SpscRing needs lock-free 64-bit atomics");
};

}  // namespace ringflow
