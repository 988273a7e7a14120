// Process crashes: a child publishes under load with the write-ahead log on and reports how far
// its events are acknowledged durable; the test kills it with SIGKILL at a random moment,
// restarts on the same directory and checks that every acknowledged event is there exactly
// once, per-key order held, offsets continue, and nothing was invented. Rounds per mode:
// RINGFLOW_WAL_CRASH_ROUNDS (CI: a few; scripts/wal-crash.sh runs hundreds).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ringflow/ringflow.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;

struct ChildRun {
  std::uint64_t start = 0;  // the index it continued from
  std::uint64_t acked = 0;  // events below this were acknowledged durable
  bool exited_on_its_own = false;
};

// Spawns the child, lets it run until `kill_after_ms` after its first durable report (60 s at
// most), SIGKILLs it and returns what it reported.
ChildRun run_child(const fs::path& dir, const char* mode, int kill_after_ms) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  const std::string d = dir.string();
  const char* argv[] = {RINGFLOW_WAL_CRASH_CHILD, d.c_str(), mode, nullptr};
  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, RINGFLOW_WAL_CRASH_CHILD, &fa, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("posix_spawn failed");
  }
  ChildRun out;
  std::string buf;
  const auto t0 = std::chrono::steady_clock::now();
  auto kill_at = t0 + std::chrono::seconds(60);  // bound: the child must report in time
  bool started = false;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= kill_at) break;
    pollfd pfd{fds[0], POLLIN, 0};
    const int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - now).count());
    if (::poll(&pfd, 1, std::max(1, left)) <= 0) continue;
    char chunk[4096];
    const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n <= 0) {
      out.exited_on_its_own = true;
      break;
    }
    buf.append(chunk, static_cast<std::size_t>(n));
    std::size_t nl = 0;
    while ((nl = buf.find('\n')) != std::string::npos) {
      const std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line.rfind("S ", 0) == 0) {
        out.start = std::stoull(line.substr(2));
        out.acked = out.start;  // nothing of this run acknowledged yet
        started = true;
      } else if (line.rfind("D ", 0) == 0) {
        // The kill comes a random time after the first acknowledgement, so every round has
        // acknowledged events to check, however slow the machine is.
        if (out.acked == out.start) {
          kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(kill_after_ms);
        }
        out.acked = std::max<std::uint64_t>(out.acked, std::stoull(line.substr(2)));
      }
    }
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  if (!started) throw std::runtime_error("the child never reported its start");
  if (out.acked == out.start) {
    throw std::runtime_error("the child acknowledged nothing durable within 60 s");
  }
  return out;
}

struct Found {
  std::uint64_t events = 0;
  std::set<std::uint64_t> indexes;
  std::string problem;  // empty: consistent
};

// Recovers `dir` in this process and checks the laws over what it holds.
Found recover_and_check(const fs::path& dir, ringflow::WalMode mode) {
  ringflow::EngineConfig cfg;
  cfg.shards = 1;
  cfg.partitions = 4;
  cfg.pin_threads = false;
  cfg.wal_dir = dir.string();
  cfg.wal_mode = mode;
  cfg.wal_segment_bytes = std::size_t{1} << 20;
  cfg.retention_bytes = std::size_t{64} << 20;  // the whole run stays in memory to be checked
  ringflow::Engine engine(cfg);
  engine.set_log_sink(ringflow::null_log_sink());
  const auto topic = engine.add_topic("orders");
  engine.start();
  Found f;
  std::map<std::string, std::uint64_t> last_of_key;
  for (std::uint32_t p = 0; p < engine.partitions(); ++p) {
    auto r = engine.reader(p);
    std::uint64_t expect = engine.log(p).first_offset();
    (void)r.seek(expect);
    ringflow::StoredEvent e;
    while (r.next(e) == ringflow::ReadStatus::ok) {
      ++f.events;
      if (e.offset != expect) f.problem = "offsets not consecutive";
      expect = e.offset + 1;
      const std::string payload(reinterpret_cast<const char*>(e.payload.data()), e.payload.size());
      if (e.key == "probe" && payload == "probe") continue;  // this checker's own events
      if (payload.size() < 2 || payload[0] != 'e') {
        f.problem = "invented payload \"" + payload + "\"";
        continue;
      }
      const std::uint64_t i = std::stoull(payload.substr(1));
      if (e.key != "k" + std::to_string(i % 16)) f.problem = "key does not match its event";
      if (!f.indexes.insert(i).second) f.problem = "event " + std::to_string(i) + " twice";
      const auto it = last_of_key.find(e.key);
      if (it != last_of_key.end() && it->second >= i) f.problem = "per-key order broken";
      last_of_key[e.key] = i;
    }
  }
  // Offsets continue after the recovered end.
  std::vector<std::uint64_t> ends;
  for (std::uint32_t p = 0; p < engine.partitions(); ++p)
    ends.push_back(engine.log(p).end_offset());
  auto producer = engine.make_producer();
  if (producer.publish(topic, "probe", "probe") != ringflow::PublishStatus::ok) {
    f.problem = "could not publish after recovery";
  }
  engine.drain();
  std::uint64_t grown = 0;
  for (std::uint32_t p = 0; p < engine.partitions(); ++p)
    grown += engine.log(p).end_offset() - ends[p];
  if (grown != 1) f.problem = "offsets did not continue";
  engine.stop();
  return f;
}

