// The write-ahead log, seen from the engine: what a restart recovers (events, offsets, ids,
// idempotency windows), durable acknowledgements per mode, the lock file, refusals on a
// directory that does not fit, and retention that never evicts what is not written yet.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/ringflow.hpp"
#include "store/wal/durability.hpp"
#include "support/bounded.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("ringflow-wal-engine-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

ringflow::EngineConfig wal_config(const fs::path& dir, ringflow::WalMode mode) {
  ringflow::EngineConfig cfg;
  cfg.shards = 1;
  cfg.partitions = 4;
  cfg.pin_threads = false;
  cfg.wal_mode = mode;
  cfg.wal_dir = dir.string();
  cfg.wal_segment_bytes = std::size_t{1} << 20;
  cfg.wal_interval = 5ms;
  return cfg;
}

std::int64_t in(std::chrono::milliseconds d) {
  return ringflow::now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

struct Published {
  std::string key;
  std::string payload;
};

// Publishes `n` keyed events (idempotency key = first_id + i) and waits until all are durable.
std::vector<Published> publish_durably(ringflow::Engine& engine, ringflow::TopicId topic,
                                       std::size_t n, std::uint64_t first_id) {
  auto producer = engine.make_producer();
  std::vector<Published> out;
  for (std::size_t i = 0; i < n; ++i) {
    Published p{std::string("key-").append(std::to_string(i % 7)),
                std::string("event-").append(std::to_string(first_id + i))};
    ringflow::PublishOptions o;
    o.idempotency_key = first_id + i;
    // The ring is full while the shard waits for the log's writer (back-pressure); on a loaded
    // machine that can last a while, so the bound is time, not a number of tries.
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      const auto st = producer.publish(topic, p.key, p.payload, o);
      if (st == ringflow::PublishStatus::ok) break;
      EXPECT_EQ(st, ringflow::PublishStatus::full);
      if (std::chrono::steady_clock::now() > give_up) {
        ADD_FAILURE() << "ring stayed full for 30 s at event " << i;
        return out;
      }
      std::this_thread::yield();
    }
    out.push_back(std::move(p));
  }
  EXPECT_EQ(producer.wait_all_durable(in(30s)), ringflow::DurableStatus::durable);
  return out;
}

// Every event of `topic` in the logs, by partition in offset order.
std::map<std::uint32_t, std::vector<ringflow::StoredEvent>> read_all(ringflow::Engine& engine) {
  std::map<std::uint32_t, std::vector<ringflow::StoredEvent>> out;
  for (std::uint32_t p = 0; p < engine.partitions(); ++p) {
    auto r = engine.reader(p);
    (void)r.seek(engine.log(p).first_offset());
    ringflow::StoredEvent e;
    while (r.next(e) == ringflow::ReadStatus::ok)
      out[p].push_back(e);
  }
  return out;
}

