#pragma once
// The harness clock: CLOCK_MONOTONIC in nanoseconds (vDSO, ~20 ns here, constant TSC), and the
// pause used while spinning on it. Every timestamp the harness compares comes from now_ns(), on
// any thread, so scheduled and completion times are on one time base.

#include <chrono>
#include <cstdint>

namespace ringflow::bench {

[[nodiscard]] inline std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace ringflow::bench
