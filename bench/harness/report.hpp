#pragma once
// Result rows and their outputs: summary.json, ratios.json, the table printed at the end.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringflow::bench {

/// One (scenario, variant, offered rate, system) result, aggregated over repeats: throughput is
/// the median with min-max; latency percentiles come from all repeats' samples pooled.
struct Row {
  std::string scenario;
  std::string variant;     ///< "" or e.g. "subscribers=4", "partitions=2"
  std::string system;      ///< ringflow, mutex_queue, tbb_graph_direct, platform_control
  double offered_eps = 0;  ///< 0 for max-throughput runs
  double achieved_eps = 0;
  double achieved_min_eps = 0;
  double achieved_max_eps = 0;
  bool has_latency = false;  ///< false: p* fields are null in JSON
  std::uint64_t p50_ns = 0, p90_ns = 0, p99_ns = 0, p999_ns = 0, p9999_ns = 0, max_ns = 0;
  std::uint64_t events = 0;  ///< events measured (latency: samples recorded)
  std::uint64_t lost = 0;    ///< refused by the system, plus any accepted but never delivered
  unsigned repeats = 0;
  std::string histogram_csv;  ///< relative to the run folder, "" when none
  std::string note;           ///< e.g. "saturated", control's spinner summary
  // platform_control rows: the percentiles are the two-core control of platform_control.hpp,
  // per scheduled send t sent at s: max(s - t, end - s of a worker-core stall covering s);
  // the note keeps the sender-only lateness and the worker-core spinner's gap statistics.
};

struct Ratio {
  std::string scenario;
  std::string variant;
  double offered_eps = 0;
  std::string baseline;
  double throughput = 0;       ///< ringflow achieved / baseline achieved
  std::optional<double> p999;  ///< ringflow p99.9 / baseline p99.9 (latency rows)
};

/// ringflow against every other system in the same (scenario, variant, offered) group.
[[nodiscard]] std::vector<Ratio> compute_ratios(const std::vector<Row>& rows);

/// Median of `v` (mean of the middle two for an even count); 0 when empty.
[[nodiscard]] double median(std::vector<double> v);
/// "850 ns", "18.2 us", "1.35 ms", "2.10 s"
[[nodiscard]] std::string format_ns(std::uint64_t ns);
/// "950k", "1.25M"
[[nodiscard]] std::string format_rate(double eps);

void write_summary_json(const std::filesystem::path& path, const std::vector<Row>& rows);
void write_ratios_json(const std::filesystem::path& path, const std::vector<Ratio>& ratios);
/// The end-of-run table, grouped by scenario, each followed by its ringflow ratios.
void print_table(std::FILE* out, const std::vector<Row>& rows, const std::vector<Ratio>& ratios,
                 const std::vector<std::string>& notes);

}  // namespace ringflow::bench
