#include "store/checkpoint/checkpoint_store.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "logger.hpp"
#include "ringflow/clock.hpp"
#include "store/wal/wal.hpp"

namespace ringflow::detail {

namespace {

constexpr char kMagic[8] = {'R', 'F', 'C', 'K', 'P', 'T', '0', '1'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kFixed = sizeof kMagic + 4 + 4;  // magic, version, partitions
constexpr std::size_t kMaxNameBytes = 64;

std::string errno_text(int e) {
  return std::error_code(e, std::generic_category()).message();
}

// Writes all of `data` to `fd`; false with errno set on failure.
bool write_all(int fd, const std::byte* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

CheckpointStore::CheckpointStore(const std::filesystem::path& wal_dir, const LogSink* sink)
    : dir_(wal_dir / "checkpoints"), sink_(sink) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec || !std::filesystem::is_directory(dir_)) {
    throw std::runtime_error("ringflow: cannot create the checkpoint directory \"" + dir_.string() +
                             "\"" + (ec ? ": " + ec.message() : std::string()));
  }
}

std::string CheckpointStore::check_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return "durable_name '" + name + "' must be 1.." + std::to_string(kMaxNameBytes) +
           " characters long (it has " + std::to_string(name.size()) + ")";
  }
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) {
      return "durable_name '" + name + "' may hold only A-Z a-z 0-9 _ . - (it names a file)";
    }
  }
  if (name == "." || name == "..") return "durable_name '" + name + "' is not a file name";
  return {};
}

std::optional<std::vector<std::uint64_t>> CheckpointStore::load(const std::string& name,
                                                                std::uint32_t partitions) const {
  const std::filesystem::path file = file_of(name);
  const Logger log(sink_);
  const auto bad = [&](const std::string& why) -> std::optional<std::vector<std::uint64_t>> {
    log.log(LogLevel::warn, "checkpoint",
            "checkpoint file " + file.string() + " of durable subscription '" + name +
                "' is unusable (" + why +
                "): ignored, the subscription starts at the end of the log as on a first start");
    return std::nullopt;
  };
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;  // a first start with this name
    return bad("cannot open: " + errno_text(errno));
  }
  const std::size_t want = kFixed + std::size_t{partitions} * 8 + 4;
  std::vector<std::byte> buf(want + 1);  // one more: a longer file is detected
  std::size_t got = 0;
  for (;;) {
    const ssize_t r = ::read(fd, buf.data() + got, buf.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
    if (got == buf.size()) break;
  }
  ::close(fd);
  if (got < kFixed + 4) return bad("too short: " + std::to_string(got) + " bytes (torn?)");
  if (std::memcmp(buf.data(), kMagic, sizeof kMagic) != 0) return bad("bad magic");
  std::uint32_t version = 0;
  std::uint32_t parts = 0;
  std::memcpy(&version, buf.data() + 8, 4);
  std::memcpy(&parts, buf.data() + 12, 4);
  if (version != kVersion) return bad("unknown version " + std::to_string(version));
  if (parts != partitions) {
    return bad("written for " + std::to_string(parts) + " partitions, the engine has " +
               std::to_string(partitions));
  }
  if (got != want) {
    return bad("size " + std::to_string(got) + " bytes, expected " + std::to_string(want));
  }
  std::uint32_t crc = 0;
  std::memcpy(&crc, buf.data() + want - 4, 4);
  if (crc != wal::crc32c(buf.data(), want - 4)) return bad("CRC32C mismatch");
  std::vector<std::uint64_t> out(partitions);
  std::memcpy(out.data(), buf.data() + kFixed, std::size_t{partitions} * 8);
  return out;
}

