// Durable subscriptions (SubscribeOptions::durable_name): checkpoints written beside the
// write-ahead log, and the replay at start() of what a subscription had not finished.
// A crash is simulated in-process by copying the live directory (its files as a crash would
// leave them: events durable, checkpoint frozen at the first unfinished event), then starting
// a new engine on the copy.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/ringflow.hpp"
#include "store/checkpoint/checkpoint_store.hpp"
#include "support/bounded.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ringflow::test::bounded;

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("ringflow-wal-checkpoint-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

constexpr std::uint32_t kPartitions = 4;

ringflow::EngineConfig wal_config(const fs::path& dir) {
  ringflow::EngineConfig cfg;
  cfg.shards = 1;
  cfg.partitions = kPartitions;
  cfg.pin_threads = false;
  cfg.wal_mode = ringflow::WalMode::os;
  cfg.wal_dir = dir.string();
  cfg.wal_segment_bytes = std::size_t{1} << 20;
  return cfg;
}

std::int64_t in(std::chrono::milliseconds d) {
  return ringflow::now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// Keys spread over the partitions; the payload carries the sequence number.
std::string key_of(std::uint64_t seq) {
  return "key-" + std::to_string(seq % 7);
}
std::uint64_t seq_of(const ringflow::EventView& e) {
  const auto p = e.payload();
  return std::stoull(std::string(reinterpret_cast<const char*>(p.data()), p.size()));
}

// Publishes seq in [first, first + n) and waits until every one is durable.
void publish_durably(ringflow::Engine& engine, ringflow::TopicId topic, std::uint64_t first,
                     std::uint64_t n) {
  auto producer = engine.make_producer();
  for (std::uint64_t s = first; s < first + n; ++s) {
    const std::string payload = std::to_string(s);
    for (int tries = 0;; ++tries) {
      const auto st = producer.publish(topic, key_of(s), payload);
      if (st == ringflow::PublishStatus::ok) break;
      ASSERT_EQ(st, ringflow::PublishStatus::full);
      ASSERT_LT(tries, 1'000'000) << "ring stayed full";
      std::this_thread::yield();
    }
  }
  ASSERT_EQ(producer.wait_all_durable(in(30s)), ringflow::DurableStatus::durable);
}

// What one subscription's handler saw: every call in order, by key too.
struct Seen {
  std::mutex mu;
  std::vector<std::uint64_t> calls;
  std::map<std::string, std::vector<std::uint64_t>> by_key;
  std::set<std::uint64_t> finished;

  void add(const ringflow::EventView& e, bool ok) {
    const std::uint64_t s = seq_of(e);
    std::lock_guard lock(mu);
    calls.push_back(s);
    by_key[std::string(e.key())].push_back(s);
    if (ok) finished.insert(s);
  }
  std::size_t count() {
    std::lock_guard lock(mu);
    return calls.size();
  }
  std::size_t finished_count() {
    std::lock_guard lock(mu);
    return finished.size();
  }
};

// Waits (bounded) until `done()` holds; false on time-out.
template <class F>
bool eventually(F done, std::chrono::seconds limit = 30s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

ringflow::SubscribeOptions durable(const std::string& name) {
  ringflow::SubscribeOptions o;
  o.durable_name = name;
  return o;
}

std::optional<std::vector<std::uint64_t>> saved_checkpoint(const fs::path& dir,
                                                           const std::string& name) {
  const ringflow::LogSink quiet = ringflow::null_log_sink();
  return ringflow::detail::CheckpointStore(dir, &quiet).load(name, kPartitions);
}

void expect_subscription_laws(const ringflow::EngineStats& st) {
  for (const auto& s : st.subscriptions) {
    EXPECT_EQ(s.first_deliveries, s.ok + s.dead_lettered) << s.pattern << " " << s.durable_name;
    EXPECT_LE(s.replayed, s.first_deliveries);
  }
}

// A crashed directory: events 0..total-1 durable; the durable subscription "billing" finished
// every event below `stuck_from` and none from it on (its handler retried them while the
// copy was taken). Returns, by partition, the offset of the first unfinished event.
std::vector<std::uint64_t> make_crashed_copy(const fs::path& live, const fs::path& crashed,
                                             std::uint64_t total, std::uint64_t stuck_from) {
  std::vector<std::uint64_t> expected(kPartitions, 0);
  std::atomic<bool> release{false};
  Seen billing;
  ringflow::Engine engine(wal_config(live));
  engine.set_log_sink(ringflow::null_log_sink());
  const auto topic = engine.add_topic("orders");
  ringflow::SubscribeOptions o = durable("billing");
  o.max_attempts = 65535;
  o.retry_backoff = 5ms;
  o.retry_backoff_max = 20ms;
  engine.subscribe("orders", ringflow::Handler([&](const ringflow::EventView& e) {
                     const bool ok =
                         seq_of(e) < stuck_from || release.load(std::memory_order_acquire);
                     billing.add(e, ok);
                     return ok ? ringflow::Outcome::ok() : ringflow::Outcome::retry();
                   }),
                   o);
  engine.start();
  publish_durably(engine, topic, 0, total);
  // The first event of each partition the handler does not finish: where its checkpoint stops.
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    auto r = engine.reader(p);
    ringflow::StoredEvent e;
    expected[p] = engine.log(p).end_offset();
    while (r.next(e) == ringflow::ReadStatus::ok) {
      const std::uint64_t s = std::stoull(
          std::string(reinterpret_cast<const char*>(e.payload.data()), e.payload.size()));
      if (s >= stuck_from) {
        expected[p] = e.offset;
        break;
      }
    }
  }
  EXPECT_TRUE(eventually([&] { return billing.finished_count() == stuck_from; }));
  // The checkpoint the thread persists reaches the first unfinished event and stays there.
  EXPECT_TRUE(eventually([&] { return saved_checkpoint(live, "billing") == expected; }))
      << "checkpoint never reached the first unfinished events";
  fs::copy(live, crashed, fs::copy_options::recursive);
  release.store(true, std::memory_order_release);
  bounded("stop", 60s, [&] { engine.stop(); });
  EXPECT_EQ(billing.finished_count(), total);
  // Stopped with nothing in flight: the live directory's checkpoint is at the ends.
  std::vector<std::uint64_t> ends;
  for (std::uint32_t p = 0; p < kPartitions; ++p)
    ends.push_back(engine.log(p).end_offset());
  EXPECT_EQ(saved_checkpoint(live, "billing"), ends);
  return expected;
}

TEST(WalCheckpoint, AfterACleanStopNothingIsReplayedAndNewEventsContinue) {
  TempDir dir;
  Seen first;
  {
    ringflow::Engine engine(wal_config(dir.path));
    engine.set_log_sink(ringflow::null_log_sink());
    const auto topic = engine.add_topic("orders");
    engine.subscribe(
        "orders", [&](const ringflow::EventView& e) { first.add(e, true); }, durable("billing"));
    engine.start();
    publish_durably(engine, topic, 0, 1000);
    bounded("drain", 60s, [&] { engine.drain(); });
    bounded("stop", 60s, [&] { engine.stop(); });
    EXPECT_EQ(first.finished_count(), 1000U);
    std::vector<std::uint64_t> ends;
    for (std::uint32_t p = 0; p < kPartitions; ++p)
      ends.push_back(engine.log(p).end_offset());
    EXPECT_EQ(saved_checkpoint(dir.path, "billing"), ends);
  }
  Seen second;
  ringflow::Engine engine(wal_config(dir.path));
  engine.set_log_sink(ringflow::null_log_sink());
  const auto topic = engine.add_topic("orders");
  engine.subscribe(
      "orders", [&](const ringflow::EventView& e) { second.add(e, true); }, durable("billing"));
  engine.start();
  publish_durably(engine, topic, 1000, 20);
  bounded("drain", 60s, [&] { engine.drain(); });
  const auto st = engine.stats();
  EXPECT_EQ(st.replayed, 0U);
  EXPECT_EQ(st.subscriptions.at(0).durable_name, "billing");
  EXPECT_EQ(st.subscriptions.at(0).first_deliveries, 20U);
  {
    std::lock_guard lock(second.mu);
    ASSERT_EQ(second.calls.size(), 20U);
    for (const std::uint64_t s : second.calls)
      EXPECT_GE(s, 1000U) << "an event finished before the stop came again";
  }
  expect_subscription_laws(st);
  bounded("stop", 60s, [&] { engine.stop(); });
}

TEST(WalCheckpoint, UnfinishedEventsAreRedeliveredAfterACrashInKeyOrder) {
  TempDir live;
  TempDir crashed;
  fs::remove_all(crashed.path);
  constexpr std::uint64_t kTotal = 1000;
  constexpr std::uint64_t kStuckFrom = 900;
  const auto expected = make_crashed_copy(live.path, crashed.path, kTotal, kStuckFrom);
  if (HasFailure()) return;

  Seen billing;
  ringflow::Engine engine(wal_config(crashed.path));
  engine.set_log_sink(ringflow::null_log_sink());
  const auto topic = engine.add_topic("orders");
  engine.subscribe(
      "orders", [&](const ringflow::EventView& e) { billing.add(e, true); }, durable("billing"));
  engine.start();
  // Published after start(): reaches the subscription only after its replay.
  publish_durably(engine, topic, kTotal, 10);
  bounded("drain", 60s, [&] { engine.drain(); });
  const auto st = engine.stats();
  EXPECT_EQ(st.replayed, kTotal - kStuckFrom);
  EXPECT_EQ(st.subscriptions.at(0).replayed, kTotal - kStuckFrom);
  {
    std::lock_guard lock(billing.mu);
    // Every unfinished event came again, exactly those (the checkpoint was at them), and
    // before any new event.
    ASSERT_EQ(billing.calls.size(), kTotal - kStuckFrom + 10);
    std::set<std::uint64_t> replayed(billing.calls.begin(),
                                     billing.calls.begin() + (kTotal - kStuckFrom));
    EXPECT_EQ(replayed.size(), kTotal - kStuckFrom);
    EXPECT_EQ(*replayed.begin(), kStuckFrom);
    EXPECT_EQ(*replayed.rbegin(), kTotal - 1);
    for (const auto& [key, seqs] : billing.by_key) {
      for (std::size_t i = 1; i < seqs.size(); ++i)
        EXPECT_LT(seqs[i - 1], seqs[i]) << "key " << key << " out of order";
    }
  }
  expect_subscription_laws(st);
  bounded("stop", 60s, [&] { engine.stop(); });
  // A clean stop after the replay: the next start replays nothing.
  ringflow::Engine again(wal_config(crashed.path));
  again.set_log_sink(ringflow::null_log_sink());
  again.add_topic("orders");
  again.subscribe(
      "orders", [](const ringflow::EventView&) {}, durable("billing"));
  again.start();
  bounded("stop", 60s, [&] { again.stop(); });
  EXPECT_EQ(again.stats().replayed, 0U);
  (void)expected;
}

TEST(WalCheckpoint, ReplayedEventsGoThroughStagesRetriesAndDeadLetters) {
  TempDir live;
  TempDir crashed;
  fs::remove_all(crashed.path);
  constexpr std::uint64_t kTotal = 400;
  constexpr std::uint64_t kStuckFrom = 300;
  (void)make_crashed_copy(live.path, crashed.path, kTotal, kStuckFrom);
  if (HasFailure()) return;

  Seen billing;
  std::atomic<std::uint64_t> dead{0};
  std::atomic<std::uint64_t> filtered_seen{0};
  ringflow::Engine engine(wal_config(crashed.path));
  engine.set_log_sink(ringflow::null_log_sink());
  engine.add_topic("orders");
  const auto ticks = engine.add_topic("ticks");  // no subscriber
  // Events divisible by 10 are filtered out: they count as finished, never delivered.
  engine.pipeline().filter("no-tens", [&](const ringflow::EventView& e) {
    if (seq_of(e) % 10 == 0) {
      filtered_seen.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  });
  ringflow::SubscribeOptions o = durable("billing");
  o.max_attempts = 3;
  o.retry_backoff = 1ms;
  o.retry_backoff_max = 2ms;
  std::mutex attempts_mu;
  std::map<std::uint64_t, std::uint32_t> attempts;
  engine.subscribe("orders", ringflow::Handler([&](const ringflow::EventView& e) {
                     const std::uint64_t s = seq_of(e);
                     {
                       std::lock_guard lock(attempts_mu);
                       ++attempts[s];
                     }
                     if (s % 10 == 1) return ringflow::Outcome::retry();  // retried, then dead
                     if (s % 10 == 3 && e.attempt() == 1)
                       return ringflow::Outcome::retry();  // ok on 2nd
                     billing.add(e, true);
                     return ringflow::Outcome::ok();
                   }),
                   o);
  engine.subscribe("orders.dlq", [&](const ringflow::EventView&) {
    dead.fetch_add(1, std::memory_order_relaxed);
  });
  engine.start();
  // An event after start() is processed after the replay; drain() then waits for it and for
  // every retry chain started before it (the replay's).
  publish_durably(engine, ticks, 401, 1);
  bounded("drain", 60s, [&] { engine.drain(); });
  const auto st = engine.stats();
  // 100 unfinished: 10 filtered (x0), 10 dead-lettered after 3 attempts (x1), 80 finished.
  EXPECT_EQ(st.replayed, 90U);
  EXPECT_EQ(st.filtered, 0U) << "a replay is not new processing";
  EXPECT_EQ(filtered_seen.load(), 10U);
  EXPECT_EQ(dead.load(), 10U);
  EXPECT_EQ(st.dead_letters(ringflow::DeadLetterReason::retries_exhausted), 10U);
  EXPECT_EQ(st.subscriptions.at(0).ok, 80U);
  EXPECT_EQ(st.subscriptions.at(0).dead_lettered, 10U);
  {
    std::lock_guard lock(attempts_mu);
    for (std::uint64_t s = kStuckFrom; s < kTotal; ++s) {
      const std::uint32_t want = s % 10 == 0 ? 0 : s % 10 == 1 ? 3 : s % 10 == 3 ? 2 : 1;
      EXPECT_EQ(attempts[s], want) << "event " << s;
    }
  }
  expect_subscription_laws(st);
  bounded("stop", 60s, [&] { engine.stop(); });
  // Everything finished (dead letters included): nothing left to replay.
  ringflow::Engine again(wal_config(crashed.path));
  again.set_log_sink(ringflow::null_log_sink());
  again.add_topic("orders");
  again.add_topic("ticks");
  again.subscribe(
      "orders", [](const ringflow::EventView&) {}, durable("billing"));
  again.start();
  bounded("stop", 60s, [&] { again.stop(); });
  EXPECT_EQ(again.stats().replayed, 0U);
}

TEST(WalCheckpoint, ANonDurableSubscriptionOnTheSameTopicSeesNoReplay) {
  TempDir live;
  TempDir crashed;
  fs::remove_all(crashed.path);
  (void)make_crashed_copy(live.path, crashed.path, 300, 250);
  if (HasFailure()) return;

  Seen billing;
  Seen audit;
  Seen other_durable;
  ringflow::Engine engine(wal_config(crashed.path));
  engine.set_log_sink(ringflow::null_log_sink());
  const auto topic = engine.add_topic("orders");
  engine.subscribe(
      "orders", [&](const ringflow::EventView& e) { billing.add(e, true); }, durable("billing"));
  engine.subscribe("orders", [&](const ringflow::EventView& e) { audit.add(e, true); });
  // A durable subscription new to this directory: starts at the end, no replay.
  engine.subscribe(
      "orders", [&](const ringflow::EventView& e) { other_durable.add(e, true); },
      durable("reports"));
  engine.start();
  publish_durably(engine, topic, 300, 5);
  bounded("drain", 60s, [&] { engine.drain(); });
  EXPECT_EQ(billing.count(), 50U + 5U);
  EXPECT_EQ(audit.count(), 5U);
  EXPECT_EQ(other_durable.count(), 5U);
  const auto st = engine.stats();
  EXPECT_EQ(st.subscriptions.at(0).replayed, 50U);
  EXPECT_EQ(st.subscriptions.at(1).replayed, 0U);
  EXPECT_EQ(st.subscriptions.at(2).replayed, 0U);
  expect_subscription_laws(st);
  bounded("stop", 60s, [&] { engine.stop(); });
}

TEST(WalCheckpoint, ReplayFromStartDeliversTheWholeLogOnAFirstStart) {
  TempDir dir;
  {
    ringflow::Engine engine(wal_config(dir.path));
    engine.set_log_sink(ringflow::null_log_sink());
    const auto topic = engine.add_topic("orders");
    engine.start();
    publish_durably(engine, topic, 0, 120);
    bounded("stop", 60s, [&] { engine.stop(); });
  }
  Seen sourced;
  ringflow::Engine engine(wal_config(dir.path));
  engine.set_log_sink(ringflow::null_log_sink());
  const auto topic = engine.add_topic("orders");
  ringflow::SubscribeOptions o = durable("projection");
  o.replay_from_start = true;
  engine.subscribe(
      "orders", [&](const ringflow::EventView& e) { sourced.add(e, true); }, o);
  engine.start();
  publish_durably(engine, topic, 120, 1);
  bounded("drain", 60s, [&] { engine.drain(); });
  EXPECT_EQ(sourced.count(), 121U);
  EXPECT_EQ(engine.stats().replayed, 120U);
  bounded("stop", 60s, [&] { engine.stop(); });
}

TEST(WalCheckpoint, DrainRightAfterStartWaitsForTheReplay) {
  // Nothing is published after the restart: drain() must still cover the replay, which is in
  // flight from start() on.
  TempDir dir;
  {
    ringflow::Engine engine(wal_config(dir.path));
    engine.set_log_sink(ringflow::null_log_sink());
    const auto topic = engine.add_topic("orders");
    engine.start();
    publish_durably(engine, topic, 0, 2000);
    bounded("stop", 60s, [&] { engine.stop(); });
  }
  Seen sourced;
  ringflow::Engine engine(wal_config(dir.path));
  engine.set_log_sink(ringflow::null_log_sink());
  engine.add_topic("orders");
  ringflow::SubscribeOptions o = durable("projection");
  o.replay_from_start = true;
  engine.subscribe(
      "orders", [&](const ringflow::EventView& e) { sourced.add(e, true); }, o);
  engine.start();
  bounded("drain", 60s, [&] { engine.drain(); });
  EXPECT_EQ(sourced.count(), 2000U) << "drain() returned before the replay had finished";
  EXPECT_EQ(engine.stats().replayed, 2000U);
  bounded("stop", 60s, [&] { engine.stop(); });
}

struct Captured {
  std::mutex mu;
  std::vector<std::string> lines;
  ringflow::LogSink sink() {
    return [this](const ringflow::LogRecord& r) {
      std::lock_guard lock(mu);
      lines.push_back(std::string(ringflow::to_string(r.level)) + " " + std::string(r.component) +
                      ": " + std::string(r.message));
    };
  }
  bool has(const std::string& part) {
    std::lock_guard lock(mu);
    for (const auto& l : lines)
      if (l.find(part) != std::string::npos) return true;
    return false;
  }
};

TEST(WalCheckpoint, ACorruptCheckpointIsLoggedAndTreatedAsAbsent) {
  for (const char* damage : {"torn", "bit flip", "garbage"}) {
    SCOPED_TRACE(damage);
    TempDir dir;
    {
      ringflow::Engine engine(wal_config(dir.path));
      engine.set_log_sink(ringflow::null_log_sink());
      const auto topic = engine.add_topic("orders");
      engine.subscribe(
          "orders", [](const ringflow::EventView&) {}, durable("billing"));
      engine.start();
      publish_durably(engine, topic, 0, 50);
      bounded("stop", 60s, [&] { engine.stop(); });
    }
    const fs::path file = dir.path / "checkpoints" / "billing.ckpt";
    ASSERT_TRUE(fs::exists(file));
    const auto size = fs::file_size(file);
    if (std::string(damage) == "torn") {
      fs::resize_file(file, size / 2);
    } else if (std::string(damage) == "bit flip") {
      std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(20);
      char c = 0;
      f.read(&c, 1);
      c ^= 0x10;
      f.seekp(20);
      f.write(&c, 1);
    } else {
      std::ofstream(file, std::ios::trunc) << "not a checkpoint at all, but long enough";
    }
    Captured cap;
    Seen billing;
    ringflow::Engine engine(wal_config(dir.path));
    engine.set_log_sink(cap.sink());
    const auto topic = engine.add_topic("orders");
    engine.subscribe(
        "orders", [&](const ringflow::EventView& e) { billing.add(e, true); }, durable("billing"));
    bounded("start", 60s, [&] { engine.start(); });
    EXPECT_TRUE(cap.has("warn checkpoint: checkpoint file " + file.string()));
    EXPECT_TRUE(cap.has("is unusable"));
    publish_durably(engine, topic, 50, 3);
    bounded("drain", 60s, [&] { engine.drain(); });
    EXPECT_EQ(engine.stats().replayed, 0U);  // as on a first start: from the end
    EXPECT_EQ(billing.count(), 3U);
    bounded("stop", 60s, [&] { engine.stop(); });
    // The stop wrote a good one again.
    EXPECT_TRUE(saved_checkpoint(dir.path, "billing").has_value());
  }
}

TEST(WalCheckpoint, DurableNamesAreCheckedAtSubscribe) {
  const auto noop = [](const ringflow::EventView&) {};
  {
    ringflow::EngineConfig cfg;
    cfg.shards = 1;
    cfg.pin_threads = false;  // wal.mode = off
    ringflow::Engine engine(cfg);
    engine.add_topic("orders");
    try {
      engine.subscribe("orders", noop, durable("billing"));
      ADD_FAILURE() << "durable_name without a write-ahead log was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("write-ahead log"), std::string::npos) << e.what();
    }
  }
  TempDir dir;
  ringflow::Engine engine(wal_config(dir.path));
  engine.set_log_sink(ringflow::null_log_sink());
  engine.add_topic("orders");
  engine.subscribe("orders", noop, durable("billing"));
  try {
    engine.subscribe("orders", noop, durable("billing"));
    ADD_FAILURE() << "a duplicate durable_name was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("already used"), std::string::npos) << e.what();
  }
  for (const std::string& bad : {std::string("a/b"), std::string(".."), std::string(65, 'x'),
                                 std::string("with space"), std::string("naïve")}) {
    EXPECT_THROW(engine.subscribe("orders", noop, durable(bad)), std::invalid_argument) << bad;
  }
  ringflow::SubscribeOptions nameless;
  nameless.replay_from_start = true;  // needs a name
  EXPECT_THROW(engine.subscribe("orders", noop, nameless), std::invalid_argument);
  EXPECT_NO_THROW(engine.subscribe("orders", noop, durable(std::string(64, 'y'))));
  EXPECT_NO_THROW(engine.subscribe("orders", noop, durable("A-z_0.9")));
  engine.start();
  bounded("stop", 60s, [&] { engine.stop(); });
}

}  // namespace
