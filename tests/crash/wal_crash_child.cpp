// The process the WAL crash test kills: it recovers the directory, continues numbering after
// the highest event it finds, publishes keyed events as fast as it can, and reports on stdout
// how far they are durable ("D <n>": events 0..n-1 are acknowledged durable). Killed with
// SIGKILL at a random moment by tests/crash/wal_crash_test.cpp (or scripts/wal-crash.sh).
//
// With RINGFLOW_WAL_CRASH_EFFECTS=<file> set, a durable subscription ("effects") also appends
// the index of every event it finishes to that file (one write(2) per event, before its
// handler returns ok), so the test can tell which events a restart must deliver again.
//
// Usage: ringflow_wal_crash_child DIR MODE(os|interval|sync) [KEY_HEX]
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ringflow/ringflow.hpp"

namespace {

constexpr std::uint32_t kKeys = 16;

std::uint64_t parse_index(const ringflow::StoredEvent& e) {
  const std::string s(reinterpret_cast<const char*>(e.payload.data()), e.payload.size());
  return std::strtoull(s.c_str() + 1, nullptr, 10);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DIR os|interval|sync [KEY_ENV]\n", argv[0]);
    return 2;
  }
  ringflow::EngineConfig cfg;
  cfg.shards = 1;
  cfg.partitions = 4;
  cfg.pin_threads = false;
  cfg.wal_dir = argv[1];
  const std::string mode = argv[2];
  cfg.wal_mode = mode == "sync"       ? ringflow::WalMode::sync
                 : mode == "interval" ? ringflow::WalMode::interval
                                      : ringflow::WalMode::os;
  cfg.wal_interval = std::chrono::milliseconds(2);
  cfg.wal_segment_bytes = std::size_t{1} << 20;
  cfg.retention_bytes = std::size_t{64} << 20;  // as the checker: it numbers on from the max
  if (argc > 3) cfg.wal_key_env = argv[3];
  ringflow::Engine engine(cfg);
  engine.set_log_sink(ringflow::null_log_sink());
  const auto topic = engine.add_topic("orders");
  int effects = -1;
  if (const char* path = std::getenv("RINGFLOW_WAL_CRASH_EFFECTS"); path != nullptr) {
    effects = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (effects < 0) {
      std::perror(path);
      return 2;
    }
    ringflow::SubscribeOptions o;
    o.durable_name = "effects";
    engine.subscribe(
        "orders", ringflow::Handler([effects](const ringflow::EventView& e) {
          const auto p = e.payload();
          if (p.empty() || static_cast<char>(p[0]) != 'e') return ringflow::Outcome::ok();
          std::string line(reinterpret_cast<const char*>(p.data()) + 1, p.size() - 1);
          line += '\n';
          // The effect lands before the handler says ok (a kill after it is
          // still in the file; the page cache survives a process kill).
          if (::write(effects, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
            return ringflow::Outcome::retry();
          }
          return ringflow::Outcome::ok();
        }),
        o);
  }
  engine.start();
  std::uint64_t next = 0;
  for (std::uint32_t p = 0; p < engine.partitions(); ++p) {
    auto r = engine.reader(p);
    (void)r.seek(engine.log(p).first_offset());
    ringflow::StoredEvent e;
    while (r.next(e) == ringflow::ReadStatus::ok)
      next = std::max(next, parse_index(e) + 1);
  }
  std::printf("S %llu\n", static_cast<unsigned long long>(next));
  std::fflush(stdout);
  auto producer = engine.make_producer();
  std::uint64_t reported = next;
  ringflow::DurableMark pending{};
  std::uint64_t pending_upto = 0;
  for (std::uint64_t i = next;; ++i) {
    const std::string key = "k" + std::to_string(i % kKeys);
    const std::string payload = "e" + std::to_string(i);
    while (producer.publish(topic, key, payload) != ringflow::PublishStatus::ok) {
      // full: the shard (or the log's writer) is behind; try again
    }
    if (pending.count == 0) {
      pending = producer.last_mark();
      pending_upto = i + 1;
    } else if (producer.is_durable(pending)) {
      // One producer, one shard, one lane: everything before the mark is durable too.
      if (pending_upto > reported) {
        std::printf("D %llu\n", static_cast<unsigned long long>(pending_upto));
        std::fflush(stdout);
        reported = pending_upto;
      }
      pending = {};
    }
  }
}
