#include "store/wal/durability.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "logger.hpp"
#include "ringflow/event.hpp"
#include "ringflow/wait_strategy.hpp"

namespace ringflow::detail {

namespace {

constexpr std::string_view kManifestMagic = "ringflow-wal-manifest 1";
// Records a writer takes from one partition per round: bounds the time between two
// publications of durable offsets under a steady stream.
constexpr std::size_t kMaxRecordsPerRound = 16384;
// os mode: the background fdatasync period (not part of its promise; see run()). Measured:
// a 1 s period let a sync of ~50 MB stall the writer long enough to hold ingest back.
constexpr std::int64_t kOsSyncPeriodNs = 100'000'000;

std::string errno_text(int e) {
  return std::error_code(e, std::generic_category()).message();
}

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Manifest {
  std::uint32_t partitions = 0;
  std::unordered_map<std::uint32_t, std::string> topics;  // id -> name
};

// Reads <dir>/manifest; false when there is none (a new directory).
bool read_manifest(const std::filesystem::path& dir, Manifest& m) {
  const std::filesystem::path file = dir / "manifest";
  std::ifstream in(file);
  if (!in) return false;
  std::string line;
  if (!std::getline(in, line) || line != kManifestMagic) {
    throw std::runtime_error("ringflow: " + file.string() +
                             " is not a ringflow write-ahead-log manifest");
  }
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string what;
    ls >> what;
    if (what == "partitions") {
      ls >> m.partitions;
    } else if (what == "topic") {
      std::uint32_t id = 0;
      std::string name;
      ls >> id >> name;
      if (!ls || name.empty()) {
        throw std::runtime_error("ringflow: " + file.string() + ": bad line \"" + line + "\"");
      }
      m.topics[id] = name;
    }
  }
  return true;
}

std::atomic<wal::FileOps*> g_test_ops{nullptr};

}  // namespace

void set_wal_file_ops_for_testing(wal::FileOps* ops) noexcept {
  g_test_ops.store(ops, std::memory_order_release);  // read at the next engine's start()
}

Durability::Durability(const EngineConfig& cfg, const LogSink* sink)
    : cfg_(cfg), sink_(sink), dir_(cfg.wal_dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec || !std::filesystem::is_directory(dir_)) {
    throw std::runtime_error("ringflow: wal.dir \"" + dir_.string() +
                             "\" is not a directory that can be created or used" +
                             (ec ? ": " + ec.message() : std::string()));
  }
  const std::filesystem::path lock = dir_ / "LOCK";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    throw std::runtime_error("ringflow: cannot open the lock file " + lock.string() + ": " +
                             errno_text(errno));
  }
  // flock() locks the open file description: a second engine, in this process or another,
  // fails here instead of writing the same files.
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw std::runtime_error("ringflow: wal.dir \"" + dir_.string() +
                             "\" is in use by another engine (its lock file " + lock.string() +
                             " is held" + (e == EWOULDBLOCK ? "" : ": " + errno_text(e)) + ")");
  }
  if (!cfg.wal_key_file.empty()) {
    key_ = std::make_unique<wal::Key>(wal::Key::from_file(cfg.wal_key_file));
  } else if (!cfg.wal_key_env.empty()) {
    key_ = std::make_unique<wal::Key>(wal::Key::from_env(cfg.wal_key_env.c_str()));
  }
  options_.segment_bytes = cfg.wal_segment_bytes;
  options_.key = key_.get();
  // os and interval modes write without syncing at once: start writeback as they write, so
  // dirty pages never pile up into a long stall (of the writer, or of the next fdatasync).
  options_.start_writeback = cfg.wal_mode == WalMode::os || cfg.wal_mode == WalMode::interval;
  options_.ops = g_test_ops.load(std::memory_order_acquire);  // null outside tests
}

