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
//   ring_inline       producer ─try_push─▶ one ringflow::SpscRing of 64-byte events ─▶ one
//                     consumer thread that runs the three stages inline on the slots, a batch
//                     at a time (front_span/release), busy-spinning when empty. No log, no
//                     routing, no graph: the hand-written Disruptor-style pipeline, i.e. what
//                     this workload can reach on this machine (baselines.cpp). One producer,
//                     one subscriber, one partition; other shapes are reported unsupported.
//
// All pin their worker threads to RunSpec::worker_cores (TBB workers through a
// task_scheduler_observer on their arena).

#include <memory>

#include "harness/system.hpp"

namespace ringflow::bench {

[[nodiscard]] std::unique_ptr<System> make_mutex_queue_system();
[[nodiscard]] std::unique_ptr<System> make_tbb_graph_system();
[[nodiscard]] std::unique_ptr<System> make_ring_inline_system();

}  // namespace ringflow::bench
