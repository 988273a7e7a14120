#pragma once
// The engine config: one TOML file (see configs/default.toml, every key commented) or this struct
// filled in code. Every field has a default that runs on any machine with >= 2 cores.
//
// Loading and checking:
//   auto cfg = ringflow::load_config("configs/default.toml");   // throws ConfigError
//   auto problems = ringflow::check_config(cfg, topology);      // every problem at once
//   ringflow::validate(cfg, topology);                          // throws them as ConfigError
// Nothing in ringflow starts on a config that fails validate().

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ringflow/limits.hpp"
#include "ringflow/policy.hpp"

namespace ringflow {

class Topology;

/// A config that cannot run. what() names the source, line, key and reason and suggests a fix.
struct ConfigIssue {
  std::string source;   ///< file name or "<string>" / "<code>"
  int line = 0;         ///< 1-based; 0 when the problem is not tied to a line
  std::string key;      ///< dotted key, e.g. "shards.cores"
  std::string message;  ///< reason + suggested fix
  [[nodiscard]] std::string to_string() const;  ///< "file:line: key: message"
};

class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(ConfigIssue issue);
  explicit ConfigError(std::vector<ConfigIssue> issues);  ///< what() lists all of them
  [[nodiscard]] const std::vector<ConfigIssue>& issues() const noexcept { return issues_; }

 private:
  std::vector<ConfigIssue> issues_;
};

struct EngineConfig {
  // [engine]
  std::uint32_t partitions = 8;         ///< partition = hash(key) % partitions
  std::uint32_t max_producers = 16;     ///< producers that may exist at once
  std::size_t max_payload_bytes = 128;  ///< larger payloads get PublishStatus::too_large;
                                        ///< at most kMaxPayloadBytes (events travel inline)
  std::uint32_t max_topics = 1024;

  // [shards]
  std::uint32_t shards = 1;      ///< shard worker threads; each owns partitions % shards
  std::vector<int> shard_cores;  ///< empty: the planner chooses; else one core per shard
  bool exclusive_cores = false;  ///< true: no two pinned roles share a core

  // [graph]
  std::uint32_t graph_workers_per_shard = 0;  ///< extra TBB workers per shard arena (0 = run
                                              ///< the flow graph on the shard thread itself)
  std::vector<int> graph_cores;               ///< empty: planner chooses

  // [rings]
  std::size_t ring_capacity = 16384;  ///< slots per producer->shard ring; a power of two
  std::size_t batch_size = 256;       ///< max events a shard drains from one ring per pass
  WaitStrategyKind wait_strategy = WaitStrategyKind::spin_yield;
  std::uint32_t urgent_ratio = 8;  ///< urgent batches drained per normal batch at most

  // [backpressure]
  BackpressurePolicy backpressure = BackpressurePolicy::fail_fast;
  std::chrono::microseconds backpressure_timeout{1000};

  // [memory]
  NumaBinding numa = NumaBinding::automatic;
  AllocatorKind allocator = AllocatorKind::jemalloc;

  // [log]  (the per-partition in-memory event store)
  std::size_t segment_bytes = std::size_t{1} << 20;    ///< one log segment
  std::size_t retention_bytes = std::size_t{8} << 20;  ///< per partition; oldest segments reused
  std::chrono::milliseconds retention_age{0};          ///< 0 = no age limit

  // [idempotency]
  std::size_t idempotency_window = 16384;               ///< keys remembered per partition; 0 = off
  std::chrono::milliseconds idempotency_window_age{0};  ///< forget older keys; 0 = no age limit

  // [retry]
  std::size_t retry_capacity = 4096;  ///< retries a shard can hold scheduled at once; a
                                      ///< retry beyond it is dead-lettered (retry_overflow)

  // [wal]  (the write-ahead log: partition logs on disk, recovered at start(); off by default)
  WalMode wal_mode = WalMode::off;
  std::string wal_dir;  ///< required unless off; one engine per directory (a lock file)
  std::size_t wal_segment_bytes = std::size_t{64} << 20;  ///< preallocated per segment file
  std::chrono::milliseconds wal_interval{10};             ///< interval mode: fdatasync period
  std::string wal_key_file;  ///< AES-256-GCM at rest: a key file (32 bytes or 64 hex digits)
  std::string wal_key_env;   ///< ... or an environment variable holding 64 hex digits
  /// On-disk retention per partition: whole segment files are deleted, oldest first, once the
  /// partition's files exceed this many bytes (0 = keep everything; else >= 2 segments).
  std::uint64_t wal_retention_bytes = 0;
  /// ... and once a completed segment's last write is older than this (0 = no age limit).
  std::chrono::milliseconds wal_retention_age{0};

