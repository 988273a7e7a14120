#include "ringflow/detail/membarrier.hpp"

#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace ringflow::detail {

bool g_asymmetric_barrier = false;

namespace {

std::atomic<bool> g_fail_membarrier{false};  // test hook: the next calls fail
std::atomic<std::uint64_t> g_fallbacks{0};   // heavy barriers that used the fallback
void* g_helper_page = nullptr;               // the fallback's page (mapped once)
std::mutex g_helper_mu;                      // one protection flip at a time

long membarrier(int cmd) noexcept {
  return ::syscall(__NR_membarrier, cmd, 0U, 0);
}

/// The fallback heavy side: flips a dirty page's protection, which makes the kernel shoot down
/// its TLB entries with an inter-processor interrupt on every CPU currently running a thread of
/// this process. The interrupt serialises that CPU (its store buffer drains, later loads are
/// not satisfied early), which is what the publishers' compiler-only fence relies on; a thread
/// not running at all went through a context switch, which serialises as well. (The technique
/// behind FlushProcessWriteBuffers on Linux; x86, like the rest of the engine.)
bool flush_process_write_buffers() noexcept {
  if (g_helper_page == nullptr) return false;
  std::lock_guard lock(g_helper_mu);
  if (::mprotect(g_helper_page, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)),
                 PROT_READ | PROT_WRITE) != 0) {
    return false;
  }
  // Dirty the page first, so the kernel cannot skip the shoot-down for an unused mapping.
  static_cast<std::atomic<std::uint64_t>*>(g_helper_page)->fetch_add(1, std::memory_order_relaxed);
  return ::mprotect(g_helper_page, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)), PROT_NONE) ==
         0;
}

}  // namespace

bool asymmetric_barrier_init() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(RINGFLOW_TSAN)
    // ThreadSanitizer does not model membarrier: keep the full fence so its model stays sound.
    g_asymmetric_barrier = false;
#else
    void* page = ::mmap(nullptr, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)),
                        PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_helper_page = page == MAP_FAILED ? nullptr : page;
    const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    // Proven once here, so a later failure is an anomaly the fallback covers.
    if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
        membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
      g_asymmetric_barrier = true;
    }
#endif
  });
  return g_asymmetric_barrier;
}

void heavy_barrier() noexcept {
  if (!g_asymmetric_barrier) {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // publishers fence too: a Dekker pair
    return;
  }
  // Relaxed: a test switch, read by the thread that calls stop().
  if (!g_fail_membarrier.load(std::memory_order_relaxed) &&
      membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
    return;
  }
  // Publishers only had a compiler fence, so a fence here alone would not pair with them.
  g_fallbacks.fetch_add(1, std::memory_order_relaxed);  // statistic
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (flush_process_write_buffers()) return;
  std::fputs(
      "ringflow: membarrier(2) failed after it had worked and the mprotect fallback failed too; "
      "stop() cannot order itself against running publishers, aborting rather than losing "
      "events\n",
      stderr);
  std::abort();
}

void fail_membarrier_for_testing(bool fail) noexcept {
  g_fail_membarrier.store(fail, std::memory_order_relaxed);  // test switch
}

std::uint64_t heavy_barrier_fallbacks() noexcept {
  return g_fallbacks.load(std::memory_order_relaxed);  // statistic
}

}  // namespace ringflow::detail
