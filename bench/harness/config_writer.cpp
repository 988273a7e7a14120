#include "harness/config_writer.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ringflow::bench {
namespace {

std::string cores(const std::vector<int>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string quoted(std::string_view s) {
  std::string q(1, '"');
  for (const char ch : s) {
    if (ch == '"' || ch == '\\') q += '\\';  // a TOML basic string (paths may hold either)
    q += ch;
  }
  q += '"';
  return q;
}

std::string boolean(bool b) {
  return b ? "true" : "false";
}

/// Every setting as (dotted key, TOML value), in configs/default.toml's order.
std::vector<std::pair<std::string, std::string>> settings(const ringflow::EngineConfig& c) {
  using std::to_string;
  return {
      {"engine.partitions", to_string(c.partitions)},
      {"engine.max_producers", to_string(c.max_producers)},
      {"engine.max_payload_bytes", to_string(c.max_payload_bytes)},
      {"engine.max_topics", to_string(c.max_topics)},
      {"shards.count", to_string(c.shards)},
      {"shards.cores", cores(c.shard_cores)},
      {"shards.exclusive_cores", boolean(c.exclusive_cores)},
      {"graph.workers_per_shard", to_string(c.graph_workers_per_shard)},
      {"graph.cores", cores(c.graph_cores)},
      {"rings.capacity", to_string(c.ring_capacity)},
      {"rings.batch_size", to_string(c.batch_size)},
      {"rings.wait_strategy", quoted(ringflow::to_string(c.wait_strategy))},
      {"rings.urgent_ratio", to_string(c.urgent_ratio)},
      {"backpressure.policy", quoted(ringflow::to_string(c.backpressure))},
      {"backpressure.timeout_us", to_string(c.backpressure_timeout.count())},
      {"memory.numa", quoted(ringflow::to_string(c.numa))},
      {"memory.allocator", quoted(ringflow::to_string(c.allocator))},
      {"log.segment_bytes", to_string(c.segment_bytes)},
      {"log.retention_bytes", to_string(c.retention_bytes)},
      {"log.retention_age_ms", to_string(c.retention_age.count())},
      {"idempotency.window", to_string(c.idempotency_window)},
      {"idempotency.window_ms", to_string(c.idempotency_window_age.count())},
      {"retry.capacity", to_string(c.retry_capacity)},
      {"wal.mode", quoted(to_string(c.wal_mode))},
      {"wal.dir", quoted(std::string_view(c.wal_dir))},
      {"wal.segment_bytes", to_string(c.wal_segment_bytes)},
      {"wal.interval_ms", to_string(c.wal_interval.count())},
      {"wal.key_file", quoted(std::string_view(c.wal_key_file))},
      {"wal.key_env", quoted(std::string_view(c.wal_key_env))},
      {"wal.retention_bytes", to_string(c.wal_retention_bytes)},
      {"wal.retention_age_ms", to_string(c.wal_retention_age.count())},
      {"watchdog.handler_ms", to_string(c.handler_watchdog.count())},
      {"affinity.pin_threads", boolean(c.pin_threads)},
      {"metrics.latency_sample_every", to_string(c.metrics_latency_sample_every)},
  };
}

}  // namespace

std::string config_to_toml(const ringflow::EngineConfig& cfg, std::string_view header) {
  std::string out(header);
  if (!out.empty() && out.back() != '\n') out += '\n';
  std::string section;
  for (const auto& [key, value] : settings(cfg)) {
    const std::size_t dot = key.find('.');
    const std::string sec = key.substr(0, dot);
    if (sec != section) {
      if (!out.empty()) out += '\n';
      out += "[" + sec + "]\n";
      section = sec;
    }
    out += key.substr(dot + 1) + " = " + value + "\n";
  }
  return out;
}

bool configs_equal(const ringflow::EngineConfig& a, const ringflow::EngineConfig& b) {
  return settings(a) == settings(b);
}

std::string config_diff(const ringflow::EngineConfig& from, const ringflow::EngineConfig& to) {
  const auto a = settings(from);
  const auto b = settings(to);
  std::string out;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].second != b[i].second) {
      out += a[i].first + ": " + a[i].second + " -> " + b[i].second + "\n";
    }
  }
  return out;
}

}  // namespace ringflow::bench
