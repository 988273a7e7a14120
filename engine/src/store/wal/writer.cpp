// PartitionWriter: frames records into a per-segment buffer (add), writes each segment's buffered
// bytes with one pwrite per write() call (write), and fdatasyncs what was written (sync).
//
// A writer never appends to a segment it did not create: it always starts a fresh file with a
// fresh random segment id. So after recovery truncates a torn tail, no (segment id, record index)
// pair, and therefore no GCM nonce, is ever used for a second plaintext.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <deque>
#include <limits>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "store/wal/format.hpp"
#include "store/wal/wal.hpp"

namespace ringflow::wal {

namespace {

namespace fs = std::filesystem;
using format::kFrameHeader;
using format::kHeaderBytes;

/// Bytes add() may buffer before it writes by itself (bounds the writer's memory).
constexpr std::size_t kMaxBuffered = std::size_t{16} << 20;

Errc errc_of(long rc) noexcept {
  return (rc == -ENOSPC || rc == -EDQUOT) ? Errc::disk_full : Errc::io_error;
}

std::int64_t realtime_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct PartitionWriter::State {
  struct Segment {
    fs::path path;
    std::uint64_t id = 0;
    std::uint64_t first_offset = 0;
    std::uint64_t size = 0;          // preallocated bytes
    std::uint64_t end_pos = 0;       // file position after the last added frame
    std::uint64_t file_pos = 0;      // bytes of the file written so far (buf starts here)
    std::uint64_t buf_end = 0;       // offset after the last record in buf
    std::int64_t last_write_ns = 0;  // realtime of the last pwrite (retention by age)
    std::uint32_t salt = 0;          // CRC32C of the segment id
    std::uint32_t records = 0;       // records added: the next record's nonce index
    int fd = -1;
    bool allocated = false;
    bool dirty = false;  // written, not yet fdatasync'ed
    std::vector<std::byte> buf;
  };

  fs::path dir;
  std::uint32_t partition = 0;
  Options opt;
  FileOps* ops = nullptr;
  std::optional<format::Cipher> cipher;
  std::deque<Segment> open;  // oldest first; back() receives add()
  struct Closed {
    std::uint64_t first_offset;
    fs::path path;
    std::uint64_t size = 0;          // bytes on disk
    std::int64_t last_write_ns = 0;  // realtime of its last write (retention by age)
  };
  std::deque<Closed> closed;  // segments on disk not held open, by first offset
  std::uint64_t added_end = 0;
  std::uint64_t written_end = 0;
  std::uint64_t synced_end = 0;
  std::uint64_t bytes_written = 0;
  std::size_t buffered = 0;
  bool dir_dirty = false;        // a file was created: fsync the directory at the next sync
  int sync_error = 0;            // sticky: after a failed fdatasync nothing more is durable
  std::vector<std::byte> spare;  // a drained buffer kept for the next segment

  void start_segment(std::uint64_t first_offset, std::size_t frame) {
    Segment s;
    s.first_offset = first_offset;
    s.path = dir / format::segment_file_name(first_offset);
    s.id = format::random_u64();
    s.salt = format::salt_crc(s.id);
    s.size = std::max<std::uint64_t>(opt.segment_bytes, kHeaderBytes + frame);
    s.buf = std::move(spare);
    spare.clear();
    s.buf.resize(kHeaderBytes);
    format::SegmentHeader h;
    h.partition = partition;
    h.flags = cipher ? format::kFlagEncrypted : 0;
    h.segment_id = s.id;
    h.first_offset = first_offset;
    h.created_ns = realtime_ns();
    h.key_id = opt.key != nullptr ? opt.key->id() : 0;
    format::encode_header(h, s.buf.data());
    s.end_pos = kHeaderBytes;
    s.buf_end = first_offset;
    buffered += kHeaderBytes;
    open.push_back(std::move(s));
  }

  Errc write_segment(Segment& s) {
    if (s.fd < 0) {
      const int fd = ops->open(s.path, O_RDWR | O_CREAT | O_EXCL, 0644);
      if (fd < 0) return errc_of(fd);
      s.fd = fd;
      dir_dirty = true;
    }
    if (!s.allocated) {
      const int rc = ops->fallocate(s.fd, s.size);
      if (rc < 0) return errc_of(rc);
      s.allocated = true;
    }
    if (s.buf.empty()) return Errc::ok;
    const long rc = ops->pwrite(s.fd, s.buf.data(), s.buf.size(), s.file_pos);
    if (rc < 0) return errc_of(rc);
    if (static_cast<std::size_t>(rc) != s.buf.size()) return Errc::io_error;
    // A hint: an error here costs nothing but the early writeback (fdatasync still decides).
    if (opt.start_writeback) (void)ops->start_writeback(s.fd, s.file_pos, s.buf.size());
    s.file_pos += s.buf.size();
    s.last_write_ns = realtime_ns();
    bytes_written += s.buf.size();
    buffered -= s.buf.size();
    s.buf.clear();
    s.dirty = true;
    written_end = s.buf_end;
    return Errc::ok;
  }

  void close_segment(Segment& s) {
    if (s.fd >= 0) ops->close(s.fd);
    s.fd = -1;
    closed.push_back({s.first_offset, s.path, s.size, s.last_write_ns});
    if (spare.capacity() < s.buf.capacity()) {
      s.buf.clear();
      spare = std::move(s.buf);
    }
  }
};

PartitionWriter::PartitionWriter(const std::filesystem::path& dir, std::uint32_t partition,
                                 std::uint64_t next_offset, Options options)
    : s_(std::make_unique<State>()) {
  auto& s = *s_;
  s.dir = dir / format::partition_dir_name(partition);
  s.partition = partition;
  s.opt = options;
  s.ops = options.ops != nullptr ? options.ops : &posix_file_ops();
  if (s.opt.segment_bytes < kHeaderBytes + 4096) s.opt.segment_bytes = kHeaderBytes + 4096;
  if (options.key != nullptr) s.cipher.emplace(*options.key);
  s.added_end = s.written_end = s.synced_end = next_offset;

  std::error_code ec;
  const bool existed = fs::is_directory(s.dir, ec);
  if (!existed) {
    fs::create_directories(s.dir, ec);
    if (ec) {
      throw WalError(Errc::io_error, "wal: cannot create " + s.dir.string() + ": " + ec.message());
    }
    if (const int rc = s.ops->fsync_dir(dir); rc < 0) {
      throw WalError(errc_of(rc),
                     "wal: fsync of " + dir.string() + " failed: " + format::errno_text(-rc));
    }
  }
  // The segments already there (left by recovery), for retention.
  std::vector<State::Closed> found;
  for (const auto& entry : fs::directory_iterator(s.dir, ec)) {
    std::uint64_t first = 0;
    if (!format::parse_segment_file_name(entry.path().filename().string(), first)) continue;
    if (first >= next_offset) {
      throw WalError(Errc::bad_format, "wal: " + entry.path().string() + " holds offsets from " +
                                           std::to_string(first) + ", at or past the next offset " +
                                           std::to_string(next_offset) +
                                           " (recover the partition first)");
    }
    State::Closed c{first, entry.path()};
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) == 0) {
      c.size = static_cast<std::uint64_t>(st.st_size);
      c.last_write_ns = std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
    }
    found.push_back(std::move(c));
  }
  if (ec) {
    throw WalError(Errc::io_error, "wal: cannot list " + s.dir.string() + ": " + ec.message());
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first_offset < b.first_offset; });
  s.closed.assign(found.begin(), found.end());
}

