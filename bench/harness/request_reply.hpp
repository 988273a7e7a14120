#pragma once
// The request_reply scenario: round trips of Producer::request() -> handler -> Engine::reply()
// against a hand-written pair of SPSC rings (request ring + reply ring, one spinning worker)
// and the platform_control row, in the same run.
//
//   - Open loop at each of `rates`: one caller sends requests at planned times (never waits for
//     a reply before the next send) and polls for replies; round-trip latency = reply seen -
//     *scheduled* send time (coordinated omission corrected), p50..p99.99.
//   - Closed loop with `callers` = [1, 4] threads, each sending one request and waiting for its
//     reply, for duration_s: round trips per second (the concurrent-request throughput).
//
// Rows: scenario = the scenario's name, system = ringflow | ring_pair | platform_control,
// variant "" (open loop, offered_eps = the rate) or "callers=N" (closed loop, offered 0).

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/report.hpp"
#include "harness/scenario.hpp"

namespace ringflow::bench {

/// Runs one request_reply scenario; appends its rows, and any trial errors to `errors`.
/// `progress` (may be null) is a counter of requests sent, for the progress line.
void run_request_reply(const Scenario& s, std::vector<Row>& rows, std::vector<std::string>& errors,
                       std::atomic<std::uint64_t>* progress);

/// Seconds the scenario will take (for the progress line's estimate).
[[nodiscard]] double request_reply_seconds(const Scenario& s);

}  // namespace ringflow::bench