  // [watchdog]
  /// A handler or stage call that has not returned after this long is reported (a warn record
  /// through the log sink, repeated while it stays blocked; stats().handler_stalls). 0 = off.
  std::chrono::milliseconds handler_watchdog{2000};

  // [affinity]
  bool pin_threads = true;  ///< false: --affinity=off (reported, never silent)

  // [metrics]
  /// metrics.latency_sample_every: ingest -> done and per-stage latency: one batch is timed (a
  /// clock read per stage) per this many events, and recorded once per event of that batch;
  /// 1 = every batch, 0 = off (0..2^24). Counters are always on.
  std::uint32_t metrics_latency_sample_every = 64;

  std::string source = "<code>";  ///< where this config came from, for messages
  /// Dotted key (or section name) -> 1-based line in `source`, filled by the parser so that
  /// check_config() can name the line of a bad value. Empty for a config filled in code.
  std::map<std::string, int, std::less<>> key_lines;

  /// Line of `key` in `source`, or 0 when unknown (set in code, or left at its default).
  [[nodiscard]] int line_of(std::string_view key) const noexcept {
    const auto it = key_lines.find(key);
    return it == key_lines.end() ? 0 : it->second;
  }
};

/// Every key the parser accepts, dotted ("rings.capacity"), in file order. For docs and tools.
const std::vector<std::string_view>& known_config_keys();

/// The config as TOML, every key under its section, that parse_config() reads back to an equal
/// config (configs_equal()); `header` (comment lines starting with '#') goes first. Keys are
/// declared once (config.cpp's key table: name, read, write), so nothing can be left out.
///   std::string text = config_to_toml(cfg, "# tuned by ringflow-bench --tune ...\n");
[[nodiscard]] std::string config_to_toml(const EngineConfig& cfg, std::string_view header = {});
/// Every setting equal (source and key_lines, which say where a config came from, ignored).
[[nodiscard]] bool configs_equal(const EngineConfig& a, const EngineConfig& b);
/// One line per setting that differs, "rings.batch_size: 256 -> 64"; empty when equal.
[[nodiscard]] std::string config_diff(const EngineConfig& from, const EngineConfig& to);

/// Parses TOML text. Throws ConfigError listing every syntax/type/unknown-key problem.
EngineConfig parse_config(std::string_view toml_text, std::string_view source_name = "<string>");
/// Parses what it can without throwing: appends every parse problem to `issues` and returns the
/// config of the keys that parsed (defaults elsewhere), so a tool can also run check_config()
/// and report every problem of a file at once.
EngineConfig parse_config_partial(std::string_view toml_text, std::string_view source_name,
                                  std::vector<ConfigIssue>& issues);
/// The largest config file read_config_file() and load_config() accept: 1 MiB. A config is a
/// few kilobytes at most, so a larger file is a wrong path (a log, an image), refused before it
/// is read into memory.
inline constexpr std::size_t kMaxConfigFileBytes = std::size_t{1} << 20;

/// The text of a config file. Accepts regular files only (symbolic links to one included): a
/// directory, FIFO, socket or device is refused before it is opened for reading, so a FIFO
/// cannot block the caller and /dev/zero cannot exhaust memory; reads at most
/// kMaxConfigFileBytes. Throws ConfigError naming the file and the reason.
std::string read_config_file(const std::filesystem::path& file);
/// Reads (read_config_file()) and parses a file. Throws ConfigError for a missing, unreadable,
/// non-regular or too large file and for every parse problem.
EngineConfig load_config(const std::filesystem::path& file);

/// Every problem of `cfg` on `topo` (empty = valid). Never throws for a bad config.
std::vector<ConfigIssue> check_config(const EngineConfig& cfg, const Topology& topo);
/// Throws ConfigError with every problem if check_config() finds any.
void validate(const EngineConfig& cfg, const Topology& topo);

}  // namespace ringflow
