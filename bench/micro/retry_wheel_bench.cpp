// RetryWheel micro-benchmark: the cost of firing one retry while N others wait far out (a
// burst of failures with long backoff, then steady short retries). The wheel must not rescan
// the N pending entries per fire: the per-fire time should stay flat as N grows.
//
//   ringflow_retry_wheel_bench --benchmark_filter=fire_one_with_pending
#include <benchmark/benchmark.h>

#include <cstdint>

#include "retry_wheel.hpp"

namespace {

using ringflow::detail::RetryEntry;
using ringflow::detail::RetryWheel;

void fire_one_with_pending(benchmark::State& state) {
  const auto pending = static_cast<std::size_t>(state.range(0));
  RetryWheel wheel(pending + 4);
  constexpr std::int64_t kTick = std::int64_t{1} << RetryWheel::kTickShift;
  std::int64_t now = std::int64_t{1} << 40;
  for (std::size_t i = 0; i < pending; ++i) {
    RetryEntry* e = wheel.acquire();
    if (e == nullptr) return state.SkipWithError("pool too small");
    e->due_ns = now + 400 * kTick + static_cast<std::int64_t>(i % 64) * kTick;  // far out
    wheel.schedule(e);
  }
  std::uint64_t fired = 0;
  for (auto _ : state) {
    RetryEntry* e = wheel.acquire();
    if (e == nullptr) return state.SkipWithError("pool exhausted");
    e->due_ns = now + 1;
    wheel.schedule(e);
    now += 2;
    fired += wheel.poll(now, [](RetryEntry& r) { benchmark::DoNotOptimize(r.due_ns); });
  }
  if (fired != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("lost a retry");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(fire_one_with_pending)->Arg(0)->Arg(1024)->Arg(16384)->Arg(65536);

}  // namespace

BENCHMARK_MAIN();