void crash_rounds(ringflow::WalMode mode, const char* mode_name) {
  const char* env = std::getenv("RINGFLOW_WAL_CRASH_ROUNDS");
  const int rounds = env != nullptr ? std::atoi(env) : 4;
  const unsigned seed = std::random_device{}();
  std::printf("wal crash: mode %s, %d rounds, seed %u\n", mode_name, rounds, seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay(5, 200);
  const fs::path dir = fs::temp_directory_path() / ("ringflow-wal-crash-" + std::string(mode_name) +
                                                    "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // Acknowledged durable: [start, acked) of every run on the current directory. (Below a
  // run's start, only what earlier runs acknowledged is promised: partitions are written
  // independently, so a crash may keep a later event of one partition and lose an earlier,
  // unacknowledged one of another.)
  std::vector<std::pair<std::uint64_t, std::uint64_t>> acked;
  std::uint64_t total_checked = 0;
  for (int round = 0; round < rounds; ++round) {
    if (round % 8 == 0) {  // a fresh directory now and then: the checked history stays small
      fs::remove_all(dir);
      acked.clear();
    }
    const ChildRun run = run_child(dir, mode_name, delay(rng));
    ASSERT_FALSE(run.exited_on_its_own) << "round " << round << ": the child died by itself";
    acked.emplace_back(run.start, run.acked);
    // The child's probe events (one per recovery) are not numbered; the rest must hold.
    const Found f = recover_and_check(dir, mode);
    ASSERT_EQ(f.problem, "") << "round " << round << " (seed " << seed << ")";
    std::uint64_t checked = 0;
    for (const auto& [from, to] : acked) {
      for (std::uint64_t i = from; i < to; ++i, ++checked) {
        ASSERT_EQ(f.indexes.count(i), 1U)
            << "round " << round << ": acknowledged event " << i << " is missing (run acked "
            << from << ".." << to << ", seed " << seed << ")";
      }
    }
    total_checked += checked;
    ASSERT_LE(checked, f.events) << "round " << round;
  }
  std::printf("wal crash: mode %s: %llu acknowledged events checked present, seed %u\n", mode_name,
              static_cast<unsigned long long>(total_checked), seed);
  EXPECT_GT(total_checked, 0U) << "no event was ever acknowledged durable: nothing was tested";
  fs::remove_all(dir);
}

// Durable subscriptions across kills: the child's durable subscription appends every event it
// finishes to an effects file; after each kill, an engine on the directory must deliver again
// (replay) every recovered event that is not in that file, each key's in order.
TEST(WalCrash, ADurableSubscriptionGetsEveryUnfinishedEventAgain) {
  const char* env = std::getenv("RINGFLOW_WAL_CRASH_ROUNDS");
  const int rounds = env != nullptr ? std::atoi(env) : 4;
  const unsigned seed = std::random_device{}();
  std::printf("wal crash (durable subscription): %d rounds, seed %u\n", rounds, seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay(5, 200);
  const fs::path dir =
      fs::temp_directory_path() / ("ringflow-wal-crash-durable-" + std::to_string(::getpid()));
  const fs::path effects = dir.string() + ".effects";
  fs::remove_all(dir);
  fs::remove(effects);
  ::setenv("RINGFLOW_WAL_CRASH_EFFECTS", effects.c_str(), 1);
  std::uint64_t replayed_total = 0;
  for (int round = 0; round < rounds; ++round) {
    const ChildRun run = run_child(dir, "os", delay(rng));
    ASSERT_FALSE(run.exited_on_its_own) << "round " << round << ": the child died by itself";
    std::set<std::uint64_t> finished;
    {
      std::ifstream in(effects);
      std::string line;
      while (std::getline(in, line)) {
        // A last line without its newline was cut by the kill: its handler had not returned.
        if (in.eof()) break;
        finished.insert(std::stoull(line));
      }
    }
    ringflow::EngineConfig cfg;
    cfg.shards = 1;
    cfg.partitions = 4;
    cfg.pin_threads = false;
    cfg.wal_dir = dir.string();
    cfg.wal_mode = ringflow::WalMode::os;
    cfg.wal_segment_bytes = std::size_t{1} << 20;
    cfg.retention_bytes = std::size_t{64} << 20;
    std::mutex mu;
    std::set<std::uint64_t> again;
    std::map<std::string, std::uint64_t> last_of_key;
    std::string problem;
    {
      ringflow::Engine engine(cfg);
      engine.set_log_sink(ringflow::null_log_sink());
      const auto topic = engine.add_topic("orders");
      ringflow::SubscribeOptions o;
      o.durable_name = "effects";
      engine.subscribe(
          "orders",
          [&](const ringflow::EventView& e) {
            const auto p = e.payload();
            if (p.empty() || static_cast<char>(p[0]) != 'e') return;
            const std::uint64_t i =
                std::stoull(std::string(reinterpret_cast<const char*>(p.data()) + 1, p.size() - 1));
            std::lock_guard lock(mu);
            again.insert(i);
            const std::string key(e.key());
            const auto it = last_of_key.find(key);
            if (it != last_of_key.end() && it->second >= i) problem = "per-key order broken";
            last_of_key[key] = i;
          },
          o);
      engine.start();
      // Processed after the replay: drain() then covers it.
      auto producer = engine.make_producer();
      ASSERT_EQ(producer.publish(topic, "probe", "probe"), ringflow::PublishStatus::ok);
      engine.drain();
      std::lock_guard lock(mu);
      ASSERT_EQ(problem, "") << "round " << round << " (seed " << seed << ")";
      std::uint64_t recovered = 0;
      for (std::uint32_t p = 0; p < engine.partitions(); ++p) {
        auto r = engine.reader(p);
        (void)r.seek(engine.log(p).first_offset());
        ringflow::StoredEvent e;
        while (r.next(e) == ringflow::ReadStatus::ok) {
          const std::string payload(reinterpret_cast<const char*>(e.payload.data()),
                                    e.payload.size());
          if (payload.empty() || payload[0] != 'e') continue;
          const std::uint64_t i = std::stoull(payload.substr(1));
          ++recovered;
          ASSERT_TRUE(finished.count(i) == 1 || again.count(i) == 1)
              << "round " << round << ": event " << i
              << " was neither finished before the kill nor delivered again (seed " << seed << ")";
        }
      }
      ASSERT_GT(recovered, 0U) << "round " << round;
      replayed_total += engine.stats().replayed;
      engine.stop();
    }
    // Everything is finished now: the effects file holds it (as the child's handler would).
    std::ofstream out(effects, std::ios::app);
    for (const std::uint64_t i : again)
      out << i << "\n";
  }
  ::unsetenv("RINGFLOW_WAL_CRASH_EFFECTS");
  std::printf("wal crash (durable subscription): %llu events delivered again, seed %u\n",
              static_cast<unsigned long long>(replayed_total), seed);
  fs::remove_all(dir);
  fs::remove(effects);
}

TEST(WalCrash, OsModeKeepsEveryAcknowledgedEventAcrossKills) {
  crash_rounds(ringflow::WalMode::os, "os");
}
TEST(WalCrash, IntervalModeKeepsEveryAcknowledgedEventAcrossKills) {
  crash_rounds(ringflow::WalMode::interval, "interval");
}
TEST(WalCrash, SyncModeKeepsEveryAcknowledgedEventAcrossKills) {
  crash_rounds(ringflow::WalMode::sync, "sync");
}

}  // namespace
