// The write-ahead log's cost, in one run, against its controls: WAL off (the same engine in
// memory) and disk_control (plain pwrite + fdatasync of group-commit sizes on the same disk).
//
//   ringflow_durability_bench --out results/wal --dir /var/tmp/rf-wal [--seconds 3]
//       [--rate 250000] [--latency-seconds 60] [--recovery-mib 512]
//
// Rows (summary.json): max_throughput per mode (off, os, interval, sync, os_encrypted);
// latency_at_rate per mode (publish -> handler, p50..p99.99; sync: publish -> durable ack too);
// disk_control (fdatasync latency); recovery (GiB/s scanned and rebuilt, page cache warm, and
// cold when the page cache can be dropped).
#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/ringflow.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Args {
  fs::path out = "results/local/wal";
  fs::path dir = "/var/tmp/ringflow-durability-bench";
  double seconds = 3;
  double rate = 250000;
  double latency_seconds = 60;
  std::size_t recovery_mib = 512;
  std::size_t payload = 64;
};

std::int64_t now() {
  return ringflow::now_ns();
}

struct Percentiles {
  std::int64_t p50 = 0, p99 = 0, p999 = 0, p9999 = 0, max = 0;
  double mean = 0;
};

Percentiles percentiles(std::vector<std::int64_t>& v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  const auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
  };
  p.p50 = at(0.5);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.p9999 = at(0.9999);
  p.max = v.back();
  double sum = 0;
  for (auto x : v)
    sum += static_cast<double>(x);
  p.mean = sum / static_cast<double>(v.size());
  return p;
}

ringflow::EngineConfig config_for(const std::string& mode, const fs::path& dir) {
  ringflow::EngineConfig cfg;
  cfg.shards = 1;
  cfg.partitions = 4;
  cfg.max_payload_bytes = 128;
  cfg.retention_bytes = std::size_t{64} << 20;
  if (mode == "off") return cfg;
  cfg.wal_dir = dir.string();
  cfg.wal_mode = mode == "sync"       ? ringflow::WalMode::sync
                 : mode == "interval" ? ringflow::WalMode::interval
                                      : ringflow::WalMode::os;
  if (mode == "os_encrypted") cfg.wal_key_env = "RINGFLOW_BENCH_WAL_KEY";
  return cfg;
}

