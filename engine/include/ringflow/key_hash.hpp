#pragma once
// The partitioning hash. partition = key_hash(key) % partitions. It is part of the on-disk and
// cross-process contract (a key always lands in the same partition for the same partition
// count), so it is fixed: never change it without a version bump. tests/unit pins its values.
//
// ringflow key hash v1: seed 0x9E3779B97F4A7C15 ^ len; the key is read as little-endian 64-bit
// words (the last one zero-padded); each word w: h = rotl64(h ^ (w * C1), 31) * C2;
// finally murmur3's fmix64(h). C1 = 0x87C37B91114253D5, C2 = 0x4CF5AD432745937F.

#include <cstdint>
#include <string_view>

namespace ringflow {

[[nodiscard]] constexpr std::uint64_t key_hash(std::string_view key) noexcept {
  constexpr std::uint64_t kC1 = 0x87C37B91114253D5ULL;
  constexpr std::uint64_t kC2 = 0x4CF5AD432745937FULL;
  std::uint64_t h = 0x9E3779B97F4A7C15ULL ^ key.size();
  std::size_t i = 0;
  const auto mix = [&](std::uint64_t w) {
    h ^= w * kC1;
    h = (h << 31) | (h >> 33);
    h *= kC2;
  };
  for (; i + 8 <= key.size(); i += 8) {
    std::uint64_t w = 0;
    for (std::size_t b = 0; b < 8; ++b) {
      w |= std::uint64_t{static_cast<unsigned char>(key[i + b])} << (8 * b);
    }
    mix(w);
  }
  if (i < key.size()) {
    std::uint64_t w = 0;
    for (std::size_t b = 0; i + b < key.size(); ++b) {
      w |= std::uint64_t{static_cast<unsigned char>(key[i + b])} << (8 * b);
    }
    mix(w);
  }
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

/// The partition a key belongs to. `partitions` > 0.
[[nodiscard]] constexpr std::uint32_t partition_of(std::string_view key,
                                                   std::uint32_t partitions) noexcept {
  return static_cast<std::uint32_t>(key_hash(key) % partitions);
}

}  // namespace ringflow
