#include "ringflow/detail/membarrier.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>

namespace ringflow::detail {

bool g_asymmetric_barrier = false;

namespace {
long membarrier(int cmd) noexcept {
  return ::syscall(__NR_membarrier, cmd, 0U, 0);
}
}  // namespace

bool asymmetric_barrier_init() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(RINGFLOW_TSAN)
    // ThreadSanitizer does not model membarrier: keep the full fence so its model stays sound.
    g_asymmetric_barrier = false;
#else
    const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
        membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0) {
      g_asymmetric_barrier = true;
    }
#endif
  });
  return g_asymmetric_barrier;
}

void heavy_barrier() noexcept {
  if (g_asymmetric_barrier) {
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace ringflow::detail