TEST(WalEngine, ARestartRecoversEveryEventWithItsOffsetIdAndContent) {
  TempDir dir;
  std::map<std::uint32_t, std::vector<ringflow::StoredEvent>> before;
  std::vector<std::uint64_t> ends;
  {
    ringflow::Engine engine(wal_config(dir.path, ringflow::WalMode::os));
    engine.set_log_sink(ringflow::null_log_sink());
    const auto topic = engine.add_topic("orders");
    engine.start();
    (void)publish_durably(engine, topic, 3000, 1);
    engine.drain();
    before = read_all(engine);
    for (std::uint32_t p = 0; p < engine.partitions(); ++p) {
      ends.push_back(engine.log(p).end_offset());
      EXPECT_EQ(engine.durable_offset(p), ends.back()) << "partition " << p;
    }
    engine.stop();
  }
  ringflow::Engine engine(wal_config(dir.path, ringflow::WalMode::os));
  engine.set_log_sink(ringflow::null_log_sink());
  const auto topic = engine.add_topic("orders");
  engine.start();
  const auto after = read_all(engine);
  ASSERT_EQ(after.size(), before.size());
  std::size_t total = 0;
  for (const auto& [p, events] : before) {
    const auto& got = after.at(p);
    ASSERT_EQ(got.size(), events.size()) << "partition " << p;
    for (std::size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(got[i].offset, events[i].offset);
      EXPECT_EQ(got[i].id, events[i].id);
      EXPECT_EQ(got[i].key, events[i].key);
      EXPECT_EQ(got[i].payload, events[i].payload);
      EXPECT_EQ(got[i].ingest_ns, events[i].ingest_ns);
      EXPECT_EQ(got[i].topic, topic);
    }
    total += events.size();
    EXPECT_EQ(engine.log(p).end_offset(), ends[p]);
  }
  EXPECT_EQ(total, 3000U);
  // Offsets continue; a key published again after the restart is still a duplicate.
  auto producer = engine.make_producer();
  ringflow::PublishOptions again;
  again.idempotency_key = 17;
  ASSERT_EQ(producer.publish(topic, "key-2", "event-17", again), ringflow::PublishStatus::ok);
  ringflow::PublishOptions fresh;
  fresh.idempotency_key = 5000;
  ASSERT_EQ(producer.publish(topic, "key-2", "event-5000", fresh), ringflow::PublishStatus::ok);
  engine.drain();
  const auto stats = engine.stats();
  EXPECT_EQ(stats.duplicates, 1U);
  std::uint64_t new_total = 0;
  for (std::uint32_t p = 0; p < engine.partitions(); ++p)
    new_total += engine.log(p).end_offset();
  EXPECT_EQ(new_total, 3001U);
  engine.stop();
}

TEST(WalEngine, EveryModeAcknowledgesDurability) {
  for (const auto mode :
       {ringflow::WalMode::os, ringflow::WalMode::interval, ringflow::WalMode::sync}) {
    SCOPED_TRACE(std::string(ringflow::to_string(mode)));
    TempDir dir;
    ringflow::Engine engine(wal_config(dir.path, mode));
    engine.set_log_sink(ringflow::null_log_sink());
    const auto topic = engine.add_topic("orders");
    engine.start();
    auto producer = engine.make_producer();
    ASSERT_EQ(producer.publish(topic, "k", "v"), ringflow::PublishStatus::ok);
    const auto mark = producer.last_mark();
    EXPECT_EQ(producer.wait_durable(mark, in(30s)), ringflow::DurableStatus::durable);
    EXPECT_TRUE(producer.is_durable(mark));
    std::uint64_t durable = 0;
    for (std::uint32_t p = 0; p < engine.partitions(); ++p)
      durable += engine.durable_offset(p);
    EXPECT_EQ(durable, 1U);
    engine.stop();
  }
}

TEST(WalEngine, WithoutALogNothingIsEverDurable) {
  ringflow::EngineConfig cfg;
  cfg.shards = 1;
  cfg.pin_threads = false;
  ringflow::Engine engine(cfg);
  const auto topic = engine.add_topic("orders");
  engine.start();
  auto producer = engine.make_producer();
  ASSERT_EQ(producer.publish(topic, "k", "v"), ringflow::PublishStatus::ok);
  EXPECT_EQ(producer.wait_durable(producer.last_mark(), in(1s)), ringflow::DurableStatus::wal_off);
  EXPECT_EQ(engine.durable_offset(0), 0U);
  engine.stop();
}

TEST(WalEngine, ASecondEngineOnTheSameDirectoryIsRefused) {
  TempDir dir;
  ringflow::Engine first(wal_config(dir.path, ringflow::WalMode::os));
  first.set_log_sink(ringflow::null_log_sink());
  first.add_topic("orders");
  first.start();
  ringflow::Engine second(wal_config(dir.path, ringflow::WalMode::os));
  second.set_log_sink(ringflow::null_log_sink());
  second.add_topic("orders");
  try {
    second.start();
    ADD_FAILURE() << "a second engine started on a directory in use";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another engine"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(second.state(), ringflow::Engine::State::created);
  first.stop();
}

TEST(WalEngine, ADirectoryWithEventsOfAnUnregisteredTopicIsRefused) {
  TempDir dir;
  {
    ringflow::Engine engine(wal_config(dir.path, ringflow::WalMode::os));
    engine.set_log_sink(ringflow::null_log_sink());
    const auto topic = engine.add_topic("payments");
    engine.start();
    (void)publish_durably(engine, topic, 10, 1);
    engine.stop();
  }
  ringflow::Engine engine(wal_config(dir.path, ringflow::WalMode::os));
  engine.set_log_sink(ringflow::null_log_sink());
  engine.add_topic("orders");
  try {
    engine.start();
    ADD_FAILURE() << "started without the topic its log holds";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("\"payments\""), std::string::npos) << e.what();
  }
}

