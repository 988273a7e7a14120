#include "harness/baselines.hpp"
#include "harness/system.hpp"

namespace ringflow::bench {

#if RINGFLOW_BENCH_HAVE_RINGFLOW_SYSTEM
// bench/harness/ringflow_system.cpp
std::unique_ptr<System> make_ringflow_system(std::string& why);
std::unique_ptr<System> make_ringflow_metrics_system(std::string& why);
#endif

std::vector<std::string> known_systems() {
  return {"ringflow", "ring_inline", "mutex_queue", "tbb_graph_direct", "ringflow_metrics"};
}

std::unique_ptr<System> make_system(const std::string& name, std::string& why) {
  if (name == "mutex_queue") return make_mutex_queue_system();
  if (name == "tbb_graph_direct") return make_tbb_graph_system();
  if (name == "ring_inline") return make_ring_inline_system();
  if (name == "ringflow") {
#if RINGFLOW_BENCH_HAVE_RINGFLOW_SYSTEM
    return make_ringflow_system(why);
#else
    why = "not built: the ringflow adapter (bench/harness/ringflow_system.cpp) is not in this tree";
    return nullptr;
#endif
  }
  if (name == "ringflow_metrics") {  // ringflow with latency sampling on and a 1 s scraper
#if RINGFLOW_BENCH_HAVE_RINGFLOW_SYSTEM
    return make_ringflow_metrics_system(why);
#else
    why = "not built: the ringflow adapter (bench/harness/ringflow_system.cpp) is not in this tree";
    return nullptr;
#endif
  }
  why = "unknown system '" + name + "'";
  return nullptr;
}

}  // namespace ringflow::bench