bool CheckpointStore::save(const std::string& name,
                           std::span<const std::uint64_t> positions) const {
  const std::size_t size = kFixed + positions.size() * 8 + 4;
  std::vector<std::byte> buf(size);
  const auto parts = static_cast<std::uint32_t>(positions.size());
  std::memcpy(buf.data(), kMagic, sizeof kMagic);
  std::memcpy(buf.data() + 8, &kVersion, 4);
  std::memcpy(buf.data() + 12, &parts, 4);
  std::memcpy(buf.data() + kFixed, positions.data(), positions.size() * 8);
  const std::uint32_t crc = wal::crc32c(buf.data(), size - 4);
  std::memcpy(buf.data() + size - 4, &crc, 4);

  const std::filesystem::path file = file_of(name);
  const std::filesystem::path tmp = dir_ / (name + ".ckpt.tmp");
  const auto fail = [&](const std::string& what) {
    std::uint64_t suppressed = 0;
    if (error_limit_.admit(now_ns(), suppressed)) {
      Logger(sink_).log(LogLevel::error, "checkpoint",
                        "cannot write the checkpoint of durable subscription '" + name + "' (" +
                            what + "): the previous one stays; retrying",
                        suppressed);
    }
    return false;
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("open " + tmp.string() + ": " + errno_text(errno));
  // The new contents are on disk before the rename makes them the checkpoint: a crash leaves
  // the old file or the new one, never a torn one under the real name.
  if (!write_all(fd, buf.data(), size) || ::fdatasync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    return fail("write " + tmp.string() + ": " + errno_text(e));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    return fail("rename to " + file.string() + ": " + errno_text(errno));
  }
  // The rename itself survives a power cut once the directory is synced.
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail("open " + dir_.string() + ": " + errno_text(errno));
  const int rc = ::fsync(dfd);
  const int e = errno;
  ::close(dfd);
  if (rc != 0) return fail("fsync " + dir_.string() + ": " + errno_text(e));
  return true;
}

CheckpointWriter::CheckpointWriter(const CheckpointStore& store, std::vector<std::string> names,
                                   const SubscriptionPositions& positions,
                                   std::function<std::uint64_t(std::uint32_t)> durable_offset,
                                   std::chrono::milliseconds period)
    : store_(store),
      names_(std::move(names)),
      positions_(positions),
      durable_offset_(std::move(durable_offset)),
      period_(period),
      written_(names_.size(), std::vector<std::uint64_t>(positions.partitions(), 0)),
      ever_written_(names_.size(), false) {}

CheckpointWriter::~CheckpointWriter() {
  {
    std::lock_guard lock(mu_);
    exit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CheckpointWriter::start() {
  // Every durable subscription has a file from its first start on: a crash before the first
  // period must not turn into "no checkpoint" (which would start at the end, skipping events).
  write_changed();
  thread_ = std::thread([this] { run(); });
}

void CheckpointWriter::stop_and_flush() {
  {
    std::lock_guard lock(mu_);
    exit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  write_changed();
}

void CheckpointWriter::run() {
  (void)pthread_setname_np(pthread_self(), "rf-checkpoint");
  std::unique_lock lock(mu_);
  for (;;) {
    if (cv_.wait_for(lock, period_, [this] { return exit_; })) return;
    lock.unlock();
    write_changed();
    lock.lock();
  }
}

void CheckpointWriter::write_changed() {
  const std::uint32_t parts = positions_.partitions();
  std::vector<std::uint64_t> now(parts);
  for (std::size_t d = 0; d < names_.size(); ++d) {
    for (std::uint32_t p = 0; p < parts; ++p) {
      // Acquire: pairs with the shard's release; the events below it are finished.
      const std::uint64_t pos = positions_.at(d, p).load(std::memory_order_acquire);
      // Never past what the write-ahead log holds: a restart replays from a record it has.
      now[p] = std::min(pos, durable_offset_(p));
    }
    if (ever_written_[d] && now == written_[d]) continue;
    if (store_.save(names_[d], now)) {
      written_[d] = now;
      ever_written_[d] = true;
    }
  }
}

}  // namespace ringflow::detail
