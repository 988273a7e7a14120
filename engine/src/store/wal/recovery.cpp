// Recovery: scan a partition's segments in order, verify every header, frame, CRC and GCM tag,
// pass on the valid records, and stop at the first invalid one; with repair, cut the log there.
#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <system_error>

#include "store/wal/format.hpp"
#include "store/wal/wal.hpp"

namespace ringflow::wal {

namespace {

namespace fs = std::filesystem;
using format::kFrameHeader;
using format::kHeaderBytes;

// Bytes per read: from kFirstChunk, doubling while reads come back full, up to kChunk (so a
// small or empty segment costs a small read, a large one big sequential reads).
constexpr std::size_t kFirstChunk = std::size_t{64} << 10;
constexpr std::size_t kChunk = std::size_t{4} << 20;

struct SegmentFile {
  fs::path path;
  std::uint64_t name_first = 0;
  int fd = -1;
  bool header_ok = false;
  format::SegmentHeader h;
  std::string why;  // header problem
};

/// Closes every fd on the way out, whatever happens.
struct FdGuard {
  FileOps* ops;
  std::vector<SegmentFile>& files;
  ~FdGuard() {
    for (auto& f : files) {
      if (f.fd >= 0) ops->close(f.fd);
    }
  }
};

/// A read window over one file: [pos, pos + len) of the file is in buf.
class Reader {
 public:
  Reader(FileOps& ops, std::vector<std::byte>& buf) : ops_(ops), buf_(buf) {}

  void reset(int fd, std::uint64_t pos) {
    fd_ = fd;
    pos_ = pos;
    cur_ = 0;
    len_ = 0;
    eof_ = false;
    chunk_ = kFirstChunk;
  }

  /// Makes at least n bytes from the cursor available, reading more if needed; returns how many
  /// are (fewer than n only at the end of the file). Throws WalError on a read error.
  std::size_t want(std::size_t n) {
    if (len_ - cur_ >= n || eof_) return len_ - cur_;
    // Keep the cursor's bytes, moved to the front (8-aligned file position stays 8-aligned).
    const std::size_t keep = len_ - cur_;
    if (keep > 0 && cur_ > 0) std::memmove(buf_.data(), buf_.data() + cur_, keep);
    pos_ += cur_;
    cur_ = 0;
    len_ = keep;
    const std::size_t need = std::max(n, chunk_);
    if (buf_.size() < need) buf_.resize(need);
    while (len_ < n && !eof_) {
      const std::size_t ask = std::min(buf_.size(), need) - len_;
      const long r = ops_.pread(fd_, buf_.data() + len_, ask, pos_ + len_);
      if (r < 0) {
        throw WalError(Errc::io_error,
                       "wal: read failed: " + format::errno_text(static_cast<int>(-r)));
      }
      if (static_cast<std::size_t>(r) < ask) {
        eof_ = true;
      } else if (chunk_ < kChunk) {
        chunk_ *= 2;
      }
      len_ += static_cast<std::size_t>(r);
    }
    return len_ - cur_;
  }

  [[nodiscard]] const std::byte* at() const noexcept { return buf_.data() + cur_; }
  [[nodiscard]] std::uint64_t file_pos() const noexcept { return pos_ + cur_; }
  void advance(std::size_t n) noexcept { cur_ += n; }

  /// Bytes from the cursor to the last non-zero byte of the file (what dropping the rest loses).
  std::uint64_t data_bytes_left() {
    const std::uint64_t from = file_pos();
    std::uint64_t last_nonzero_end = from;
    for (;;) {
      const std::size_t avail = want(1);
      if (avail == 0) break;
      const std::byte* p = at();
      for (std::size_t i = avail; i > 0; --i) {
        if (p[i - 1] != std::byte{0}) {
          last_nonzero_end = file_pos() + i;
          break;
        }
      }
      advance(avail);
    }
    return last_nonzero_end - from;
  }