TEST(WalEngine, ADirectoryWrittenWithAnotherPartitionCountIsRefused) {
  TempDir dir;
  {
    ringflow::Engine engine(wal_config(dir.path, ringflow::WalMode::os));
    engine.set_log_sink(ringflow::null_log_sink());
    engine.add_topic("orders");
    engine.start();
    engine.stop();
  }
  auto cfg = wal_config(dir.path, ringflow::WalMode::os);
  cfg.partitions = 8;
  ringflow::Engine engine(cfg);
  engine.set_log_sink(ringflow::null_log_sink());
  engine.add_topic("orders");
  try {
    engine.start();
    ADD_FAILURE() << "started with another partition count";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("partitions"), std::string::npos) << e.what();
  }
}

TEST(WalEngine, SmallRetentionNeverEvictsWhatIsNotWrittenYet) {
  // Two in-memory segments per partition, far more events than they hold: every event must
  // still reach the files (retention waits for the writer), so a restart sees all of them.
  TempDir dir;
  auto cfg = wal_config(dir.path, ringflow::WalMode::sync);
  cfg.partitions = 1;
  cfg.batch_size = 16;
  cfg.segment_bytes = 16 * 1024;
  cfg.retention_bytes = 32 * 1024;
  constexpr std::size_t kEvents = 20000;
  {
    ringflow::Engine engine(cfg);
    engine.set_log_sink(ringflow::null_log_sink());
    const auto topic = engine.add_topic("orders");
    engine.start();
    (void)publish_durably(engine, topic, kEvents, 1);
    EXPECT_GT(engine.log(0).evicted_segments(), 0U);
    engine.stop();
  }
  ringflow::Engine engine(cfg);
  engine.set_log_sink(ringflow::null_log_sink());
  engine.add_topic("orders");
  engine.start();
  EXPECT_EQ(engine.log(0).end_offset(), kEvents);
  engine.stop();
}

TEST(WalEngine, HandlersSeeRecoveredEventsOnlyOnce) {
  // Recovery rebuilds the store; it does not deliver the recovered events again to
  // subscriptions (they were processed before the restart).
  TempDir dir;
  {
    ringflow::Engine engine(wal_config(dir.path, ringflow::WalMode::os));
    engine.set_log_sink(ringflow::null_log_sink());
    const auto topic = engine.add_topic("orders");
    engine.start();
    (void)publish_durably(engine, topic, 100, 1);
    engine.stop();
  }
  ringflow::Engine engine(wal_config(dir.path, ringflow::WalMode::os));
  engine.set_log_sink(ringflow::null_log_sink());
  engine.add_topic("orders");
  std::atomic<int> seen{0};
  engine.subscribe("orders", [&](const ringflow::EventView&) { seen.fetch_add(1); });
  engine.start();
  engine.drain();
  EXPECT_EQ(seen.load(), 0);
  engine.stop();
}

}  // namespace

namespace {

// A file system that fills up: pwrite fails with ENOSPC once `budget` bytes are used, until the
// test frees space. (Atomic: the test changes it while the log's writer thread writes.)
class FillingDisk : public ringflow::wal::FileOps {
 public:
  std::atomic<std::uint64_t> budget{UINT64_MAX};
  std::atomic<std::uint64_t> refused{0};

