#include "pinned_arena.hpp"

#include <atomic>

#include "ringflow/topology.hpp"

namespace ringflow::detail {

namespace {
// Which arena last pinned this thread: re-entries into the same arena skip the system call.
// Arenas get unique ids (not addresses, which a later arena may reuse).
thread_local std::uint64_t t_pinned_by = 0;
std::atomic<std::uint64_t> g_next_arena_id{1};
}  // namespace

PinnedArena::PinnedArena(std::vector<int> worker_pus, bool pin)
    : pus_(std::move(worker_pus)),
      pin_(pin && !pus_.empty()),
      // relaxed: only uniqueness matters.
      id_(g_next_arena_id.fetch_add(1, std::memory_order_relaxed)),
      // One slot reserved for the owner (the shard thread, which does all its work inside
      // execute() and waits for it there); the rest are the pinned workers. With no workers no
      // TBB thread ever joins, so execute() never has to wait for a slot.
      arena_(static_cast<int>(1 + pus_.size()), /*reserved_for_masters=*/1),
      observer_(arena_, *this) {
  arena_.initialize();
  if (pin_) observer_.observe(true);
}

PinnedArena::~PinnedArena() {
  // Stop callbacks before the arena (and this object) go away.
  if (pin_) observer_.observe(false);
  arena_.terminate();
}

std::string PinnedArena::first_failure() const {
  // failure_recorded (acquire) pairs with the release in on_scheduler_entry: the string is
  // complete once the flag reads true.
  if (!observer_.failure_recorded.load(std::memory_order_acquire)) return {};
  return observer_.first_failure;
}

void PinnedArena::Observer::on_scheduler_entry(bool is_worker) {
  if (!is_worker || t_pinned_by == owner_.id_) return;
  // relaxed: the cursor only spreads workers over PUs; no data is published through it.
  const std::uint64_t i = next.fetch_add(1, std::memory_order_relaxed);
  const int pu = owner_.pus_[static_cast<std::size_t>(i % owner_.pus_.size())];
  const PinResult r = pin_current_thread_to_pu(pu);
  t_pinned_by = owner_.id_;
  if (r) {
    pinned.fetch_add(1, std::memory_order_relaxed);  // statistic
    return;
  }
  failures.fetch_add(1, std::memory_order_relaxed);  // statistic
  // Only the thread that wins the claim writes the string; the release store publishes it.
  bool expected = false;
  if (failure_claimed.compare_exchange_strong(expected, true, std::memory_order_relaxed)) {
    first_failure = r.reason;
    failure_recorded.store(true, std::memory_order_release);
  }
}

}  // namespace ringflow::detail
