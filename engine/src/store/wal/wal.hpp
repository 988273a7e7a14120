// The write-ahead log's file layer: segment files per partition, record framing with CRC32C,
// optional AES-256-GCM, and recovery. The format is documented in docs/wal-format.md.
//
// Used by the engine's WAL writer thread (one per shard, off the publish path) and by the
// `ringflow-wal` tool. Nothing here runs on the hot path; every call may make system calls.
//
// Files: <dir>/p<partition, 5 digits>/<first offset, 20 digits>.seg, preallocated to
// segment_bytes. Each segment starts with a header carrying a random 64-bit segment id; every
// record's CRC covers that id, so records of a recycled or stale file never validate.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringflow::wal {

/// CRC32C (Castagnoli; RFC 3720) over `n` bytes, continuing from `crc` (0 to start).
[[nodiscard]] std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept;

enum class Errc : std::uint8_t {
  ok,
  io_error,    ///< a read/write/sync failed (errno in the message)
  disk_full,   ///< ENOSPC / EDQUOT: nothing past the last good write is claimed durable
  corrupt,     ///< a CRC or frame check failed
  wrong_key,   ///< encrypted with another key, or authentication failed (tampered)
  bad_format,  ///< not a ringflow segment, or an unknown version
};
[[nodiscard]] const char* to_string(Errc e) noexcept;

/// A cold-path failure: what, which file, where.
class WalError : public std::runtime_error {
 public:
  WalError(Errc code, const std::string& what) : std::runtime_error(what), code_(code) {}
  [[nodiscard]] Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

/// An AES-256-GCM key for encryption at rest.
class Key {
 public:
  /// From a file holding 32 raw bytes or 64 hex digits (whitespace trimmed). Throws WalError.
  static Key from_file(const std::filesystem::path& path);
  /// From an environment variable holding 64 hex digits. Throws WalError if unset or bad.
  static Key from_env(const char* variable);
  /// From 32 raw bytes.
  static Key from_bytes(std::span<const std::byte, 32> bytes);
  /// Key id stored in segment headers: the first 8 bytes of SHA-256 of the key.
  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  [[nodiscard]] std::span<const std::byte, 32> bytes() const noexcept { return bytes_; }

 private:
  std::array<std::byte, 32> bytes_{};
  std::uint64_t id_ = 0;
};

/// File operations the writer and recovery use; tests replace them (power-cut simulation,
/// disk full, I/O errors). Every call returns 0 or -errno.
class FileOps {
 public:
  virtual ~FileOps() = default;
  virtual int open(const std::filesystem::path& path, int flags, int mode) = 0;  ///< fd or -errno
  virtual long pwrite(int fd, const void* data, std::size_t n, std::uint64_t at) = 0;
  virtual long pread(int fd, void* data, std::size_t n, std::uint64_t at) = 0;
  virtual int fdatasync(int fd) = 0;
  virtual int fallocate(int fd, std::uint64_t bytes) = 0;
  virtual int ftruncate(int fd, std::uint64_t bytes) = 0;
  virtual int close(int fd) = 0;
  virtual int unlink(const std::filesystem::path& path) = 0;
  virtual int fsync_dir(const std::filesystem::path& dir) = 0;  ///< after creating/removing files
  /// Starts writeback of a written range without waiting for it (sync_file_range with
  /// SYNC_FILE_RANGE_WRITE): dirty pages leave the page cache steadily instead of piling up
  /// until the kernel throttles the writer. A hint: durability still comes from fdatasync.
  virtual int start_writeback(int /*fd*/, std::uint64_t /*at*/, std::uint64_t /*n*/) { return 0; }
};
/// The real thing (POSIX calls, EINTR retried, short writes completed).
[[nodiscard]] FileOps& posix_file_ops();

struct Options {
  std::size_t segment_bytes = std::size_t{64} << 20;  ///< preallocated per segment file
  const Key* key = nullptr;                           ///< non-null: AES-256-GCM per record
  FileOps* ops = nullptr;                             ///< null: posix_file_ops()
  /// After each write, start writeback of what was written (FileOps::start_writeback).
  bool start_writeback = false;
};

/// Appends one partition's records to its segment files. One thread only.
class PartitionWriter {
 public:
  /// Creates <dir>/p<partition> if needed; the next record written must have `next_offset`
  /// (the partition's end after recovery). Throws WalError.
  PartitionWriter(const std::filesystem::path& dir, std::uint32_t partition,
                  std::uint64_t next_offset, Options options);
  ~PartitionWriter();
  PartitionWriter(const PartitionWriter&) = delete;
  PartitionWriter& operator=(const PartitionWriter&) = delete;

