#include "harness/open_loop.hpp"

#include <algorithm>

namespace ringflow::bench {

std::vector<OpenLoopPlan> split_plan(double rate_eps, std::uint64_t events, std::uint64_t start_ns,
                                     unsigned producers) {
  producers = std::max(producers, 1u);
  std::vector<OpenLoopPlan> plans;
  plans.reserve(producers);
  const long double period_ns = 1e9L / rate_eps;
  for (unsigned k = 0; k < producers; ++k) {
    OpenLoopPlan p;
    p.rate_eps = rate_eps / producers;
    // Global events k, k+P, ...: ceil((events - k) / P) of them.
    p.events = events > k ? (events - k + producers - 1) / producers : 0;
    p.start_ns = start_ns + static_cast<std::uint64_t>(period_ns * k);
    plans.push_back(p);
  }
  return plans;
}

}  // namespace ringflow::bench
