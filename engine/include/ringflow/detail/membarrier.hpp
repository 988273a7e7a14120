#pragma once
// An asymmetric barrier for the publish/stop handshake. The publish side (hot, frequent) pays a
// compiler-only fence; stop() (cold, rare) pays a membarrier(2) system call that forces a full
// barrier on every running thread of the process, which together order "producer marks itself
// active, then reads `running`" against "stop() clears `running`, then reads `active`".
// Where membarrier is unavailable (old kernels, some sandboxes) both sides fall back to a
// seq_cst fence (~20 cycles on x86 per publish); which one is used is decided once, after one
// successful call. Should membarrier fail later all the same, the heavy side falls back to an
// mprotect-driven TLB shoot-down, which interrupts (and so serialises) every CPU running a
// thread of the process: still a correct pair with the publishers' compiler-only fence.

#include <atomic>
#include <cstdint>

namespace ringflow::detail {

/// Registers the process for expedited membarrier once; true if the cheap light side may be used.
bool asymmetric_barrier_init() noexcept;

/// Set by asymmetric_barrier_init(); read on every publish (never changes afterwards).
extern bool g_asymmetric_barrier;

inline void light_barrier() noexcept {
  if (g_asymmetric_barrier) [[likely]] {
    std::atomic_signal_fence(std::memory_order_seq_cst);  // compiler-only; heavy side does the rest
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

/// The heavy side: after it returns, every store a thread made before its light_barrier() is
/// visible to the caller, or that thread's loads after its light_barrier() see the caller's
/// stores made before this call.
void heavy_barrier() noexcept;

/// Tests: makes heavy_barrier()'s membarrier call fail (true) or work again (false).
void fail_membarrier_for_testing(bool fail) noexcept;
/// Heavy barriers that had to use the fallback since the process started.
std::uint64_t heavy_barrier_fallbacks() noexcept;

}  // namespace ringflow::detail
