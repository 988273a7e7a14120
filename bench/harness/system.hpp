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
  // Delivery scenarios (urgent_under_load, retry_dlq); systems without these features are
  // skipped by the runner (has_urgent_lane() / has_retries()), never run with them ignored.
  std::uint64_t handler_work_ns = 0;  ///< the sink spins this long on each kFloodEvent event
  double fail_share = 0;              ///< share of events the handler fails (dead letters)
  double retry_share = 0;             ///< share the handler asks to retry once, then ok
};

/// BenchEvent flags bit (next to kRecordLatency): the sink spends RunSpec::handler_work_ns on it.
inline constexpr std::uint8_t kFloodEvent = 2;

/// The handler's verdict for event `seq` in a retry_dlq run: a fixed pseudo-random share of
/// the sequence numbers fails, the next share is retried once. Same answer on every attempt.
enum class HandlerVerdict : std::uint8_t { ok, retry_once, fail };
[[nodiscard]] inline HandlerVerdict verdict_of(std::uint64_t seq, double fail_share,
                                               double retry_share) noexcept {
  std::uint64_t h = seq * 0x9E3779B97F4A7C15ull;
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  if (u < fail_share) return HandlerVerdict::fail;
  if (u < fail_share + retry_share) return HandlerVerdict::retry_once;
  return HandlerVerdict::ok;
}

/// What the sinks saw, merged over all sink threads after they stopped.
struct SinkTotals {
  SinkState sinks;
  std::uint64_t filtered = 0;  ///< events stage 1 rejected (0 with valid events)
  std::string problem;         ///< non-empty: the system saw something wrong (trial fails)
  // retry_dlq (systems with has_retries()):
  std::uint64_t dead_lettered = 0;  ///< dead letters the dead-letter handler received
  std::uint64_t failed = 0;         ///< events the handler failed (each must become one)
  std::uint64_t retried = 0;        ///< events the handler asked to retry
  std::uint64_t retries = 0;        ///< the system's own count of retries scheduled
  std::uint64_t dead_letters = 0;   ///< the system's own count of dead letters
};

/// One producer's handle. Used by one thread only.
class Sender {
 public:
  virtual ~Sender() = default;
  /// false: refused (full / stopped). Never blocks longer than the system's own policy.
  [[nodiscard]] virtual bool send(const BenchEvent& ev) noexcept = 0;
  /// The same on the system's urgent lane (only called when System::has_urgent_lane()).
  [[nodiscard]] virtual bool send_urgent(const BenchEvent& /*ev*/) noexcept { return false; }
};

class System {
 public:
  virtual ~System() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  /// Empty when this system can run `spec`, else why not (reported, never silently skipped).
  [[nodiscard]] virtual std::string unsupported(const RunSpec& /*spec*/) const { return {}; }
  /// A priority lane that overtakes queued normal events (urgent_under_load).
  [[nodiscard]] virtual bool has_urgent_lane() const { return false; }
  /// Handler retries and dead letters (retry_dlq; RunSpec::fail_share / retry_share).
  [[nodiscard]] virtual bool has_retries() const { return false; }
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
