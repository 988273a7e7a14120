#pragma once
// `ringflow-bench --tune CONFIG --objective latency|throughput`: measures ringflow under
// engine configs around CONFIG and writes the best one as <out>/tuned.toml.
//
// What is swept (TuneSpace): rings.batch_size, rings.capacity, rings.wait_strategy and the
// placements this machine allows (tune_placements(): shards.count 1 or 2 and their cores,
// graph.workers_per_shard 0 or 1). The producer runs on the first usable core, as in the
// scenario files; on a 2-core machine the only placements that add a thread share its core.
//
// The full grid (5 x 3 x 3 x placements, > 100 candidates) takes minutes, so by default the
// sweep is staged (coordinate descent):
//   stage 1  every wait_strategy x placement, at CONFIG's batch_size and capacity;
//   stage 2  every batch_size x capacity (batch <= capacity), with stage 1's best;
//   final    the 3 best of all re-measured `confirm_rounds` more times, interleaved
//            (A B C A B C), and ranked on the pooled samples (latency) or the median (tput).
// --tune-grid full runs every combination in stage 1 instead (then the final round).
//
// One measurement: latency objective: open loop at `rate_eps` (500k ev/s), `window_s` after
// `warmup_s`, ranked by p99.9 then p99 (a candidate that lost events or failed ranks last);
// throughput objective: max_throughput over `events`, ranked by events/s. Windows are short
// (1.5 s by default) to keep a tune near 1-2 minutes on a 2-core VM: p99.9 of one window is
// noisy, which is why the finalists are measured again.

#include <ringflow/config.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "harness/histogram.hpp"

namespace ringflow::bench {

enum class TuneObjective : std::uint8_t { latency, throughput };
enum class TuneGrid : std::uint8_t { staged, full };

struct TunePlacement {
  std::string label;  ///< "1 shard on core 1"
  std::uint32_t shards = 1;
  std::vector<int> shard_cores;
  std::uint32_t workers_per_shard = 0;
  std::vector<int> graph_cores;
};

struct TuneSpace {
  std::vector<std::size_t> batch_sizes{32, 64, 128, 256, 512};
  std::vector<std::size_t> capacities{1024, 4096, 16384};
  std::vector<ringflow::WaitStrategyKind> waits{ringflow::WaitStrategyKind::busy_spin,
                                                ringflow::WaitStrategyKind::spin_yield,
                                                ringflow::WaitStrategyKind::park};
  std::vector<TunePlacement> placements;
};

struct TuneCandidate {
  std::string label;  ///< "busy_spin batch 64 cap 4096 | 1 shard on core 1"
  ringflow::EngineConfig cfg;
};

/// Placements for `n_cores` logical cores with the producer on `producer_core`: one shard on
/// the first other core; with >= 2 other cores also 2 shards, and 1 shard + 1 graph worker, on
/// other cores; with only 1 other core those two share the producer's core (labelled so).
[[nodiscard]] std::vector<TunePlacement> tune_placements(int n_cores, int producer_core);

/// `base` with the placement applied (shards, cores, graph workers; partitions raised to at
/// least the shard count).
[[nodiscard]] ringflow::EngineConfig with_placement(ringflow::EngineConfig base,
                                                    const TunePlacement& p);
[[nodiscard]] std::string candidate_label(const ringflow::EngineConfig& cfg,
                                          const std::string& placement_label);

/// Stage 1 (staged grid): every wait x placement at base's batch/capacity. Full grid: every
/// wait x placement x batch x capacity with batch <= capacity.
[[nodiscard]] std::vector<TuneCandidate> tune_stage1(const ringflow::EngineConfig& base,
                                                     const TuneSpace& space, TuneGrid grid);
/// Stage 2: every batch x capacity (batch <= capacity) on `best` (its wait and placement).
[[nodiscard]] std::vector<TuneCandidate> tune_stage2(const TuneCandidate& best,
                                                     const TuneSpace& space);

/// One candidate's measurement(s).
struct TuneScore {
  double achieved_eps = 0;           ///< throughput: median of the windows; latency: achieved
  std::vector<double> achieved_all;  ///< every window's
  Histogram latency;                 ///< latency: pooled over the windows
  std::uint64_t lost = 0;
  std::string error;
  unsigned windows = 0;
};

/// true when `a` ranks strictly before `b`: a failed or lossy run ranks last; latency by p99.9,
/// then p99, then p50; throughput by events/s.
[[nodiscard]] bool tune_better(const TuneScore& a, const TuneScore& b, TuneObjective objective);

struct TuneOptions {
  std::filesystem::path base_config;  ///< the config the sweep starts from
  TuneObjective objective = TuneObjective::latency;
  TuneGrid grid = TuneGrid::staged;
  std::filesystem::path out_dir;  ///< tuned.toml (+ tune.txt: the printed tables)
  double rate_eps = 500'000;
  double window_s = 1.5;
  double warmup_s = 0.2;
  std::uint64_t events = 2'000'000;  ///< throughput objective, per window
  std::uint64_t warmup_events = 200'000;
  unsigned finalists = 3;
  unsigned confirm_rounds = 2;
  std::vector<std::string> command_line;
};

/// Runs the tune; prints the ranked tables; writes <out>/tuned.toml. Returns the exit code.
int run_tune(const TuneOptions& opts);

}  // namespace ringflow::bench
