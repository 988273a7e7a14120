// Helpers for the write-ahead log tests: scratch directories, partition-log records, and
// FileOps layers that fail or lose data on purpose.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "ringflow/event.hpp"
#include "store/wal/wal.hpp"

namespace ringflow::wal::test {

namespace fs = std::filesystem;

/// A fresh directory under the system temp dir, removed at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (fs::temp_directory_path() / "ringflow-wal-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

/// A partition-log record (RecordHeader + key + payload, padded to 8) with contents derived
/// from the offset, so a test can rebuild the expected bytes of any offset.
inline std::vector<std::byte> make_record(std::uint64_t offset, std::uint32_t partition = 0,
                                          std::size_t payload_len = 0) {
  if (payload_len == 0) payload_len = 8 + (offset * 37) % 200;
  char key_buf[8];
  std::snprintf(key_buf, sizeof key_buf, "k%u", static_cast<unsigned>(offset % 97));
  const std::string key = key_buf;
  std::vector<std::byte> rec(detail::record_size(key.size(), payload_len));
  detail::RecordHeader h{};
  h.offset = offset;
  h.id = detail::make_event_id(offset, partition);
  h.publish_ns = static_cast<std::int64_t>(1'000'000 + offset);
  h.ingest_ns = static_cast<std::int64_t>(2'000'000 + offset);
  h.correlation_id = h.id;
  h.topic = 3;
  h.partition = partition;
  h.attempt = 1;
  h.payload_len = static_cast<std::uint16_t>(payload_len);
  h.key_len = static_cast<std::uint8_t>(key.size());
  std::memcpy(rec.data(), &h, sizeof h);
  std::memcpy(rec.data() + sizeof h, key.data(), key.size());
  for (std::size_t i = 0; i < payload_len; ++i) {
    rec[sizeof h + key.size() + i] = static_cast<std::byte>((offset * 131 + i * 7) & 0xFF);
  }
  return rec;
}

inline std::int64_t ingest_of(std::uint64_t offset) {
  return static_cast<std::int64_t>(5'000'000'000 + offset * 1000);
}

/// A record as recovery passed it on.
struct Got {
  std::uint64_t offset;
  std::int64_t ingest_ns;
  std::vector<std::byte> bytes;
};

inline PartitionReport recover(const fs::path& dir, std::uint32_t partition, const Options& opt,
                               bool repair, std::vector<Got>& out) {
  return recover_partition(dir, partition, opt, repair, [&](const RecoveredRecord& r) {
    out.push_back({r.offset, r.ingest_ns, {r.record.begin(), r.record.end()}});
  });
}

/// Checks that `got` is exactly the records [first, first + got.size()) as make_record built them.
inline ::testing::AssertionResult records_intact(const std::vector<Got>& got, std::uint64_t first,
                                                 std::uint32_t partition = 0) {
  for (std::size_t i = 0; i < got.size(); ++i) {
    const std::uint64_t want = first + i;
    if (got[i].offset != want) {
      return ::testing::AssertionFailure()
             << "record " << i << " has offset " << got[i].offset << ", expected " << want;
    }
    if (got[i].ingest_ns != ingest_of(want)) {
      return ::testing::AssertionFailure() << "offset " << want << ": wrong ingest_ns";
    }
    if (got[i].bytes != make_record(want, partition)) {
      return ::testing::AssertionFailure() << "offset " << want << ": record bytes differ";
    }
  }
  return ::testing::AssertionSuccess();
}

inline std::vector<char> read_file(const fs::path& p) {
  std::vector<char> bytes(fs::file_size(p));
  std::ifstream in(p, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

inline void write_file(const fs::path& p, const std::vector<char>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Passes every call to the real file system; subclasses fail or record on purpose.
class ForwardingOps : public FileOps {
 public:
  int open(const fs::path& p, int flags, int mode) override {
    return posix_file_ops().open(p, flags, mode);
  }
  long pwrite(int fd, const void* d, std::size_t n, std::uint64_t at) override {
    return posix_file_ops().pwrite(fd, d, n, at);
  }
  long pread(int fd, void* d, std::size_t n, std::uint64_t at) override {
    return posix_file_ops().pread(fd, d, n, at);
  }
  int fdatasync(int fd) override { return posix_file_ops().fdatasync(fd); }
  int fallocate(int fd, std::uint64_t bytes) override {
    return posix_file_ops().fallocate(fd, bytes);
  }
  int ftruncate(int fd, std::uint64_t bytes) override {
    return posix_file_ops().ftruncate(fd, bytes);
  }
  int close(int fd) override { return posix_file_ops().close(fd); }
  int unlink(const fs::path& p) override { return posix_file_ops().unlink(p); }
  int fsync_dir(const fs::path& d) override { return posix_file_ops().fsync_dir(d); }
};

/// Counts system calls (to check batching) and fails writes with ENOSPC after a byte budget:
/// the write that crosses it writes a part, then fails, like a full file system.
class CountingOps : public ForwardingOps {
 public:
  std::uint64_t pwrites = 0;
  std::uint64_t fdatasyncs = 0;
  std::uint64_t bytes = 0;
  std::uint64_t budget = UINT64_MAX;  ///< bytes pwrite may still write
  bool fail_fallocate = false;

  long pwrite(int fd, const void* d, std::size_t n, std::uint64_t at) override {
    ++pwrites;
    if (n > budget) {
      if (budget > 0) ForwardingOps::pwrite(fd, d, static_cast<std::size_t>(budget), at);
      bytes += budget;
      budget = 0;
      return -ENOSPC;
    }
    budget -= n;
    bytes += n;
    return ForwardingOps::pwrite(fd, d, n, at);
  }
  int fallocate(int fd, std::uint64_t b) override {
    if (fail_fallocate) return -ENOSPC;
    return ForwardingOps::fallocate(fd, b);
  }
  int fdatasync(int fd) override {
    ++fdatasyncs;
    return ForwardingOps::fdatasync(fd);
  }
};

/// Power-cut simulation: remembers, per file, how far its bytes were written and how far they
/// were fdatasync'ed, and which files the directory knows durably. cut() then rewrites the files
/// as a power cut could leave them: the synced bytes intact, a random prefix of the unsynced
/// rest (with random bit flips in it), zeros after that; a file whose directory was never
/// fsync'ed after its creation may vanish.
class PowerCutOps : public ForwardingOps {
 public:
  int open(const fs::path& p, int flags, int mode) override {
    const int fd = ForwardingOps::open(p, flags, mode);
    if (fd >= 0) {
      paths_[fd] = p;
      auto& f = files_[p.string()];
      if ((flags & O_CREAT) != 0 && !f.known) f.created_unsynced = true;
      f.known = true;
    }
    return fd;
  }
  long pwrite(int fd, const void* d, std::size_t n, std::uint64_t at) override {
    const long rc = ForwardingOps::pwrite(fd, d, n, at);
    if (rc > 0) {
      auto& f = files_[paths_[fd].string()];
      f.written = std::max<std::uint64_t>(f.written, at + static_cast<std::uint64_t>(rc));
      f.unsynced_from = std::min(f.unsynced_from, at);
    }
    return rc;
  }
  int fdatasync(int fd) override {
    const int rc = ForwardingOps::fdatasync(fd);
    if (rc == 0) {
      auto& f = files_[paths_[fd].string()];
      f.synced = std::max(f.synced, f.written);
      f.unsynced_from = UINT64_MAX;
    }
    return rc;
  }
  int fsync_dir(const fs::path& d) override {
    const int rc = ForwardingOps::fsync_dir(d);
    if (rc == 0) {
      for (auto& [path, f] : files_) {
        if (fs::path(path).parent_path() == d) f.created_unsynced = false;
      }
    }
    return rc;
  }
  int close(int fd) override {
    paths_.erase(fd);
    return ForwardingOps::close(fd);
  }

  /// Applies the power cut to the files on disk (call after the writer is gone).
  void cut(std::mt19937_64& rng) {
    for (auto& [path, f] : files_) {
      if (!fs::exists(path)) continue;
      if (f.created_unsynced && (rng() % 2) == 0) {
        fs::remove(path);
        continue;
      }
      std::vector<char> bytes = read_file(path);
      const std::uint64_t keep_from = std::min<std::uint64_t>(f.synced, f.unsynced_from);
      const std::uint64_t end = std::min<std::uint64_t>(f.written, bytes.size());
      if (end > keep_from) {
        const std::uint64_t torn = keep_from + rng() % (end - keep_from + 1);
        for (std::uint64_t i = torn; i < end; ++i)
          bytes[i] = 0;
        const std::uint64_t kept = torn - keep_from;
        if (kept > 0) {
          const int flips = static_cast<int>(rng() % 4);
          for (int k = 0; k < flips; ++k) {
            const std::uint64_t at = keep_from + rng() % kept;
            bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
          }
        }
      }
      write_file(path, bytes);
    }
    files_.clear();
    paths_.clear();
  }

 private:
  struct File {
    bool known = false;
    bool created_unsynced = false;
    std::uint64_t written = 0;
    std::uint64_t synced = 0;
    std::uint64_t unsynced_from = UINT64_MAX;  // lowest byte written since the last fdatasync
  };
  std::map<std::string, File> files_;
  std::map<int, fs::path> paths_;
};

}  // namespace ringflow::wal::test
