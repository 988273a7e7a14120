#pragma once
// Runs a scenario file against every system, interleaved (A B C A B C ...) and repeated, and
// writes results/<run>/: summary.json, ratios.json, meta.json, hist/*.csv; prints the table.
//
// Trials (one fresh System each):
//   throughput  P producers push `events` as fast as accepted (retrying refused sends) after a
//               warm-up; achieved = events / (first measured send .. all delivered).
//   latency     P producers follow one open-loop plan (open_loop.hpp); the sink records
//               scheduled -> completion per event (after warm-up); refused sends are counted.
//   control     platform_control.hpp on the same cores, same plan, no system.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "harness/histogram.hpp"
#include "harness/report.hpp"
#include "harness/scenario.hpp"
#include "harness/system.hpp"

namespace ringflow::bench {

struct RunnerOptions {
  std::filesystem::path scenarios_file;
  std::filesystem::path engine_config;  ///< passed to the ringflow system; copied into meta.json
  std::filesystem::path out_dir;        ///< results/<run-name>
  bool quick = false;
  std::vector<std::string> command_line;  ///< argv, for meta.json
  bool progress = true;                   ///< live line on stderr (only if it is a TTY)
};

/// retry_dlq's counts (SinkTotals), summed over trials: what the handler asked for against what
/// the system did.
struct DeliveryCounts {
  std::uint64_t failed = 0;         ///< events the handler failed
  std::uint64_t retried = 0;        ///< events the handler asked to retry
  std::uint64_t retries = 0;        ///< retries the system scheduled
  std::uint64_t dead_letters = 0;   ///< dead letters the system produced
  std::uint64_t dead_lettered = 0;  ///< dead letters the dead-letter handler received
  void add(const DeliveryCounts& o) noexcept;
  [[nodiscard]] static DeliveryCounts of(const SinkTotals& t) noexcept;
  /// "retries N (handler asked N), dead letters N (...)", prefixed "MISMATCH: " when they differ.
  [[nodiscard]] std::string note() const;
};

/// Result of one trial of one system.
struct TrialResult {
  double achieved_eps = 0;
  Histogram latency;          ///< latency trials only
  Histogram sender_lateness;  ///< latency trials: each send's lateness against its plan
  std::uint64_t events = 0;   ///< measured events (throughput) or latency samples
  std::uint64_t lost = 0;     ///< refused + accepted-but-not-delivered
  std::string error;          ///< non-empty: the trial failed (reported)
  DeliveryCounts delivery;    ///< what the system's stop() reported (retry_dlq)
};

/// One throughput trial. `progress` counts sent events (relaxed), may be null.
[[nodiscard]] TrialResult run_throughput_trial(System& sys, const RunSpec& spec,
                                               std::uint64_t events, std::uint64_t warmup_events,
                                               std::atomic<std::uint64_t>* progress = nullptr);
/// One open-loop latency trial at `rate_eps` for `duration_s` after `warmup_s`.
[[nodiscard]] TrialResult run_latency_trial(System& sys, const RunSpec& spec, double rate_eps,
                                            double duration_s, double warmup_s,
                                            std::atomic<std::uint64_t>* progress = nullptr);

/// Runs everything; returns the process exit code (0: every trial ran; unsupported scenarios
/// are reported but are not failures). Throws ScenarioError for a bad scenario file.
int run_benchmarks(const RunnerOptions& opts);

}  // namespace ringflow::bench
