#pragma once
// A oneTBB task arena whose worker threads are pinned, one per PU of a given list. Internal.
//
// Thread roles: the owner (a shard thread) constructs it, calls execute() and destroys it.
// TBB worker threads enter and leave the arena at will; each entry runs on_scheduler_entry(),
// which pins the entering worker to the next PU of the list (round-robin). The callback runs on
// every re-entry, so it is cheap: a thread remembers (in a thread_local) which arena last pinned
// it and returns at once when it re-enters the same arena.
//
// max_concurrency = 1 + workers and reserved_for_masters = 1: the owner (a shard thread) puts
// every batch in and waits for it inside execute(), so its slot must always be free; the other
// slots are the pinned workers. (TECH-NOTES: an arena of (1, 1) has no worker thread: work put
// from outside runs only in wait_for_all(), which is exactly how a worker-less shard runs.)
//
// When pinning is off (pin = false or an empty PU list), nothing is pinned; the plan's notes
// say so (see ringflow::plan()).

#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_scheduler_observer.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ringflow::detail {

class PinnedArena {
 public:
  /// `worker_pus`: Linux CPU numbers for the arena's workers (Plan::graph_worker_pus()).
  /// The arena has 1 + worker_pus.size() slots, one reserved for the owner; `pin` = false
  /// (or an empty list) leaves every thread where the OS puts it.
  PinnedArena(std::vector<int> worker_pus, bool pin);
  PinnedArena(const PinnedArena&) = delete;
  PinnedArena& operator=(const PinnedArena&) = delete;
  ~PinnedArena();

  /// Runs `f` inside the arena on the calling thread (tbb::task_arena::execute).
  template <typename F>
  decltype(auto) execute(F&& f) {
    return arena_.execute(std::forward<F>(f));
  }

  [[nodiscard]] tbb::task_arena& arena() noexcept { return arena_; }
  [[nodiscard]] const std::vector<int>& worker_pus() const noexcept { return pus_; }
  [[nodiscard]] bool pinning() const noexcept { return pin_; }
  /// Workers pinned so far (first entries only), and pin attempts that failed.
  [[nodiscard]] std::uint64_t pinned() const noexcept {
    return observer_.pinned.load(std::memory_order_relaxed);  // a statistic; no ordering needed
  }
  [[nodiscard]] std::uint64_t pin_failures() const noexcept {
    return observer_.failures.load(std::memory_order_relaxed);  // a statistic
  }
  /// Reason of the first failed pin, empty when none. Read after the workers have run.
  [[nodiscard]] std::string first_failure() const;

 private:
  class Observer : public tbb::task_scheduler_observer {
   public:
    Observer(tbb::task_arena& arena, const PinnedArena& owner)
        : tbb::task_scheduler_observer(arena), owner_(owner) {}
    void on_scheduler_entry(bool is_worker) override;

    std::atomic<std::uint64_t> next{0};  // round-robin cursor over owner_.pus_
    std::atomic<std::uint64_t> pinned{0};
    std::atomic<std::uint64_t> failures{0};
    std::atomic<bool> failure_claimed{false};
    std::atomic<bool> failure_recorded{false};
    std::string first_failure;  // written once, by the thread that set failure_recorded

   private:
    const PinnedArena& owner_;
  };

  std::vector<int> pus_;
  bool pin_;
  std::uint64_t id_;       // unique per arena, for the re-entry shortcut
  tbb::task_arena arena_;  // declared before observer_: the observer dies first
  Observer observer_;
};

}  // namespace ringflow::detail
