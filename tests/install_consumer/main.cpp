// A program outside the source tree, built against the installed ringflow package.
#include <cstdint>
#include <cstdio>

#include <ringflow/spsc_ring.hpp>
#include <ringflow/version.hpp>

int main() {
  ringflow::SpscRing<std::uint64_t> ring(8);
  for (std::uint64_t i = 0; i < 8; ++i) {
    if (!ring.try_push(i)) return 1;
  }
  std::uint64_t sum = 0;
  std::uint64_t v = 0;
  while (ring.try_pop(v)) sum += v;
  std::printf("ringflow %.*s consumer: sum=%llu\n", static_cast<int>(ringflow::version().size()),
              ringflow::version().data(), static_cast<unsigned long long>(sum));
  return sum == 28 ? 0 : 2;
}