Durability::~Durability() {
  try {
    stop();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw; stop() logged it
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void Durability::log(LogLevel level, const std::string& message) const {
  Logger(sink_).log(level, "wal", message);
}

void Durability::write_manifest(const std::deque<std::string>& topic_names) const {
  const std::filesystem::path tmp = dir_ / "manifest.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kManifestMagic << "\npartitions " << cfg_.partitions << "\n";
    for (std::size_t t = 0; t < topic_names.size(); ++t)
      out << "topic " << t << " " << topic_names[t] << "\n";
    out.flush();
    if (!out) throw std::runtime_error("ringflow: cannot write " + tmp.string());
  }
  // Durable before it replaces the old one: fsync the file, rename, fsync the directory.
  const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
  std::filesystem::rename(tmp, dir_ / "manifest");
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

RecoverySummary Durability::recover(std::vector<std::unique_ptr<PartitionLog>>& logs,
                                    const std::deque<std::string>& topic_names,
                                    std::vector<std::vector<RecoveredKey>>& keys) {
  const std::int64_t t0 = steady_ns();
  RecoverySummary sum;
  Manifest old;
  const bool had_manifest = read_manifest(dir_, old);
  if (had_manifest && old.partitions != cfg_.partitions) {
    throw std::runtime_error("ringflow: wal.dir \"" + dir_.string() + "\" was written with " +
                             std::to_string(old.partitions) +
                             " partitions, but engine.partitions is " +
                             std::to_string(cfg_.partitions) +
                             ": keys would move between partitions and lose their order; use " +
                             std::to_string(old.partitions) + " or a new directory");
  }
  std::unordered_map<std::string, std::uint32_t> now_ids;
  for (std::size_t t = 0; t < topic_names.size(); ++t)
    now_ids.emplace(topic_names[t], static_cast<std::uint32_t>(t));
  // Old topic id -> the id the same name has now.
  std::unordered_map<std::uint32_t, std::uint32_t> remap;
  for (const auto& [id, name] : old.topics) {
    const auto it = now_ids.find(name);
    if (it != now_ids.end()) remap.emplace(id, it->second);
  }
  if (!had_manifest && !wal::partitions_in(dir_).empty()) {
    throw std::runtime_error("ringflow: wal.dir \"" + dir_.string() +
                             "\" holds segment files but no manifest: it cannot tell which "
                             "topic each event belongs to");
  }

  keys.assign(logs.size(), {});
  const std::size_t window = cfg_.idempotency_window;
  parts_.clear();
  for (std::uint32_t p = 0; p < logs.size(); ++p) {
    PartitionLog& log = *logs[p];
    std::vector<RecoveredKey>& pk = keys[p];
    std::size_t key_next = 0;  // ring position once pk holds `window` keys
    bool first = true;
    // Records come in runs of one topic: remember the last mapping (a hash lookup per record
    // was a measurable share of recovery).
    bool have_last = false;
    std::uint32_t last_old = 0;
    std::uint32_t last_new = 0;
    const wal::PartitionReport rep = wal::recover_partition(
        dir_, p, options_, /*repair=*/true, [&](const wal::RecoveredRecord& r) {
          if (r.record.size() < sizeof(RecordHeader)) {
            throw std::runtime_error("ringflow: wal partition " + std::to_string(p) +
                                     ": record at offset " + std::to_string(r.offset) +
                                     " is shorter than its header");
          }
          RecordHeader h;
          std::memcpy(&h, r.record.data(), sizeof h);
          const std::uint32_t old_topic = h.topic;
          const bool same = have_last && old_topic == last_old;
          const auto it = same ? remap.end() : remap.find(old_topic);
          if (!same && it == remap.end()) {
            const auto name = old.topics.find(h.topic);
            throw std::runtime_error(
                "ringflow: wal.dir \"" + dir_.string() + "\" holds events of topic \"" +
                (name != old.topics.end() ? name->second : "#" + std::to_string(h.topic)) +
                "\", which is not registered: add_topic() it before start() (or move the "
                "directory away)");
          }
          if (!same) {
            have_last = true;
            last_old = old_topic;
            last_new = it->second;
          }
          h.topic = last_new;
          const std::size_t need =
              record_size(h.key_len, h.payload_len, (h.flags & kRecordDeadLetter) != 0);
          if (r.record.size() < need || h.key_len > kMaxKeyBytes ||
              h.payload_len > kMaxPayloadBytes) {
            throw std::runtime_error("ringflow: wal partition " + std::to_string(p) +
                                     ": record at offset " + std::to_string(r.offset) +
                                     " has a bad length");
          }
          if (first) {
            log.start_at(r.offset);
            first = false;
          }
          const std::byte* body = r.record.data() + sizeof h;
          const std::string_view key(reinterpret_cast<const char*>(body), h.key_len);
          const std::span<const std::byte> payload(body + h.key_len, h.payload_len);
          DeadLetterInfo info{};
          const bool dead = (h.flags & kRecordDeadLetter) != 0;
          if (dead) {
            std::memcpy(&info, r.record.data() + record_size(h.key_len, h.payload_len),
                        sizeof info);
          }
          (void)log.append(h, key, payload, dead ? &info : nullptr);
          if (h.idempotency_key != 0 && window != 0) {
            const RecoveredKey k{h.idempotency_key, h.ingest_ns};
            if (pk.size() < window) {
              pk.push_back(k);
            } else {
              pk[key_next] = k;
              key_next = (key_next + 1) % window;
            }
          }
          ++sum.records;
        });
    // Oldest first, as they were seen.
    std::rotate(pk.begin(), pk.begin() + static_cast<std::ptrdiff_t>(key_next), pk.end());
    sum.bytes += rep.bytes_scanned;
    for (const auto& note : rep.notes) {
      ++sum.truncations;
      this->log(LogLevel::warn, "partition " + std::to_string(p) + ": " + note);
    }
    if (rep.records != 0) {
      this->log(LogLevel::info, "recovered partition " + std::to_string(p) + ": " +
                                    std::to_string(rep.records) + " events, offsets " +
                                    std::to_string(rep.first_offset) + ".." +
                                    std::to_string(rep.end_offset - 1) + " from " +
                                    std::to_string(rep.segments) + " segment(s)");
    }
    // A log that recovered nothing but whose files ended at an offset (all records deleted
    // by retention) continues there.
    if (first && rep.end_offset != 0) log.start_at(rep.end_offset);
    auto part = std::make_unique<Part>(log);
    const std::uint64_t end = log.end_offset();
    part->floor.offset.store(end, std::memory_order_relaxed);  // before the shards start
    part->durable.store(end, std::memory_order_relaxed);
    (void)part->reader.seek(end);
    part->writer = std::make_unique<wal::PartitionWriter>(dir_, p, end, options_);
    log.set_durable_floor(&part->floor);
    parts_.push_back(std::move(part));
  }
  write_manifest(topic_names);
  sum.seconds = static_cast<double>(steady_ns() - t0) / 1e9;
  return sum;
}

void Durability::start(std::unique_ptr<ProducerState>* producers,
                       const std::atomic<std::uint32_t>* producer_count) {
  producers_ = producers;
  producer_count_ = producer_count;
  for (std::uint32_t s = 0; s < cfg_.shards; ++s)
    threads_.emplace_back([this, s] { run(s); });
}

void Durability::begin_stop() noexcept {
  stopping_.store(true, std::memory_order_release);  // pairs with run()'s acquire
}

void Durability::stop() {
  if (threads_.empty()) return;
  stop_writers();
  release_lock();
}

void Durability::stop_writers() {
  if (threads_.empty()) return;
  stopping_.store(true, std::memory_order_release);
  exit_.store(true, std::memory_order_release);  // pairs with run()'s acquire
  for (auto& t : threads_)
    t.join();
  threads_.clear();
}

void Durability::release_lock() noexcept {
  // Nothing writes the directory any more: another engine may take it (this one still reads
  // its in-memory logs).
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
}

void Durability::snapshot_rings(std::uint32_t shard, std::vector<std::uint64_t>& snap) const {
  // Acquire: pairs with make_producer()'s release; the producer's rings are built.
  const std::uint32_t n = producer_count_->load(std::memory_order_acquire);
  snap.resize(std::size_t{n} * kLanes);
  for (std::uint32_t p = 0; p < n; ++p) {
    const RingPair& rp = *producers_[p]->rings[shard];
    for (std::uint32_t lane = 0; lane < kLanes; ++lane) {
      // Acquire: pairs with the shard's release after appending a batch: those records are
      // below the end offsets read after this.
      snap[std::size_t{p} * kLanes + lane] = rp.appended[lane].load(std::memory_order_acquire);
    }
  }
}

void Durability::publish_rings(std::uint32_t shard, const std::vector<std::uint64_t>& snap) {
  const std::size_t n = snap.size() / kLanes;
  for (std::size_t p = 0; p < n; ++p) {
    RingPair& rp = *producers_[p]->rings[shard];
    for (std::uint32_t lane = 0; lane < kLanes; ++lane) {
      // Release: a producer that sees the count may rely on the files holding the events.
      // (One writer per shard: the ring's durable counter has a single writer.)
      rp.durable[lane].store(snap[p * kLanes + lane], std::memory_order_release);
    }
  }
}

bool Durability::write_round(std::uint32_t shard, wal::Errc& err, bool& caught_up, std::byte* buf) {
  bool wrote = false;
  caught_up = true;
  for (std::uint32_t p = shard; p < parts_.size(); p += cfg_.shards) {
    Part& part = *parts_[p];
    if (part.broken) continue;
    std::size_t taken = 0;
    std::size_t size = 0;
    for (; taken < kMaxRecordsPerRound; ++taken) {
      const std::uint64_t at = part.reader.position();
      const ReadStatus st = part.reader.next_raw(buf, size);
      if (st == ReadStatus::end) break;
      if (st == ReadStatus::evicted) {
        // Only possible once the floor was released (stopping with a failing log).
        part.broken = true;
        failed_.store(true, std::memory_order_release);
        log(LogLevel::error, "partition " + std::to_string(p) + ": events from offset " +
                                 std::to_string(at) +
                                 " were processed but never written (the log could not be "
                                 "written while the engine stopped)");
        break;
      }
      RecordHeader h;
      std::memcpy(&h, buf, sizeof h);
      const wal::Errc e =
          part.writer->add(h.offset, h.ingest_ns, std::span<const std::byte>(buf, size));
      if (e != wal::Errc::ok) {
        err = e;
        (void)part.reader.seek(at);  // take it again next round
        break;
      }
    }
    if (taken == kMaxRecordsPerRound) caught_up = false;
    if (part.writer->added_end() != part.writer->written_end()) {
      const std::uint64_t bytes_before = part.writer->bytes_written();
      const wal::Errc e = part.writer->write();
      const std::uint64_t written_now = part.writer->bytes_written() - bytes_before;
      if (e != wal::Errc::ok) {
        if (err == wal::Errc::ok) err = e;
        caught_up = false;
        continue;
      }
      wrote = true;
      bytes_written_.fetch_add(written_now, std::memory_order_relaxed);  // statistic, all shards
      // Release: pairs with the log's acquire; retention may now evict below this.
      part.floor.offset.store(part.writer->written_end(), std::memory_order_release);
    }
    if (err != wal::Errc::ok) caught_up = false;
  }
  return wrote;
}

wal::Errc Durability::sync_shard(std::uint32_t shard) {
  for (std::uint32_t p = shard; p < parts_.size(); p += cfg_.shards) {
    Part& part = *parts_[p];
    if (part.writer->synced_end() == part.writer->written_end()) continue;
    const wal::Errc e = part.writer->sync();
    if (e != wal::Errc::ok) return e;
    syncs_.fetch_add(1, std::memory_order_relaxed);  // statistic
  }
  return wal::Errc::ok;
}

void Durability::publish_written(std::uint32_t shard, bool durable_too) {
  for (std::uint32_t p = shard; p < parts_.size(); p += cfg_.shards) {
    Part& part = *parts_[p];
    if (durable_too) {
      // Release: Engine::durable_offset() readers may rely on the files.
      part.durable.store(part.writer->written_end(), std::memory_order_release);
    }
  }
}

void Durability::publish_synced(std::uint32_t shard) {
  for (std::uint32_t p = shard; p < parts_.size(); p += cfg_.shards) {
    Part& part = *parts_[p];
    // Release: as publish_written().
    part.durable.store(part.writer->synced_end(), std::memory_order_release);
  }
}

void Durability::retain(std::uint32_t shard) {
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::int64_t max_age =
      std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.wal_retention_age).count();
  for (std::uint32_t p = shard; p < parts_.size(); p += cfg_.shards) {
    const wal::PartitionWriter::Retention r =
        parts_[p]->writer->apply_retention(cfg_.wal_retention_bytes, max_age, now);
    if (r.segments == 0) continue;
    segments_deleted_.fetch_add(r.segments, std::memory_order_relaxed);  // statistic
    log(LogLevel::info, "partition " + std::to_string(p) + ": retention deleted " +
                            std::to_string(r.segments) + " segment file(s), " +
                            std::to_string(r.bytes) + " bytes; the oldest offset on disk is now " +
                            std::to_string(r.first_offset));
  }
}

void Durability::run(std::uint32_t shard) {
  const std::string name = "rf-wal-" + std::to_string(shard);
  (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  std::vector<std::byte> buffer(PartitionLog::kMaxRecordBytes + 8);
  // 8-aligned scratch for one record (next_raw copies words).
  auto* buf = reinterpret_cast<std::byte*>((reinterpret_cast<std::uintptr_t>(buffer.data()) + 7) &
                                           ~std::uintptr_t{7});
  const WalMode mode = cfg_.wal_mode;
  // os mode acknowledges at write(); it still syncs every 100 ms in the background, so
  // completed segment files can be closed and each sync stays small (a large one would stall
  // the writer, and with it ingest, for hundreds of milliseconds).
  const std::int64_t sync_period =
      mode == WalMode::os
          ? kOsSyncPeriodNs
          : std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.wal_interval).count();
  std::int64_t last_sync = steady_ns();
  const bool retention = cfg_.wal_retention_bytes != 0 || cfg_.wal_retention_age.count() > 0;
  std::int64_t last_retention = 0;  // checked at the first good round, then once a second
  constexpr std::int64_t kRetentionPeriodNs = 1'000'000'000;
  // Ring snapshots waiting to become durable, each with the partitions' ends read after it:
  // its events all lie below those ends, so it is published once the durable offsets reach
  // them. (Works behind a steady stream too: the writer need never be caught up.)
  struct Pending {
    std::vector<std::uint64_t> rings;
    std::vector<std::uint64_t> ends;  // by the shard's partitions, in order
  };
  std::deque<Pending> pending;
  std::vector<std::uint64_t> ready_rings;
  constexpr std::size_t kMaxPending = 256;  // later snapshots cover earlier ones
  bool reported = false;
  std::uint32_t idle_rounds = 0;
  for (;;) {
    // Acquire: pairs with stop(); everything the shards appended is in the logs by then.
    const bool exiting = exit_.load(std::memory_order_acquire);
    if (pending.size() < kMaxPending) {
      Pending p;
      snapshot_rings(shard, p.rings);
      for (std::uint32_t q = shard; q < parts_.size(); q += cfg_.shards)
        p.ends.push_back(parts_[q]->log->end_offset());
      if (pending.empty() || p.rings != pending.back().rings) pending.push_back(std::move(p));
    }
    wal::Errc err = wal::Errc::ok;
    bool caught_up = true;
    const bool wrote = write_round(shard, err, caught_up, buf);
    if (err == wal::Errc::ok) {
      const bool due = mode == WalMode::sync || steady_ns() - last_sync >= sync_period || exiting;
      if (due) {  // sync_shard() makes no call for a partition with nothing new
        err = sync_shard(shard);
        if (err == wal::Errc::ok) last_sync = steady_ns();
      }
    }
    if (err == wal::Errc::ok) {
      // Durable offsets: written (os) or synced (interval, sync).
      if (mode == WalMode::os) {
        publish_written(shard, true);
      } else {
        publish_synced(shard);
      }
      bool ready = false;
      while (!pending.empty()) {
        bool covered = true;
        std::size_t k = 0;
        for (std::uint32_t q = shard; q < parts_.size(); q += cfg_.shards, ++k) {
          // Relaxed: this thread wrote it.
          if (parts_[q]->durable.load(std::memory_order_relaxed) < pending.front().ends[k]) {
            covered = false;
            break;
          }
        }
        if (!covered) break;
        ready_rings = std::move(pending.front().rings);
        ready = true;
        pending.pop_front();
      }
      if (ready) publish_rings(shard, ready_rings);
      if (retention && steady_ns() - last_retention >= kRetentionPeriodNs) {
        retain(shard);
        last_retention = steady_ns();
      }
    }
    if (err != wal::Errc::ok) {
      if (!reported) {
        log(LogLevel::error, std::string("cannot write the write-ahead log (") +
                                 wal::to_string(err) +
                                 "): publishing is held back until it can; retrying");
        reported = true;
      }
      failing_.store(true, std::memory_order_release);
      // Acquire: pairs with begin_stop().
      if (stopping_.load(std::memory_order_acquire)) {
        // The engine is stopping and the log cannot be written: let the shards finish in
        // memory (those events are never acknowledged durable).
        for (std::uint32_t p = shard; p < parts_.size(); p += cfg_.shards)
          parts_[p]->floor.released.store(true, std::memory_order_release);
        if (exiting) {
          failed_.store(true, std::memory_order_release);
          log(LogLevel::error,
              "stopped with events that were processed but not written to the write-ahead log");
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (reported) {
      log(LogLevel::info, "the write-ahead log is being written again");
      reported = false;
      failing_.store(false, std::memory_order_release);
    }
    if (exiting && caught_up && !wrote) return;
    if (wrote || !caught_up) {
      idle_rounds = 0;
      continue;
    }
    // Idle: poll again soon. Sync mode keeps the gap short (it bounds the durable-ack
    // latency); the others may wait longer.
    ++idle_rounds;
    if (idle_rounds < 16) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(mode == WalMode::sync ? 20 : 200));
    }
  }
}

}  // namespace ringflow::detail
