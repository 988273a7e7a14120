#include "ringflow/clock.hpp"

#include <fstream>
#include <string>
#include <thread>

namespace ringflow::detail {

namespace {

bool invariant_tsc() {
#if defined(__x86_64__)
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      const auto has = [&](const char* f) {
        return line.find(std::string(" ") + f) != std::string::npos;
      };
      return has("constant_tsc") && has("nonstop_tsc");
    }
  }
#endif
  return false;
}

TscScale calibrate() noexcept {
  TscScale s;
#if defined(__x86_64__)
  try {
    if (!invariant_tsc()) return s;
  } catch (...) {
    return s;
  }
  // Bracket each steady_clock read between two TSC reads and keep the tightest pair, at the
  // start and after ~10 ms, so a preemption during calibration cannot skew the scale.
  const auto sample = [](std::uint64_t& tsc, std::int64_t& ns) {
    std::uint64_t best = UINT64_MAX;
    for (int i = 0; i < 16; ++i) {
      const std::uint64_t a = __rdtsc();
      const std::int64_t t = steady_now_ns();
      const std::uint64_t b = __rdtsc();
      if (b - a < best) {
        best = b - a;
        tsc = a + (b - a) / 2;
        ns = t;
      }
    }
  };
  std::uint64_t t0 = 0;
  std::uint64_t t1 = 0;
  std::int64_t n0 = 0;
  std::int64_t n1 = 0;
  sample(t0, n0);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  sample(t1, n1);
  if (t1 <= t0 || n1 <= n0) return s;
  s.mult = static_cast<std::uint64_t>((static_cast<uint128>(n1 - n0) << 32) / (t1 - t0));
  s.base_tsc = t1;
  s.base_ns = n1;
#endif
  return s;
}

}  // namespace

const TscScale& tsc_scale() noexcept {
  static const TscScale scale = calibrate();
  return scale;
}

}  // namespace ringflow::detail
