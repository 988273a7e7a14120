#pragma once
// The three stages every system under test runs, defined once so that ringflow and the
// baselines do identical work per event:
//
//   producer ─▶ [1 validate: checksum byte] ─▶ [2 enrich: 64-bit hash] ─▶ [3 route + sink]
//
// A BenchEvent is 64 bytes: seq (8) | scheduled_ns (8) | key (4) | route (1) | flags (1) |
// filler (41) | checksum (1) = XOR of bytes 0..62. The sink charges latency from scheduled_ns
// (the open-loop plan's time, not the send time) to its own completion.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "harness/clock.hpp"
#include "harness/histogram.hpp"

namespace ringflow::bench {

inline constexpr std::size_t kEventBytes = 64;

struct alignas(8) BenchEvent {
  std::array<std::byte, kEventBytes> bytes;
};
static_assert(sizeof(BenchEvent) == kEventBytes);

namespace layout {
inline constexpr std::size_t seq = 0;
inline constexpr std::size_t scheduled_ns = 8;
inline constexpr std::size_t key = 16;
inline constexpr std::size_t route = 20;
inline constexpr std::size_t flags = 21;
inline constexpr std::size_t filler = 22;
inline constexpr std::size_t checksum = kEventBytes - 1;
}  // namespace layout

/// flags bit: the sink records this event's latency (off for warm-up and throughput runs).
inline constexpr std::uint8_t kRecordLatency = 1;

template <class T>
[[nodiscard]] inline T load_field(const std::byte* p, std::size_t offset) noexcept {
  T v;
  std::memcpy(&v, p + offset, sizeof v);
  return v;
}

[[nodiscard]] inline std::uint8_t checksum_of(const std::byte* p) noexcept {
  std::uint8_t c = 0;
  for (std::size_t i = 0; i < layout::checksum; ++i)
    c ^= std::to_integer<std::uint8_t>(p[i]);
  return c;
}

/// Builds event `seq` planned for `scheduled_ns`; key and route derive from seq.
[[nodiscard]] inline BenchEvent make_event(std::uint64_t seq, std::uint64_t scheduled_ns,
                                           std::uint8_t flags) noexcept {
  BenchEvent e{};
  std::byte* p = e.bytes.data();
  const auto key = static_cast<std::uint32_t>(seq * 0x9E3779B1u);
  const auto route = static_cast<std::uint8_t>((seq >> 3) & 1u);
  std::memcpy(p + layout::seq, &seq, sizeof seq);
  std::memcpy(p + layout::scheduled_ns, &scheduled_ns, sizeof scheduled_ns);
  std::memcpy(p + layout::key, &key, sizeof key);
  p[layout::route] = std::byte{route};
  p[layout::flags] = std::byte{flags};
  for (std::size_t i = layout::filler; i < layout::checksum; ++i) {
    p[i] = std::byte{static_cast<std::uint8_t>(seq + i)};
  }
  p[layout::checksum] = std::byte{checksum_of(p)};
  return e;
}

[[nodiscard]] inline std::uint32_t key_of(const std::byte* p) noexcept {
  return load_field<std::uint32_t>(p, layout::key);
}

// ---- stage 1: validate ----
[[nodiscard]] inline bool stage_validate(const std::byte* p) noexcept {
  return checksum_of(p) == std::to_integer<std::uint8_t>(p[layout::checksum]);
}

// ---- stage 2: enrich ----
[[nodiscard]] inline std::uint64_t stage_enrich(const std::byte* p) noexcept {
  std::uint64_t h = 0x243F6A8885A308D3ull;
  for (std::size_t i = 0; i < kEventBytes; i += 8) {
    h ^= load_field<std::uint64_t>(p, i);
    h *= 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  return h;
}

// ---- stage 3: route + sink ----
/// One sink's state; owned by one thread at a time, merged after the threads are joined.
struct SinkState {
  std::array<std::uint64_t, 2> routed{};  ///< sum of hashes per route, so the work is used
  std::uint64_t processed = 0;
  Histogram latency;

  void merge(const SinkState& o) noexcept {
    routed[0] += o.routed[0];
    routed[1] += o.routed[1];
    processed += o.processed;
    latency.merge(o.latency);
  }
};

inline void stage_route_sink(SinkState& sink, const std::byte* p, std::uint64_t hash) noexcept {
  const auto route = std::to_integer<std::uint8_t>(p[layout::route]) & 1u;
  sink.routed[route] += hash;
  ++sink.processed;
  if ((std::to_integer<std::uint8_t>(p[layout::flags]) & kRecordLatency) != 0) {
    const auto scheduled = load_field<std::uint64_t>(p, layout::scheduled_ns);
    const std::uint64_t done = now_ns();
    sink.latency.record(done > scheduled ? done - scheduled : 0);
  }
}

/// All three stages fused, as one handler would run them. Returns false if validation failed.
inline bool run_stages(SinkState& sink, const std::byte* p) noexcept {
  if (!stage_validate(p)) return false;
  stage_route_sink(sink, p, stage_enrich(p));
  return true;
}

}  // namespace ringflow::bench