// Publishes as fast as the engine takes events for `seconds`; returns the row.
json max_throughput(const Args& a, const std::string& mode) {
  fs::remove_all(a.dir);
  ringflow::Engine engine(config_for(mode, a.dir));
  const auto topic = engine.add_topic("orders");
  std::atomic<std::uint64_t> handled{0};
  engine.subscribe("orders", [&](const ringflow::EventView&) {
    handled.store(handled.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  });
  engine.start();
  auto producer = engine.make_producer();
  const std::string payload(a.payload, 'x');
  std::uint64_t published = 0;
  std::uint64_t full = 0;
  char key[16];
  const std::int64_t t0 = now();
  const std::int64_t end = t0 + static_cast<std::int64_t>(a.seconds * 1e9);
  while (now() < end) {
    for (int i = 0; i < 256; ++i) {
      std::snprintf(key, sizeof key, "k%u", static_cast<unsigned>(published % 1024));
      if (producer.publish(topic, key, payload) == ringflow::PublishStatus::ok) {
        ++published;
      } else {
        ++full;
      }
    }
  }
  const std::int64_t t_pub = now();
  const auto st = producer.wait_all_durable(now() + 60'000'000'000);
  const std::int64_t t_durable = now();
  engine.drain();
  const double secs = static_cast<double>(t_pub - t0) / 1e9;
  json row{{"scenario", "max_throughput"}, {"mode", mode},
           {"payload_bytes", a.payload},   {"published", published},
           {"full_retries", full},         {"achieved_eps", static_cast<double>(published) / secs},
           {"handled", handled.load()}};
  if (st == ringflow::DurableStatus::durable) {
    row["durable_eps"] =
        static_cast<double>(published) / (static_cast<double>(t_durable - t0) / 1e9);
  }
  engine.stop();
  const auto s = engine.stats();
  row["wal_bytes_written"] = s.wal_bytes_written;
  row["wal_syncs"] = s.wal_syncs;
  std::printf("max_throughput %-12s %10.0f ev/s\n", mode.c_str(),
              row["achieved_eps"].get<double>());
  return row;
}

// Open-loop at `rate` for `latency_seconds`: publish -> handler latency from the intended send
// time (no coordinated omission); in WAL modes also publish -> durable acknowledgement.
json latency_at_rate(const Args& a, const std::string& mode, double seconds) {
  fs::remove_all(a.dir);
  ringflow::Engine engine(config_for(mode, a.dir));
  const auto topic = engine.add_topic("orders");
  const std::size_t expected = static_cast<std::size_t>(a.rate * seconds) + 1024;
  std::vector<std::int64_t> lat;
  lat.reserve(expected);
  engine.subscribe("orders", [&](const ringflow::EventView& e) {
    std::int64_t intended = 0;
    std::memcpy(&intended, e.payload().data(), sizeof intended);
    lat.push_back(now() - intended);  // one shard thread: no synchronisation needed
  });
  engine.start();
  auto producer = engine.make_producer();
  std::string payload(a.payload, 'x');
  // Durable-ack tracker: marks with their intended times, checked by another thread.
  struct Pending {
    ringflow::DurableMark mark;
    std::int64_t intended;
  };
  const bool track = mode != "off";
  std::vector<Pending> pending(track ? expected : 0);
  std::atomic<std::size_t> pending_n{0};
  std::atomic<bool> done{false};
  std::vector<std::int64_t> acks;
  acks.reserve(track ? expected : 0);
  std::thread tracker;
  if (track) {
    tracker = std::thread([&] {
      std::size_t i = 0;
      for (;;) {
        // Acquire: pairs with the producer's release; the entry is written.
        const std::size_t n = pending_n.load(std::memory_order_acquire);
        if (i == n) {
          if (done.load(std::memory_order_acquire) && i == pending_n.load()) break;
          std::this_thread::yield();
          continue;
        }
        while (!producer.is_durable(pending[i].mark))
          std::this_thread::yield();
        const std::int64_t t = now();
        for (; i < n && producer.is_durable(pending[i].mark); ++i)
          acks.push_back(t - pending[i].intended);
      }
    });
  }
  const double interval = 1e9 / a.rate;
  const std::int64_t t0 = now() + 1'000'000;
  std::uint64_t sent = 0;
  std::uint64_t refused = 0;
  char key[16];
  for (;; ++sent) {
    const std::int64_t intended =
        t0 + static_cast<std::int64_t>(static_cast<double>(sent) * interval);
    if (intended - t0 > static_cast<std::int64_t>(seconds * 1e9)) break;
    while (now() < intended) {
    }
    std::memcpy(payload.data(), &intended, sizeof intended);
    std::snprintf(key, sizeof key, "k%u", static_cast<unsigned>(sent % 1024));
    ringflow::PublishStatus st;
    while ((st = producer.publish(topic, key, payload)) == ringflow::PublishStatus::full)
      ++refused;
    if (track && st == ringflow::PublishStatus::ok) {
      const std::size_t n = pending_n.load(std::memory_order_relaxed);
      if (n < pending.size()) {
        pending[n] = Pending{producer.last_mark(), intended};
        pending_n.store(n + 1, std::memory_order_release);
      }
    }
  }
  engine.drain();
  done.store(true, std::memory_order_release);
  if (tracker.joinable()) tracker.join();
  engine.stop();
  const Percentiles p = percentiles(lat);
  json row{{"scenario", "latency_at_rate"},
           {"mode", mode},
           {"offered_eps", a.rate},
           {"seconds", seconds},
           {"events", lat.size()},
           {"full_retries", refused},
           {"achieved_eps", static_cast<double>(lat.size()) / seconds},
           {"p50_ns", p.p50},
           {"p99_ns", p.p99},
           {"p999_ns", p.p999},
           {"p9999_ns", p.p9999},
           {"max_ns", p.max},
           {"mean_ns", p.mean},
           {"lost", sent > lat.size() ? sent - lat.size() : 0}};
  if (track) {
    const Percentiles d = percentiles(acks);
    row["durable_ack_p50_ns"] = d.p50;
    row["durable_ack_p99_ns"] = d.p99;
    row["durable_ack_p999_ns"] = d.p999;
    row["durable_acks"] = acks.size();
  }
  const auto s = engine.stats();
  row["wal_bytes_written"] = s.wal_bytes_written;
  row["wal_syncs"] = s.wal_syncs;
  std::printf(
      "latency_at_rate %-12s p50 %8lld p99 %9lld p99.99 %9lld ns%s\n", mode.c_str(),
      static_cast<long long>(p.p50), static_cast<long long>(p.p99), static_cast<long long>(p.p9999),
      track ? (" ack p99 " + std::to_string(row["durable_ack_p99_ns"].get<std::int64_t>())).c_str()
            : "");
  return row;
}

// Plain pwrite + fdatasync of `bytes` per call, on the same file system: the disk's own cost.
json disk_control(const Args& a, std::size_t bytes, int rounds) {
  fs::create_directories(a.dir);
  const fs::path file = a.dir / "disk_control.dat";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("disk_control: cannot open " + file.string());
  (void)::posix_fallocate(fd, 0, static_cast<off_t>(bytes) * rounds);
  (void)::fdatasync(fd);
  std::vector<char> buf(bytes, 'd');
  std::vector<std::int64_t> lat;
  for (int i = 0; i < rounds; ++i) {
    const std::int64_t t = now();
    if (::pwrite(fd, buf.data(), bytes, static_cast<off_t>(bytes) * i) !=
        static_cast<ssize_t>(bytes)) {
      break;
    }
    (void)::fdatasync(fd);
    lat.push_back(now() - t);
  }
  ::close(fd);
  fs::remove(file);
  const Percentiles p = percentiles(lat);
  std::printf("disk_control %7zu B: fdatasync p50 %lld p99 %lld ns\n", bytes,
              static_cast<long long>(p.p50), static_cast<long long>(p.p99));
  return json{{"scenario", "disk_control"},
              {"bytes_per_sync", bytes},
              {"rounds", lat.size()},
              {"p50_ns", p.p50},
              {"p99_ns", p.p99},
              {"p999_ns", p.p999},
              {"max_ns", p.max}};
}

bool drop_page_cache() {
  ::sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  if (!f) return false;
  f << "3\n";
  f.flush();
  return static_cast<bool>(f);
}

json recovery(const Args& a) {
  fs::remove_all(a.dir);
  auto cfg = config_for("os", a.dir);
  std::uint64_t published = 0;
  {
    ringflow::Engine engine(cfg);
    const auto topic = engine.add_topic("orders");
    engine.start();
    auto producer = engine.make_producer();
    const std::string payload(a.payload, 'r');
    const std::uint64_t target_bytes = std::uint64_t{a.recovery_mib} << 20;
    char key[16];
    while (engine.stats().wal_bytes_written < target_bytes) {
      for (int i = 0; i < 65536; ++i) {
        std::snprintf(key, sizeof key, "k%u", static_cast<unsigned>(published % 1024));
        while (producer.publish(topic, key, payload) != ringflow::PublishStatus::ok) {
        }
        ++published;
      }
      (void)producer.wait_all_durable(now() + 60'000'000'000);
    }
    engine.stop();
  }
  const auto timed_start = [&](double& seconds) {
    ringflow::Engine engine(cfg);
    engine.set_log_sink(ringflow::null_log_sink());
    engine.add_topic("orders");
    const std::int64_t t = now();
    engine.start();
    seconds = static_cast<double>(now() - t) / 1e9;
    std::uint64_t events = 0;
    for (std::uint32_t p = 0; p < engine.partitions(); ++p)
      events += engine.log(p).end_offset();
    engine.stop();
    return events;
  };
  std::uint64_t bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(a.dir)) {
    if (e.is_regular_file() && e.path().extension() == ".seg") bytes += e.file_size();
  }
  double warm = 0;
  (void)timed_start(warm);  // first pass warms the page cache (the files were just written)
  const std::uint64_t events = timed_start(warm);
  // Scanned bytes: the records, not the preallocated tail of the last segments.
  std::uint64_t written = 0;
  {
    // Every record frame: 24 bytes + the record (80 + key + payload, padded to 8).
    const std::size_t key_bytes = 4;  // "k" + up to 3 digits, padded with the payload
    written = events * (24 + ((80 + key_bytes + a.payload + 7) & ~std::size_t{7}));
  }
  json row{{"scenario", "recovery"},
           {"mode", "os"},
           {"events", events},
           {"segment_file_bytes", bytes},
           {"record_bytes", written},
           {"warm_seconds", warm},
           {"recovery_gib_per_s", static_cast<double>(written) / warm / double(1 << 30)}};
  if (drop_page_cache()) {
    double cold = 0;
    (void)timed_start(cold);
    row["cold_seconds"] = cold;
    row["cold_recovery_gib_per_s"] = static_cast<double>(written) / cold / double(1 << 30);
  } else {
    row["cold_recovery_gib_per_s"] = nullptr;  // not measurable here (no permission)
  }
  std::printf("recovery: %llu events, %.2f GiB/s warm\n", static_cast<unsigned long long>(events),
              row["recovery_gib_per_s"].get<double>());
  fs::remove_all(a.dir);
  return row;
}

std::string command_output(const char* cmd) {
  std::string out;
  if (FILE* f = ::popen(cmd, "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, f) != nullptr)
      out += buf;
    ::pclose(f);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  std::string command;
  for (int i = 0; i < argc; ++i)
    command += (i != 0 ? " " : "") + std::string(argv[i]);
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--out") {
      a.out = value();
    } else if (k == "--dir") {
      a.dir = value();
    } else if (k == "--seconds") {
      a.seconds = std::stod(value());
    } else if (k == "--rate") {
      a.rate = std::stod(value());
    } else if (k == "--latency-seconds") {
      a.latency_seconds = std::stod(value());
    } else if (k == "--recovery-mib") {
      a.recovery_mib = std::stoul(value());
    } else {
      std::fprintf(stderr,
                   "usage: %s [--out DIR] [--dir WALDIR] [--seconds S] [--rate EPS] "
                   "[--latency-seconds S] [--recovery-mib N]\n",
                   argv[0]);
      return 2;
    }
  }
  // A fixed key for the encrypted rows (its value does not matter for the cost).
  ::setenv("RINGFLOW_BENCH_WAL_KEY",
           "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 1);
  json rows = json::array();
  const std::vector<std::string> modes = {"off", "os", "interval", "sync", "os_encrypted"};
  // Interleaved: two passes over the modes, so drift on the machine hits every mode alike.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& m : modes) {
      json r = max_throughput(a, m);
      r["pass"] = pass;
      rows.push_back(r);
    }
  }
  for (const auto& m : {"off", "os", "sync"}) {
    const double secs =
        std::string(m) == "sync" ? std::min(a.latency_seconds, 20.0) : a.latency_seconds;
    rows.push_back(latency_at_rate(a, m, secs));
  }
  rows.push_back(disk_control(a, 4096, 2000));
  rows.push_back(disk_control(a, 65536, 1000));
  rows.push_back(recovery(a));
  fs::remove_all(a.dir);

  fs::create_directories(a.out);
  std::ofstream(a.out / "summary.json") << rows.dump(2) << "\n";
  utsname u{};
  ::uname(&u);
  const json meta{
      {"command", command},
      {"revision", command_output("git rev-parse --short HEAD 2>/dev/null")},
      {"dirty", !command_output("git status --porcelain 2>/dev/null").empty()},
      {"cpu", command_output("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-")},
      {"cpus", std::thread::hardware_concurrency()},
      {"kernel", std::string(u.release)},
      {"wal_dir_filesystem",
       command_output(
           ("df -T " + a.dir.parent_path().string() + " | awk 'NR==2{print $2\" \"$1}'").c_str())},
      {"date", command_output("date -u +%Y-%m-%dT%H:%M:%SZ")}};
  std::ofstream(a.out / "meta.json") << meta.dump(2) << "\n";
  std::printf("wrote %s/summary.json and meta.json\n", a.out.c_str());
  return 0;
}
