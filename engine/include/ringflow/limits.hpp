#pragma once
// The engine's fixed limits: what fits in an event slot, how many shards there can be. Included
// by the hot-path headers instead of the whole config (ringflow/config.hpp).

#include <cstddef>
#include <cstdint>

namespace ringflow {

/// Events travel inline in fixed 256-byte ring slots: keys up to kMaxKeyBytes, payloads up to
/// kMaxPayloadBytes (max_payload_bytes may only lower it). Larger data: publish a reference.
inline constexpr std::size_t kMaxKeyBytes = 32;
inline constexpr std::size_t kMaxPayloadBytes = 168;
/// Upper bound on shards (each producer owns two rings per shard).
inline constexpr std::uint32_t kMaxShards = 256;

}  // namespace ringflow
