// The engine's write-ahead log: recovery at start(), one writer thread per shard that follows
// its partitions' logs (never the publish path), durable floors that keep retention from
// evicting what is not written yet, and the durable counters producers wait on.
//
// Data path: shard appends to PartitionLog (memory) ──► writer thread reads new records
// (PartitionReader::next_raw) ──► wal::PartitionWriter (segment files) ──► write()/fdatasync per
// wal.mode ──► DurableFloor::offset (retention may evict below it) and RingPair::durable
// (Producer::is_durable()).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ringflow/config.hpp"
#include "ringflow/detail/producer_state.hpp"
#include "ringflow/log.hpp"
#include "ringflow/partition_log.hpp"
#include "store/wal/wal.hpp"

namespace ringflow::detail {

/// An idempotency key found by recovery, to seed the partition's window again.
struct RecoveredKey {
  std::uint64_t key = 0;
  std::int64_t ingest_ns = 0;
};

/// What start() recovered (also logged).
struct RecoverySummary {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t truncations = 0;  ///< torn or corrupt tails cut off
  double seconds = 0;
};

/// Tests only: file operations the next engines' write-ahead logs use instead of the real ones
/// (disk full, I/O errors; null = the real ones). Set before start().
void set_wal_file_ops_for_testing(wal::FileOps* ops) noexcept;

class Durability {
 public:
  /// Opens (creating) cfg.wal_dir, takes its lock file and loads the key. Throws
  /// std::runtime_error naming the directory (in use by another engine, not creatable) or
  /// wal::WalError (a bad key).
  Durability(const EngineConfig& cfg, const LogSink* sink);
  ~Durability();
  Durability(const Durability&) = delete;
  Durability& operator=(const Durability&) = delete;

  /// Before the shards start: rebuilds every partition log from its segments (topic ids
  /// remapped by name through the directory's manifest), fills `keys` (by partition) with the
  /// idempotency keys to remember, writes the new manifest and opens the writers. Throws
  /// std::runtime_error for a directory written with another partition count or holding
  /// events of a topic that is not registered now.
  RecoverySummary recover(std::vector<std::unique_ptr<PartitionLog>>& logs,
                          const std::deque<std::string>& topic_names,
                          std::vector<std::vector<RecoveredKey>>& keys);

  /// Starts one writer per shard (partitions p with p % shards == shard).
  void start(std::unique_ptr<ProducerState>* producers,
             const std::atomic<std::uint32_t>* producer_count);
  /// The engine is stopping: from now on a writer that cannot write releases its floors, so
  /// the shards can finish (those events are processed but never acknowledged durable).
  void begin_stop() noexcept;
  /// After the shards have left: writes and syncs what is left, then the writers leave, then
  /// the directory's lock is released (stop_writers(), then release_lock()).
  void stop();
  /// The first half of stop(): the durable offsets are final once it returns.
  void stop_writers();
  /// The second half: another engine may take the directory.
  void release_lock() noexcept;

  [[nodiscard]] const DurableFloor* floor(std::uint32_t partition) const noexcept {
    return &parts_[partition]->floor;
  }
  /// Offsets below this are durable as wal.mode promises (acquire).
  [[nodiscard]] std::uint64_t durable_offset(std::uint32_t partition) const noexcept {
    return parts_[partition]->durable.load(std::memory_order_acquire);
  }
  /// True while a writer cannot write (disk full, I/O error); it retries.
  [[nodiscard]] bool failing() const noexcept { return failing_.load(std::memory_order_acquire); }
  /// True once a stop() ended with events that could not be written.
  [[nodiscard]] bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }
  [[nodiscard]] std::uint64_t bytes_written() const noexcept {
    return bytes_written_.load(std::memory_order_relaxed);  // statistic
  }
  [[nodiscard]] std::uint64_t syncs() const noexcept {
    return syncs_.load(std::memory_order_relaxed);  // statistic
  }
  /// Segment files deleted by wal.retention_bytes / wal.retention_age_ms.
  [[nodiscard]] std::uint64_t segments_deleted() const noexcept {
    return segments_deleted_.load(std::memory_order_relaxed);  // statistic
  }

 private:
  struct Part {
    explicit Part(const PartitionLog& l) : log(&l), reader(l) {}
    DurableFloor floor;  ///< offset = written to the files (retention may evict below it)
    alignas(kCacheLine) std::atomic<std::uint64_t> durable{0};  ///< acknowledged durable
    std::unique_ptr<wal::PartitionWriter> writer;
    const PartitionLog* log;
    PartitionReader reader;
    bool broken = false;  ///< records were evicted unwritten (stopping with a failed log)
  };

  void run(std::uint32_t shard);
  /// One round: write what is new; returns true if anything was written. `err` gets the first
  /// error; `caught_up` whether every partition reached the end it saw (else another round
  /// follows at once).
  bool write_round(std::uint32_t shard, wal::Errc& err, bool& caught_up, std::byte* buf);
  wal::Errc sync_shard(std::uint32_t shard);
  void publish_written(std::uint32_t shard, bool durable_too);
  void publish_synced(std::uint32_t shard);
  void publish_rings(std::uint32_t shard, const std::vector<std::uint64_t>& snap);
  void snapshot_rings(std::uint32_t shard, std::vector<std::uint64_t>& snap) const;
  void log(LogLevel level, const std::string& message) const;
  void write_manifest(const std::deque<std::string>& topic_names) const;
  /// On-disk retention for the shard's partitions (completed segments only).
  void retain(std::uint32_t shard);

  const EngineConfig& cfg_;
  const LogSink* sink_;
  std::filesystem::path dir_;
  int lock_fd_ = -1;
  std::unique_ptr<wal::Key> key_;
  wal::Options options_;
  std::vector<std::unique_ptr<Part>> parts_;
  std::unique_ptr<ProducerState>* producers_ = nullptr;
  const std::atomic<std::uint32_t>* producer_count_ = nullptr;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};  ///< begin_stop(): release floors on failure
  std::atomic<bool> exit_{false};      ///< stop(): final round, then leave
  std::atomic<bool> failing_{false};
  std::atomic<bool> failed_{false};
  std::atomic<std::uint64_t> bytes_written_{0};
  std::atomic<std::uint64_t> syncs_{0};
  std::atomic<std::uint64_t> segments_deleted_{0};
};

}  // namespace ringflow::detail
