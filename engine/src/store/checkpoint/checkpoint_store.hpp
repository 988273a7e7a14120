// Durable subscription positions (checkpoints): where each durable subscription resumes after a
// restart. Internal.
//
// Roles:
//   - The shard thread that owns partition p is the only writer of every durable
//     subscription's position for p (SubscriptionPositions::at(d, p)): a release store after the
//     events below it are finished for that subscription (handler ok or dead-lettered).
//   - The checkpoint thread (CheckpointWriter) acquires the positions every ~100 ms, clamps
//     each to the partition's durable offset (a checkpoint never points past what the
//     write-ahead log holds) and, when something changed, rewrites the subscription's file.
//   - stop() writes every file once more after the shards have left (nothing in flight).
//
// Files: <wal.dir>/checkpoints/<durable name>.ckpt, replaced atomically (temp file, fdatasync,
// rename, fsync of the directory). Layout (host byte order, little-endian like the WAL):
//   u64 magic "RFCKPT01" | u32 version (1) | u32 partitions | u64 position[partitions] |
//   u32 CRC32C of everything before it.
// A file that is short, torn, of another version or partition count, or fails its CRC is
// reported through the log sink and treated as absent (the subscription starts at the end).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "logger.hpp"
#include "ringflow/detail/cache.hpp"
#include "ringflow/log.hpp"

namespace ringflow::detail {

/// Reads and writes checkpoint files. Cold path only (file I/O); any thread.
class CheckpointStore {
 public:
  /// Creates <wal_dir>/checkpoints if needed; throws std::runtime_error naming it otherwise.
  CheckpointStore(const std::filesystem::path& wal_dir, const LogSink* sink);

  /// The positions by partition, or nullopt when the file is absent, or unreadable (logged, a
  /// warn record naming the file and why).
  [[nodiscard]] std::optional<std::vector<std::uint64_t>> load(const std::string& name,
                                                               std::uint32_t partitions) const;
  /// Replaces the file atomically. False (and an error record, rate limited) when it could not
  /// be written. One caller at a time (the checkpoint thread, or start()/stop() around it).
  bool save(const std::string& name, std::span<const std::uint64_t> positions) const;

  [[nodiscard]] std::filesystem::path file_of(const std::string& name) const {
    return dir_ / (name + ".ckpt");
  }
  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }

  /// A durable name: 1..64 characters of [A-Za-z0-9_.-]. Empty string if valid, else why.
  [[nodiscard]] static std::string check_name(const std::string& name);

 private:
  std::filesystem::path dir_;
  const LogSink* sink_;
  /// A failing disk is retried every period: a few records per second, not one per try.
  mutable LogRateLimit error_limit_;
};

/// The positions of the durable subscriptions, one padded atomic per (subscription,
/// partition): partitions of different shards never share a cache line.
class SubscriptionPositions {
 public:
  SubscriptionPositions(std::size_t subscriptions, std::uint32_t partitions)
      : partitions_(partitions), slots_(std::make_unique<Slot[]>(subscriptions * partitions)) {}

  [[nodiscard]] std::atomic<std::uint64_t>& at(std::size_t durable, std::uint32_t p) noexcept {
    return slots_[durable * partitions_ + p].v;
  }
  [[nodiscard]] const std::atomic<std::uint64_t>& at(std::size_t durable,
                                                     std::uint32_t p) const noexcept {
    return slots_[durable * partitions_ + p].v;
  }
  [[nodiscard]] std::uint32_t partitions() const noexcept { return partitions_; }

 private:
  struct alignas(kCacheLine) Slot {
    std::atomic<std::uint64_t> v{0};
  };
  static_assert(sizeof(Slot) == kCacheLine, "one position per cache line (no false sharing)");
  std::uint32_t partitions_;
  std::unique_ptr<Slot[]> slots_;
};

/// Persists SubscriptionPositions periodically (its own thread) and at stop.
class CheckpointWriter {
 public:
  /// `durable_offset(p)`: the write-ahead log's durable offset of partition p (any thread).
  CheckpointWriter(const CheckpointStore& store, std::vector<std::string> names,
                   const SubscriptionPositions& positions,
                   std::function<std::uint64_t(std::uint32_t)> durable_offset,
                   std::chrono::milliseconds period = std::chrono::milliseconds(100));
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  void start();
  /// Stops the thread, then writes every changed file once more (call after the shards left).
  void stop_and_flush();

 private:
  void run();
  void write_changed();

  const CheckpointStore& store_;
  std::vector<std::string> names_;
  const SubscriptionPositions& positions_;
  std::function<std::uint64_t(std::uint32_t)> durable_offset_;
  std::chrono::milliseconds period_;
  std::vector<std::vector<std::uint64_t>> written_;  ///< by subscription: what the file holds
  std::vector<bool> ever_written_;
  std::thread thread_;
  std::mutex mu_;  ///< guards exit_ for the condition variable (checkpoint thread, stop only)
  std::condition_variable cv_;
  bool exit_ = false;
};

}  // namespace ringflow::detail