PartitionWriter::~PartitionWriter() {
  for (auto& seg : s_->open) {
    if (seg.fd >= 0) s_->ops->close(seg.fd);
  }
}

Errc PartitionWriter::add(std::uint64_t offset, std::int64_t ingest_ns,
                          std::span<const std::byte> record) {
  auto& s = *s_;
  if (offset != s.added_end) {
    throw std::invalid_argument("wal: record offset " + std::to_string(offset) +
                                " added, expected " + std::to_string(s.added_end));
  }
  const std::size_t body = record.size() + (s.cipher ? format::kTagBytes : 0);
  if (record.empty() || body > format::kMaxBody) {
    throw std::invalid_argument("wal: record of " + std::to_string(record.size()) +
                                " bytes: must be 1.." + std::to_string(format::kMaxBody - 16));
  }
  const std::size_t frame = format::frame_bytes(body);
  if (s.buffered + frame > kMaxBuffered) {
    if (const Errc e = write(); e != Errc::ok) return e;
  }
  if (s.open.empty() || s.open.back().end_pos + frame > s.open.back().size ||
      s.open.back().records == std::numeric_limits<std::uint32_t>::max()) {
    s.start_segment(offset, frame);
  }
  auto& seg = s.open.back();
  const std::size_t at = seg.buf.size();
  seg.buf.resize(at + frame);
  std::byte* f = seg.buf.data() + at;
  const auto length = static_cast<std::uint32_t>(body);
  format::store<std::uint32_t>(f + format::kFLength, length);
  format::store<std::uint64_t>(f + format::kFOffset, offset);
  format::store<std::int64_t>(f + format::kFIngest, ingest_ns);
  if (s.cipher) {
    s.cipher->seal(seg.id, seg.records, offset, ingest_ns, length, record.data(), record.size(),
                   f + kFrameHeader);
  } else {
    std::memcpy(f + kFrameHeader, record.data(), record.size());
  }
  std::memset(f + kFrameHeader + body, 0, frame - kFrameHeader - body);
  format::store<std::uint32_t>(f + format::kFCrc, format::frame_crc(seg.salt, f, length));
  seg.end_pos += frame;
  seg.buf_end = offset + 1;
  ++seg.records;
  s.buffered += frame;
  s.added_end = offset + 1;
  return Errc::ok;
}