 private:
  FileOps& ops_;
  std::vector<std::byte>& buf_;
  int fd_ = -1;
  std::uint64_t pos_ = 0;
  std::size_t cur_ = 0;
  std::size_t len_ = 0;
  std::size_t chunk_ = kFirstChunk;
  bool eof_ = false;
};

struct ScanResult {
  std::uint64_t end_pos = 0;  // file position after the last valid record
  std::uint64_t records = 0;
  std::uint64_t next_offset = 0;
  std::string problem;  // empty: the segment ended cleanly
};

ScanResult scan_segment(Reader& rd, const SegmentFile& f, format::Cipher* cipher,
                        std::vector<std::byte>& plain,
                        const std::function<void(const RecoveredRecord&)>* on_record) {
  ScanResult r;
  r.next_offset = f.h.first_offset;
  const bool encrypted = f.h.encrypted();
  const std::uint32_t salt = format::salt_crc(f.h.segment_id);
  rd.reset(f.fd, kHeaderBytes);
  for (;;) {
    r.end_pos = rd.file_pos();
    const std::size_t avail = rd.want(kFrameHeader);
    if (avail == 0) return r;  // end of file
    if (avail >= 8 && format::load<std::uint32_t>(rd.at() + format::kFLength) == 0) return r;
    if (avail < kFrameHeader) {
      bool zero = true;
      for (std::size_t i = 0; i < avail; ++i)
        zero = zero && rd.at()[i] == std::byte{0};
      if (!zero) r.problem = "torn frame header at the end of the file";
      return r;
    }
    const std::byte* p = rd.at();
    const auto length = format::load<std::uint32_t>(p + format::kFLength);
    if (length > format::kMaxBody || (encrypted && length <= format::kTagBytes)) {
      r.problem = "bad frame length " + std::to_string(length);
      return r;
    }
    const std::size_t frame = format::frame_bytes(length);
    if (rd.want(frame) < frame) {
      r.problem = "torn record (the file ends inside it)";
      return r;
    }
    p = rd.at();
    if (format::load<std::uint32_t>(p + format::kFCrc) != format::frame_crc(salt, p, length)) {
      r.problem = "CRC mismatch";
      return r;
    }
    const auto offset = format::load<std::uint64_t>(p + format::kFOffset);
    if (offset != r.next_offset) {
      r.problem =
          "offset " + std::to_string(offset) + ", expected " + std::to_string(r.next_offset);
      return r;
    }
    if (r.records >= std::numeric_limits<std::uint32_t>::max()) {
      r.problem = "too many records in one segment";
      return r;
    }
    const auto ingest = format::load<std::int64_t>(p + format::kFIngest);
    std::span<const std::byte> body{p + kFrameHeader, length};
    if (encrypted) {
      if (cipher == nullptr) {
        r.problem = "encrypted record, no key";
        return r;
      }
      const std::size_t n = length - format::kTagBytes;
      if (plain.size() < n) plain.resize(n);
      if (!cipher->open(f.h.segment_id, static_cast<std::uint32_t>(r.records), offset, ingest,
                        body.data(), length, plain.data())) {
        r.problem = "authentication failed (tampered, or another key)";
        return r;
      }
      body = {plain.data(), n};
    }
    if (on_record != nullptr && *on_record) (*on_record)(RecoveredRecord{offset, ingest, body});
    rd.advance(frame);
    ++r.records;
    ++r.next_offset;
  }
}

std::string hex64(std::uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::vector<std::uint32_t> partitions_in(const std::filesystem::path& dir) {
  std::vector<std::uint32_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() < 2 || name[0] != 'p' || !entry.is_directory(ec)) continue;
    std::uint64_t v = 0;
    bool ok = name.size() <= 11;
    for (std::size_t i = 1; ok && i < name.size(); ++i) {
      ok = name[i] >= '0' && name[i] <= '9';
      v = v * 10 + static_cast<std::uint64_t>(name[i] - '0');
    }
    if (ok && v <= std::numeric_limits<std::uint32_t>::max() &&
        format::partition_dir_name(static_cast<std::uint32_t>(v)) == name) {
      out.push_back(static_cast<std::uint32_t>(v));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

PartitionReport recover_partition(const std::filesystem::path& dir, std::uint32_t partition,
                                  const Options& options, bool repair,
                                  const std::function<void(const RecoveredRecord&)>& on_record) {
  PartitionReport report;
  report.partition = partition;
  FileOps& ops = options.ops != nullptr ? *options.ops : posix_file_ops();
  const fs::path pdir = dir / format::partition_dir_name(partition);

  std::vector<SegmentFile> files;
  std::error_code ec;
  if (!fs::is_directory(pdir, ec)) return report;
  for (const auto& entry : fs::directory_iterator(pdir, ec)) {
    std::uint64_t first = 0;
    if (format::parse_segment_file_name(entry.path().filename().string(), first)) {
      SegmentFile f;
      f.path = entry.path();
      f.name_first = first;
      files.push_back(std::move(f));
    }
  }
  if (ec) throw WalError(Errc::io_error, "wal: cannot list " + pdir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.name_first < b.name_first; });
  FdGuard guard{&ops, files};

  // Pass 1: every header, so a key problem stops recovery before any record is passed on.
  std::vector<std::byte> buf(kFirstChunk);
  for (auto& f : files) {
    f.fd = ops.open(f.path, repair ? O_RDWR : O_RDONLY, 0);
    if (f.fd < 0) {
      throw WalError(Errc::io_error,
                     "wal: cannot open " + f.path.string() + ": " + format::errno_text(-f.fd));
    }
    const long n = ops.pread(f.fd, buf.data(), kHeaderBytes, 0);
    if (n < 0) {
      throw WalError(Errc::io_error, "wal: cannot read " + f.path.string() + ": " +
                                         format::errno_text(static_cast<int>(-n)));
    }
    if (static_cast<std::size_t>(n) < kHeaderBytes) {
      f.why = "segment header incomplete (" + std::to_string(n) + " bytes)";
      continue;
    }
    if (!format::decode_header(buf.data(), f.h, f.why)) continue;
    if (f.h.partition != partition) {
      f.why = "segment of partition " + std::to_string(f.h.partition);
      continue;
    }
    if (f.h.first_offset != f.name_first) {
      f.why = "first offset " + std::to_string(f.h.first_offset) + " does not match the file name";
      continue;
    }
    f.header_ok = true;
    if (f.h.encrypted()) {
      if (options.key == nullptr) {
        throw WalError(Errc::wrong_key, "wal: " + f.path.string() + " is encrypted (key id " +
                                            hex64(f.h.key_id) + "): a key is needed");
      }
      if (options.key->id() != f.h.key_id) {
        throw WalError(Errc::wrong_key, "wal: " + f.path.string() + " was encrypted with key id " +
                                            hex64(f.h.key_id) + ", the key given has id " +
                                            hex64(options.key->id()));
      }
    }
  }

  // Pass 2: the records, in order.
  std::optional<format::Cipher> cipher;
  if (options.key != nullptr) cipher.emplace(*options.key);
  std::vector<std::byte> plain;
  Reader rd(ops, buf);
  std::optional<std::uint64_t> expected;  // the offset the next segment must start with
  std::optional<std::uint64_t> first_valid;
  bool stopped = false;
  bool removed_any = false;
  const char* verb = repair ? "truncated" : "invalid";

  auto remove_file = [&](SegmentFile& f) {
    if (!repair) return;
    ops.close(f.fd);
    f.fd = -1;
    if (const int rc = ops.unlink(f.path); rc < 0) {
      throw WalError(Errc::io_error,
                     "wal: cannot remove " + f.path.string() + ": " + format::errno_text(-rc));
    }
    removed_any = true;
  };

  for (std::size_t i = 0; i < files.size(); ++i) {
    auto& f = files[i];
    if (stopped) {
      // After the cut: count what is lost, then drop the whole file.
      std::uint64_t recs = 0;
      if (f.header_ok) {
        ScanResult lost = scan_segment(rd, f, cipher ? &*cipher : nullptr, plain, nullptr);
        recs = lost.records;
      }
      rd.reset(f.fd, 0);
      const std::uint64_t bytes = rd.data_bytes_left();
      report.notes.push_back(f.path.string() + ": " + (repair ? "removed" : "not replayed") +
                             " (after the cut), " + std::to_string(recs) + " records, " +
                             std::to_string(bytes) + " bytes dropped");
      remove_file(f);
      continue;
    }
    std::string problem;
    if (!f.header_ok) {
      problem = f.why;
    } else if (expected && f.h.first_offset != *expected) {
      problem = "segment starts at offset " + std::to_string(f.h.first_offset) + ", expected " +
                std::to_string(*expected);
    }
    if (!problem.empty()) {
      if (!expected) expected = f.name_first;  // best knowledge of where the log ends
      rd.reset(f.fd, 0);
      const std::uint64_t bytes = rd.data_bytes_left();
      report.notes.push_back(f.path.string() + ": " + verb + " at byte 0 (" + problem + "), " +
                             std::to_string(bytes) + " bytes dropped");
      report.truncated = true;
      stopped = true;
      remove_file(f);
      continue;
    }

    ScanResult r = scan_segment(rd, f, cipher ? &*cipher : nullptr, plain, &on_record);
    report.bytes_scanned += r.end_pos;
    report.records += r.records;
    expected = r.next_offset;
    if (r.records > 0 && !first_valid) first_valid = f.h.first_offset;
    if (r.problem.empty()) {
      if (r.records == 0 && i + 1 == files.size() && repair) {
        // An empty newest segment (created, nothing written): the writer re-creates its name.
        remove_file(f);
      } else {
        ++report.segments;
      }
      continue;
    }
    // The first invalid record: everything from here on is dropped.
    stopped = true;
    report.truncated = true;
    rd.reset(f.fd, r.end_pos);
    const std::uint64_t bytes = rd.data_bytes_left();
    report.notes.push_back(f.path.string() + ": " + verb + " at byte " + std::to_string(r.end_pos) +
                           " (" + r.problem + "), " + std::to_string(bytes) + " bytes dropped");
    if (r.records == 0) {
      remove_file(f);
      continue;
    }
    ++report.segments;
    if (repair) {
      int rc = ops.ftruncate(f.fd, r.end_pos);
      if (rc == 0) rc = ops.fdatasync(f.fd);
      if (rc < 0) {
        throw WalError(Errc::io_error,
                       "wal: cannot truncate " + f.path.string() + ": " + format::errno_text(-rc));
      }
    }
  }
  if (removed_any) {
    if (const int rc = ops.fsync_dir(pdir); rc < 0) {
      throw WalError(Errc::io_error,
                     "wal: fsync of " + pdir.string() + " failed: " + format::errno_text(-rc));
    }
  }
  report.end_offset = expected.value_or(0);
  report.first_offset = first_valid.value_or(report.end_offset);
  return report;
}

}  // namespace ringflow::wal
