#pragma once
// A system under test, as the runner drives it. ringflow, the baselines (mutex_queue,
// tbb_graph_direct) and anything added later implement this, so every system gets the same
// producers, the same open-loop schedule, the same stages (stages.hpp) and the same accounting.
//
// One instance runs one trial:
//   runner thread:    sys.start(spec)
//   producer thread k: auto s = sys.make_sender(k); ... s->send(event) ...  (pinned first)
//   runner thread:    (producers joined) sys.drain(); SinkTotals t = sys.stop();
// send() returns false when the system refused the event (full); the runner counts it.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness/stages.hpp"

namespace ringflow::bench {

enum class RunMode : std::uint8_t { max_throughput, latency };

struct RunSpec {
  RunMode mode = RunMode::latency;
  unsigned producers = 1;
  std::size_t capacity = 65536;     ///< events accepted but not yet completed, at most
  unsigned subscribers = 1;         ///< fan-out: each event reaches this many sinks
  unsigned partitions = 1;          ///< independent ordered lanes, lane = hash(key) % partitions
  std::vector<int> producer_cores;  ///< producer k runs on producer_cores[k % size]
  std::vector<int> worker_cores;    ///< the system's own threads, where it lets us choose
  std::string engine_config;        ///< engine config file (ringflow only)
};

/// What the sinks saw, merged over all sink threads after they stopped.
struct SinkTotals {
  SinkState sinks;
  std::uint64_t filtered = 0;  ///< events stage 1 rejected (0 with valid events)
  std::string problem;         ///< non-empty: the system saw something wrong (trial fails)
};

/// One producer's handle. Used by one thread only.
class Sender {
 public:
  virtual ~Sender() = default;
  /// false: refused (full / stopped). Never blocks longer than the system's own policy.
  [[nodiscard]] virtual bool send(const BenchEvent& ev) noexcept = 0;
};

class System {
 public:
  virtual ~System() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  /// Empty when this system can run `spec`, else why not (reported, never silently skipped).
  [[nodiscard]] virtual std::string unsupported(const RunSpec& /*spec*/) const { return {}; }
  /// Builds threads/graphs/queues; after it returns, make_sender() and send() work.
  virtual void start(const RunSpec& spec) = 0;
  /// Called on producer thread `index` (already pinned), once per producer.
  [[nodiscard]] virtual std::unique_ptr<Sender> make_sender(unsigned index) = 0;
  /// Returns once every accepted event has completed at every sink.
  virtual void drain() = 0;
  /// Stops and joins the system's threads; returns the merged sink state.
  virtual SinkTotals stop() = 0;
  /// Where its threads ran, for meta.json ("workers: core 1").
  [[nodiscard]] virtual std::string placement() const = 0;
};

/// Names the runner accepts in a scenario's `systems` list, in display order.
[[nodiscard]] std::vector<std::string> known_systems();
/// Builds the named system, or returns nullptr and sets `why` (unknown name, or not built).
[[nodiscard]] std::unique_ptr<System> make_system(const std::string& name, std::string& why);

}  // namespace ringflow::bench