  int open(const fs::path& p, int flags, int mode) override { return real().open(p, flags, mode); }
  long pwrite(int fd, const void* d, std::size_t n, std::uint64_t at) override {
    std::uint64_t b = budget.load();
    while (b != UINT64_MAX) {
      if (n > b) {
        refused.fetch_add(1);
        return -ENOSPC;
      }
      if (budget.compare_exchange_weak(b, b - n)) break;
    }
    return real().pwrite(fd, d, n, at);
  }
  long pread(int fd, void* d, std::size_t n, std::uint64_t at) override {
    return real().pread(fd, d, n, at);
  }
  int fdatasync(int fd) override { return real().fdatasync(fd); }
  int fallocate(int fd, std::uint64_t bytes) override { return real().fallocate(fd, bytes); }
  int ftruncate(int fd, std::uint64_t bytes) override { return real().ftruncate(fd, bytes); }
  int close(int fd) override { return real().close(fd); }
  int unlink(const fs::path& p) override { return real().unlink(p); }
  int fsync_dir(const fs::path& d) override { return real().fsync_dir(d); }

 private:
  static ringflow::wal::FileOps& real() { return ringflow::wal::posix_file_ops(); }
};

struct FileOpsScope {
  explicit FileOpsScope(ringflow::wal::FileOps* ops) {
    ringflow::detail::set_wal_file_ops_for_testing(ops);
  }
  ~FileOpsScope() { ringflow::detail::set_wal_file_ops_for_testing(nullptr); }
};

template <class Pred>
bool eventually(Pred p, std::chrono::seconds limit = 30s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (p()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return p();
}

TEST(WalEngine, AFullDiskHoldsAcknowledgementsBackUntilSpaceReturns) {
  TempDir dir;
  FillingDisk disk;
  const FileOpsScope scope(&disk);
  disk.budget = 64 * 1024;  // the first records fit, then the disk is full
  ringflow::Engine engine(wal_config(dir.path, ringflow::WalMode::os));
  std::atomic<int> errors{0};
  engine.set_log_sink([&](const ringflow::LogRecord& r) {
    if (r.level == ringflow::LogLevel::error && r.component == "wal") errors.fetch_add(1);
  });
  const auto topic = engine.add_topic("orders");
  std::atomic<int> handled{0};
  engine.subscribe("orders", [&](const ringflow::EventView&) { handled.fetch_add(1); });
  engine.start();
  auto producer = engine.make_producer();
  constexpr int kEvents = 3000;
  for (int i = 0; i < kEvents; ++i) {
    const std::string payload = std::string("payload-").append(std::to_string(i));
    while (producer.publish(topic, std::string("k").append(std::to_string(i % 5)), payload) !=
           ringflow::PublishStatus::ok) {
      std::this_thread::yield();
    }
  }
  ASSERT_TRUE(eventually([&] { return engine.stats().wal_failing; }))
      << "a full disk was not reported in stats()";
  EXPECT_EQ(producer.wait_all_durable(in(200ms)), ringflow::DurableStatus::timed_out)
      << "acknowledged durable what was not written";
  EXPECT_GE(errors.load(), 1) << "no error record through the log sink";
  // Processing goes on from memory while the log cannot be written.
  ASSERT_TRUE(eventually([&] { return handled.load() == kEvents; }));
  // Space again: the writer catches up on its own; everything becomes durable.
  disk.budget = UINT64_MAX;
  EXPECT_EQ(producer.wait_all_durable(in(30s)), ringflow::DurableStatus::durable);
  EXPECT_TRUE(eventually([&] { return !engine.stats().wal_failing; }));
  engine.stop();
  EXPECT_GT(disk.refused.load(), 0U);

  ringflow::Engine again(wal_config(dir.path, ringflow::WalMode::os));
  again.set_log_sink(ringflow::null_log_sink());
  again.add_topic("orders");
  again.start();
  std::uint64_t total = 0;
  for (std::uint32_t p = 0; p < again.partitions(); ++p)
    total += again.log(p).end_offset();
  EXPECT_EQ(total, static_cast<std::uint64_t>(kEvents));
  again.stop();
}

TEST(WalEngine, StopReturnsWhenTheDiskStaysFullAndSaysNothingWasMadeDurable) {
  // Small in-memory retention: the shard soon waits for the writer, which cannot write. stop()
  // must still finish every accepted event (in memory) and report the failure.
  TempDir dir;
  FillingDisk disk;
  const FileOpsScope scope(&disk);
  disk.budget = 16 * 1024;
  auto cfg = wal_config(dir.path, ringflow::WalMode::sync);
  cfg.partitions = 1;
  cfg.batch_size = 16;
  cfg.segment_bytes = 16 * 1024;
  cfg.retention_bytes = 32 * 1024;
  cfg.backpressure = ringflow::BackpressurePolicy::fail_fast;
  ringflow::Engine engine(cfg);
  engine.set_log_sink(ringflow::null_log_sink());
  const auto topic = engine.add_topic("orders");
  std::atomic<std::uint64_t> handled{0};
  engine.subscribe("orders", [&](const ringflow::EventView&) { handled.fetch_add(1); });
  engine.start();
  auto producer = engine.make_producer();
  std::uint64_t accepted = 0;
  std::uint64_t full = 0;
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until && full < 100000) {
    const auto st = producer.publish(topic, "k", "a payload of some length");
    if (st == ringflow::PublishStatus::ok) {
      ++accepted;
    } else {
      ASSERT_EQ(st, ringflow::PublishStatus::full);
      ++full;
    }
  }
  EXPECT_GT(full, 0U) << "the full disk never held publishing back";
  const auto mark = producer.last_mark();
  ringflow::test::bounded("stop() with a full disk", std::chrono::seconds(60),
                          [&] { engine.stop(); });
  EXPECT_EQ(handled.load(), accepted) << "stop() must finish every accepted event";
  EXPECT_EQ(producer.wait_durable(mark, in(1s)), ringflow::DurableStatus::failed);
}

}  // namespace

