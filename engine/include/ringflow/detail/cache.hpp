#pragma once
// Cache-line geometry used to keep independently written data on separate lines.

#include <cstddef>

namespace ringflow::detail {

/// Size of a destructive-interference unit (one cache line on x86-64 and most AArch64 cores).
/// A constant rather than std::hardware_destructive_interference_size: GCC warns (-Winterference-
/// size) that the latter can change with -mtune, which would silently change object layouts
/// between translation units.
inline constexpr std::size_t kCacheLine = 64;

}  // namespace ringflow::detail