  /// Frames one record (a partition-log record: RecordHeader + key + payload [+ dead-letter
  /// info]) into the write buffer; rolls to a new segment when the current one is full.
  /// Offsets must be consecutive (else std::invalid_argument; also for an empty record). Does
  /// not write yet, unless over 16 MiB are buffered: then it calls write() first and, if that
  /// fails, returns its error without adding the record.
  Errc add(std::uint64_t offset, std::int64_t ingest_ns, std::span<const std::byte> record);
  /// Writes everything added to the files (the page cache): survives a process crash.
  Errc write();
  /// fdatasync of every file written since the last sync: survives a power cut. A failed
  /// fdatasync is sticky (every later sync() fails): start a new writer after recovery.
  Errc sync();

  [[nodiscard]] std::uint64_t added_end() const noexcept;    ///< offset after the last add()
  [[nodiscard]] std::uint64_t written_end() const noexcept;  ///< after the last good write()
  [[nodiscard]] std::uint64_t synced_end() const noexcept;   ///< after the last good sync()
  [[nodiscard]] std::uint64_t bytes_written() const noexcept;

  /// Deletes whole segment files all of whose records lie below `offset` (retention).
  void delete_segments_below(std::uint64_t offset);

  struct Retention {
    std::uint64_t segments = 0;      ///< segment files deleted
    std::uint64_t bytes = 0;         ///< their size on disk
    std::uint64_t first_offset = 0;  ///< the oldest offset still on disk afterwards
  };
  /// Retention on disk: deletes completed segment files, oldest first, while the partition's
  /// files (the ones being written included) exceed `max_bytes` (0 = no size limit) or the
  /// oldest one's last write is more than `max_age_ns` before `now_realtime_ns` (0 = no age
  /// limit). The segments still being written are never deleted; a completed segment is one
  /// that was written, synced and closed. Age comes from the file's modification time for
  /// segments found at start, from this writer's last write to it otherwise.
  Retention apply_retention(std::uint64_t max_bytes, std::int64_t max_age_ns,
                            std::int64_t now_realtime_ns);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

/// One valid record found by recovery or a reader.
struct RecoveredRecord {
  std::uint64_t offset = 0;
  std::int64_t ingest_ns = 0;
  std::span<const std::byte> record;  ///< valid during the callback only (decrypted)
};

/// What recovery found and did in one partition.
struct PartitionReport {
  std::uint32_t partition = 0;
  std::uint64_t segments = 0;
  std::uint64_t records = 0;
  std::uint64_t first_offset = 0;
  std::uint64_t end_offset = 0;  ///< next offset to write
  std::uint64_t bytes_scanned = 0;
  /// One line per problem: "<file>: truncated at byte <n> (<reason>), <k> bytes dropped".
  std::vector<std::string> notes;
  bool truncated = false;
};

/// Scans <dir>/p<partition>, verifies every record's CRC (and tag), calls `on_record` for each
/// valid record in offset order, and truncates a torn or corrupt tail at the last valid record
/// (repair = true; false: report only, for `ringflow-wal verify`). A bad key or a segment
/// written with another key throws WalError(wrong_key) before any record is passed on.
PartitionReport recover_partition(const std::filesystem::path& dir, std::uint32_t partition,
                                  const Options& options, bool repair,
                                  const std::function<void(const RecoveredRecord&)>& on_record);

/// The partitions present under `dir` (p<N> folders), ascending.
[[nodiscard]] std::vector<std::uint32_t> partitions_in(const std::filesystem::path& dir);

}  // namespace ringflow::wal
