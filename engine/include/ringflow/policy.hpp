#pragma once
// The policy enums that config keys choose between (rings.wait_strategy,
// backpressure.policy, memory.numa, memory.allocator, wal.mode), for the parts they configure
// without the whole config (ringflow/config.hpp). Names as in config files: to_string().

#include <cstdint>
#include <string_view>

namespace ringflow {

/// What a thread does when the ring it needs is empty (consumer) or full (producer).
enum class WaitStrategyKind : std::uint8_t {
  busy_spin,   ///< lowest latency; burns its core at 100 % even when idle
  spin_yield,  ///< spins briefly, then sched_yield(); near-spin latency, gives the core away
  park,        ///< spins briefly, then sleeps on a futex; ~µs wake-up, no CPU when idle
};

/// What publish() does when the target ring is full. Nothing is ever dropped silently.
enum class BackpressurePolicy : std::uint8_t {
  fail_fast,  ///< return PublishStatus::full at once
  spin,       ///< spin/yield until space or until backpressure_timeout, then return full
  park,       ///< sleep until space or until backpressure_timeout, then return full
};

enum class NumaBinding : std::uint8_t { off, on, automatic };
enum class AllocatorKind : std::uint8_t { system, jemalloc };

/// What the write-ahead log promises (README "Durability"): off = memory only; os = written to
/// the page cache (survives a process crash, not a power cut); interval = fdatasync every
/// wal.interval_ms; sync = an event is durable only after an fdatasync that covers it (group
/// commit across everything in flight).
enum class WalMode : std::uint8_t { off, os, interval, sync };

std::string_view to_string(WaitStrategyKind k) noexcept;
std::string_view to_string(BackpressurePolicy p) noexcept;
std::string_view to_string(NumaBinding n) noexcept;
std::string_view to_string(AllocatorKind a) noexcept;
std::string_view to_string(WalMode m) noexcept;

}  // namespace ringflow
