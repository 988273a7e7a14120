#pragma once
// What a user would write instead of ringflow, running the same three stages (stages.hpp):
//
//   mutex_queue       producer ─▶ std::mutex + std::condition_variable + std::deque ─▶ worker
//                     thread (validate, enrich, route+sink). One queue + worker per
//                     (partition, subscriber); fan-out pushes the event into each subscriber's
//                     queue of its partition. Bounded: a full queue refuses the event.
//   tbb_graph_direct  producer ─try_put─▶ oneTBB flow::graph: validate (multifunction_node,
//                     filters) ─▶ enrich (function_node) ─▶ sink function_node(s), all serial,
//                     one chain per partition, sinks broadcast for fan-out. No rings, no
//                     partition log. Bounded by an in-flight counter (capacity).
//
// Both pin their worker threads to RunSpec::worker_cores (TBB workers through a
// task_scheduler_observer on their arena).

#include <memory>

#include "harness/system.hpp"

namespace ringflow::bench {

[[nodiscard]] std::unique_ptr<System> make_mutex_queue_system();
[[nodiscard]] std::unique_ptr<System> make_tbb_graph_system();

}  // namespace ringflow::bench