Errc PartitionWriter::write() {
  auto& s = *s_;
  for (auto& seg : s.open) {
    if (const Errc e = s.write_segment(seg); e != Errc::ok) return e;
  }
  return Errc::ok;
}

Errc PartitionWriter::sync() {
  auto& s = *s_;
  if (s.sync_error != 0) return Errc::io_error;
  const std::uint64_t target = s.written_end;
  for (auto& seg : s.open) {
    if (!seg.dirty) continue;
    if (const int rc = s.ops->fdatasync(seg.fd); rc < 0) {
      // After a failed fdatasync the kernel may have dropped the dirty pages: a retry could
      // succeed without the data on disk. So nothing written from here on is claimed durable.
      s.sync_error = -rc;
      return errc_of(rc);
    }
    seg.dirty = false;
  }
  if (s.dir_dirty) {
    if (const int rc = s.ops->fsync_dir(s.dir); rc < 0) return errc_of(rc);
    s.dir_dirty = false;
  }
  s.synced_end = target;
  // Segments behind the current one are complete once written and synced: close them.
  while (s.open.size() > 1 && s.open.front().buf.empty() && !s.open.front().dirty &&
         s.open.front().fd >= 0) {
    s.close_segment(s.open.front());
    s.open.pop_front();
  }
  return Errc::ok;
}

std::uint64_t PartitionWriter::added_end() const noexcept {
  return s_->added_end;
}
std::uint64_t PartitionWriter::written_end() const noexcept {
  return s_->written_end;
}
std::uint64_t PartitionWriter::synced_end() const noexcept {
  return s_->synced_end;
}
std::uint64_t PartitionWriter::bytes_written() const noexcept {
  return s_->bytes_written;
}

void PartitionWriter::delete_segments_below(std::uint64_t offset) {
  auto& s = *s_;
  bool removed = false;
  // A closed segment's records end where the next segment (closed or open) begins.
  while (!s.closed.empty()) {
    std::uint64_t next_first = 0;
    if (s.closed.size() > 1) {
      next_first = s.closed[1].first_offset;
    } else if (!s.open.empty()) {
      next_first = s.open.front().first_offset;
    } else {
      next_first = s.added_end;  // nothing added yet: the newest segment ends there
    }
    if (next_first > offset) break;
    s.ops->unlink(s.closed.front().path);
    s.closed.pop_front();
    removed = true;
  }
  if (removed) s.ops->fsync_dir(s.dir);
}

PartitionWriter::Retention PartitionWriter::apply_retention(std::uint64_t max_bytes,
                                                            std::int64_t max_age_ns,
                                                            std::int64_t now_realtime_ns) {
  auto& s = *s_;
  Retention r;
  std::uint64_t total = 0;
  for (const auto& c : s.closed)
    total += c.size;
  for (const auto& o : s.open)
    total += o.size;
  while (!s.closed.empty()) {
    const auto& oldest = s.closed.front();
    const bool too_big = max_bytes != 0 && total > max_bytes;
    const bool too_old = max_age_ns > 0 && now_realtime_ns - oldest.last_write_ns > max_age_ns;
    if (!too_big && !too_old) break;
    if (const int rc = s.ops->unlink(oldest.path); rc < 0 && rc != -ENOENT) {
      break;  // try again at the next call
    }
    total -= std::min(total, oldest.size);
    r.bytes += oldest.size;
    ++r.segments;
    s.closed.pop_front();
  }
  if (r.segments != 0) s.ops->fsync_dir(s.dir);
  if (!s.closed.empty()) {
    r.first_offset = s.closed.front().first_offset;
  } else if (!s.open.empty()) {
    r.first_offset = s.open.front().first_offset;
  } else {
    r.first_offset = s.added_end;
  }
  return r;
}

}  // namespace ringflow::wal
