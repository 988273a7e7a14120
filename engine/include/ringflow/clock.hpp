#pragma once
// The engine's one clock: steady (monotonic) nanoseconds. Deadlines, publish and ingest
// timestamps and retention ages are all on it. Reading it is a vDSO call, not a system call.

#include <chrono>
#include <cstdint>

namespace ringflow {

[[nodiscard]] inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace ringflow
