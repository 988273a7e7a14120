#pragma once
// Named benchmark scenarios, read from a TOML file (bench/scenarios/*.toml):
//
//   [run]                      defaults for every scenario below
//   systems = ["ringflow", "mutex_queue", "tbb_graph_direct"]
//   repeats = 3                systems are interleaved A B C A B C ... repeats times
//   producer_cores = [0]       worker_cores = [1]       capacity = 65536
//
//   [[scenario]]
//   kind = "latency_at_rate"   one of ScenarioKind (name defaults to kind)
//   rates = [100_000, 500_000] duration_s = 5.0  warmup_s = 0.5  control = true
//
// Bad input throws ScenarioError naming file, line, key and reason; unknown keys are errors
// (a typo must not silently run the defaults).

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ringflow::bench {

enum class ScenarioKind : std::uint8_t {
  max_throughput,      ///< producers push as fast as accepted; events/s over a fixed count
  latency_at_rate,     ///< open loop at each of `rates`
  latency_curve,       ///< open loop at rates rate_min..rate_max (geometric), until saturation
  fanout,              ///< 1 topic -> N subscribers, for each N in `subscribers`
  partitions_scaling,  ///< for each P in `partitions`
  urgent_under_load,   ///< one producer floods the normal lane; open-loop probes at `rate`
                       ///< on the urgent lane vs (interleaved trial) the normal lane
  retry_dlq,           ///< handlers fail `fail_share` (dead letters) and retry `retry_share`
                       ///< once: max throughput, then open loop at each of `rates`
  request_reply,       ///< request -> handler -> reply round trips: open loop at each of
                       ///< `rates`, then closed loop with each of `callers` threads
};

[[nodiscard]] std::string_view to_string(ScenarioKind k) noexcept;

struct Scenario {
  std::string name;
  ScenarioKind kind = ScenarioKind::max_throughput;
  int line = 0;  ///< where its [[scenario]] table starts

  std::vector<std::string> systems;
  unsigned repeats = 3;
  unsigned producers = 1;
  std::uint64_t capacity = 65536;
  std::vector<int> producer_cores;  ///< empty: runner's default (core 0)
  std::vector<int> worker_cores;    ///< empty: runner's default (the other cores)

  // throughput
  std::uint64_t events = 2'000'000;
  std::uint64_t warmup_events = 200'000;
  // latency
  std::vector<double> rates;  ///< latency_curve: filled from rate_min/rate_max/steps
  double duration_s = 5.0;
  double warmup_s = 0.5;
  bool control = true;      ///< add a platform_control row for each rate
  double saturation = 0.9;  ///< latency_curve: achieved < saturation*offered ends a system's sweep
  // variants
  std::vector<unsigned> subscribers{1};
  std::vector<unsigned> partitions{1};
  bool latency_mode = false;  ///< fanout / partitions_scaling: mode = "latency" (needs rates)
  // urgent_under_load
  double rate = 20'000;                 ///< probes per second (open loop)
  std::uint64_t handler_work_ns = 200;  ///< handler work per flood event (saturates the shard)
  // request_reply (rates defaults to [10_000, 100_000])
  std::vector<unsigned> callers{1, 4};  ///< closed-loop caller threads, one row each
  // retry_dlq (rates defaults to [500_000])
  double fail_share = 0.05;   ///< events the handler fails: dead letters on <topic>.dlq
  double retry_share = 0.05;  ///< events the handler retries once, then ok

  [[nodiscard]] bool is_latency() const noexcept {
    return kind == ScenarioKind::latency_at_rate || kind == ScenarioKind::latency_curve ||
           latency_mode;
  }
};

struct ScenarioFile {
  std::string source;  ///< file name as given
  std::string text;    ///< the file's contents (copied into meta.json)
  std::vector<Scenario> scenarios;
};

/// A scenario file that cannot run. what() reads "file:line: key: reason".
class ScenarioError : public std::runtime_error {
 public:
  ScenarioError(std::string file, int line, std::string key, std::string reason);
  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  [[nodiscard]] int line() const noexcept { return line_; }
  [[nodiscard]] const std::string& key() const noexcept { return key_; }
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
  std::string reason_;
};

[[nodiscard]] ScenarioFile parse_scenarios(std::string_view toml_text,
                                           std::string_view source_name = "<string>");
/// Reads and parses; a missing file is a ScenarioError too.
[[nodiscard]] ScenarioFile load_scenarios(const std::filesystem::path& file);

/// --quick: the same scenarios scaled down (~10x fewer events, shorter windows, 1 repeat).
void make_quick(ScenarioFile& f);

}  // namespace ringflow::bench