std::size_t segment_files(const fs::path& partition_dir) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(partition_dir))
    n += e.path().extension() == ".seg" ? 1 : 0;
  return n;
}

TEST(WalEngine, DiskRetentionDeletesWholeSegmentsAndARestartStartsAtTheOldestKept) {
  TempDir dir;
  auto cfg = wal_config(dir.path, ringflow::WalMode::os);
  cfg.partitions = 1;
  cfg.wal_retention_bytes = 2 * cfg.wal_segment_bytes;  // the segment being written + one
  constexpr std::size_t kEvents = 60000;                // ~7 segment files of 1 MiB
  const fs::path part_dir = dir.path / "p00000";
  std::vector<ringflow::StoredEvent> before;
  {
    ringflow::Engine engine(cfg);
    engine.set_log_sink(ringflow::null_log_sink());
    const auto topic = engine.add_topic("orders");
    engine.start();
    (void)publish_durably(engine, topic, kEvents, 1);
    engine.drain();
    // The writer applies retention about once a second, to segments it has synced and closed.
    const bool trimmed = eventually(
        [&] { return segment_files(part_dir) <= 2 && engine.stats().wal_segments_deleted >= 4; },
        10s);
    ASSERT_TRUE(trimmed) << segment_files(part_dir) << " segment files left, "
                         << engine.stats().wal_segments_deleted << " deleted";
    before = read_all(engine)[0];
    engine.stop();
  }
  ringflow::Engine engine(cfg);
  std::vector<std::string> logs;
  engine.set_log_sink([&](const ringflow::LogRecord& r) { logs.emplace_back(r.message); });
  const auto topic = engine.add_topic("orders");
  engine.start();
  const auto first = engine.log(0).first_offset();
  EXPECT_GT(first, 0U);
  EXPECT_EQ(engine.log(0).end_offset(), kEvents);
  const auto after = read_all(engine)[0];
  ASSERT_EQ(after.size(), kEvents - first);  // everything from the oldest kept file, no gap
  for (std::size_t i = 0; i < after.size(); ++i) {
    ASSERT_EQ(after[i].offset, first + i);
    const auto& pl = after[i].payload;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(pl.data()), pl.size()),
              "event-" + std::to_string(first + i + 1));
    EXPECT_EQ(after[i].topic, topic);
  }
  // What the first engine still held in memory from that offset is what came back.
  ASSERT_FALSE(before.empty());
  ASSERT_LE(before.front().offset, first);
  EXPECT_EQ(before.back().offset, after.back().offset);
  engine.stop();
}
