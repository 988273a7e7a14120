// One vs two ringflow instances (ringflow_nats_instance child processes) relaying a JetStream
// stream to another, on one machine, with the CPU each side spends per event. Per trial: fresh
// streams, M events pre-published, the instances started with a static split of 4 partitions,
// time until the output stream holds M; CPU = utime + stime of the instances and of the server
// (/proc/<pid>/stat) over the relay, and the server's over the pre-publishing (ingest). Trials
// interleaved: 1, 2, 1, 2, ...
//
//   connectors/nats/bench/instances.sh   (starts nats-server, writes results/nats/instances/)
#include <nats/nats.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/nats/nats.hpp"

namespace {

namespace rn = ringflow::nats;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint32_t kParts = 4;
constexpr std::uint32_t kKeys = 1000;
constexpr int kPayload = 64;

/// utime + stime of a process in seconds (0 when it cannot be read).
double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return 0;
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int k = 3; k <= 15 && rest >> field; ++k) {
    if (k == 14) utime = std::stoull(field);
    if (k == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (std::FILE* f = std::freopen(log.c_str(), "w", stdout); f != nullptr) {
      ::dup2(::fileno(f), 2);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

std::uint64_t stream_msgs(rn::Connection& conn, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr{};
  if (js_GetStreamInfo(&si, static_cast<jsCtx*>(conn.native_jetstream()), stream.c_str(), nullptr,
                       &jerr) != NATS_OK) {
    return 0;
  }
  const std::uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

struct Result {
  int instances = 0;
  double eps = 0;
  double instance_cpu_us = 0;  // per event, all instances together
  double server_cpu_us = 0;    // per event relayed (fetch, ack, output stored)
  double ingest_cpu_us = 0;    // server, per event published to the input stream
  std::uint64_t events = 0;
  bool complete = false;
};

Result trial(rn::Connection& conn, const std::string& url, const std::string& instance_bin,
             pid_t server_pid, int n, int instances, std::uint64_t events) {
  const std::string in = "in" + std::to_string(n);
  const std::string out = "out" + std::to_string(n);
  const std::string in_stream = "IN" + std::to_string(n);
  const std::string out_stream = "OUT" + std::to_string(n);
  rn::ensure_stream(conn, {.name = in_stream, .subject_prefix = in});
  rn::ensure_stream(conn, {.name = out_stream, .subject_prefix = out});
  const double ingest0 = cpu_seconds(server_pid);
  {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 4096;
    jsCtx* js = nullptr;
    if (natsConnection_JetStream(&js, static_cast<natsConnection*>(conn.native_connection()),
                                 &jo) != NATS_OK) {
      throw std::runtime_error("jetstream context");
    }
    char data[kPayload] = {};
    std::vector<std::string> subjects;
    for (std::uint32_t k = 0; k < kKeys; ++k) {
      char key[16];
      const int len = std::snprintf(key, sizeof key, "k%u", k);
      subjects.push_back(
          rn::subject_for(in, std::string_view(key, static_cast<std::size_t>(len)), kParts));
    }
    for (std::uint64_t i = 0; i < events; ++i) {
      while (js_PublishAsync(js, subjects[i % kKeys].c_str(), data, kPayload, nullptr) != NATS_OK) {
      }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    (void)js_PublishAsyncComplete(js, &po);
    jsCtx_Destroy(js);
  }
  const std::vector<std::string> split1{"0,1,2,3"};
  const std::vector<std::string> split2{"0,2", "1,3"};
  const std::vector<std::string>& split = instances == 1 ? split1 : split2;
  const double server0 = cpu_seconds(server_pid);
  const double ingest_cpu = server0 - ingest0;
  const auto t0 = Clock::now();
  std::vector<pid_t> pids;
  pids.reserve(static_cast<std::size_t>(instances));
  for (int k = 0; k < instances; ++k) {
    pids.push_back(spawn({instance_bin, "--server", url, "--stream", in_stream, "--prefix", in,
                          "--partitions", std::to_string(kParts), "--own", split[k], "--out-stream",
                          out_stream, "--out-prefix", out, "--durable", "rf" + std::to_string(n)},
                         "/tmp/ringflow-instances-bench-" + std::to_string(k) + ".log"));
  }
  Result r;
  r.instances = instances;
  r.events = events;
  while (Clock::now() - t0 < 120s) {
    if (stream_msgs(conn, out_stream) >= events) {
      r.complete = true;
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  double inst_cpu = 0;
  for (const pid_t p : pids)
    inst_cpu += cpu_seconds(p);
  const double server_cpu = cpu_seconds(server_pid) - server0;
  for (const pid_t p : pids) {
    ::kill(p, SIGTERM);
    int st = 0;
    ::waitpid(p, &st, 0);
  }
  r.eps = static_cast<double>(stream_msgs(conn, out_stream)) / secs;
  r.instance_cpu_us = inst_cpu * 1e6 / static_cast<double>(events);
  r.server_cpu_us = server_cpu * 1e6 / static_cast<double>(events);
  r.ingest_cpu_us = ingest_cpu * 1e6 / static_cast<double>(events);
  jsErrCode jerr{};
  auto* js = static_cast<jsCtx*>(conn.native_jetstream());
  (void)js_DeleteStream(js, in_stream.c_str(), nullptr, &jerr);
  (void)js_DeleteStream(js, out_stream.c_str(), nullptr, &jerr);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "nats://127.0.0.1:4222";
  std::string out = "results/nats/instances";
  std::string instance_bin;
  pid_t server_pid = 0;
  std::uint64_t events = 100'000;
  int repeats = 3;
  for (int k = 1; k + 1 < argc; k += 2) {
    const std::string a = argv[k];
    const std::string v = argv[k + 1];
    if (a == "--server") {
      server = v;
    } else if (a == "--out") {
      out = v;
    } else if (a == "--instance-bin") {
      instance_bin = v;
    } else if (a == "--server-pid") {
      server_pid = static_cast<pid_t>(std::stol(v));
    } else if (a == "--events") {
      events = std::stoull(v);
    } else if (a == "--repeats") {
      repeats = std::stoi(v);
    } else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  if (instance_bin.empty() || server_pid <= 0) {
    std::cerr << "--instance-bin PATH and --server-pid PID are required\n";
    return 2;
  }
  try {
    rn::ConnectionOptions co;
    co.servers = {server};
    co.name = "ringflow-instances-bench";
    rn::Connection conn(co);
    nlohmann::json rows = nlohmann::json::array();
    int n = 0;
    for (int rep = 0; rep < repeats; ++rep) {
      for (const int instances : {1, 2}) {
        const Result r = trial(conn, server, instance_bin, server_pid, ++n, instances, events);
        std::cerr << instances << " instance(s): " << static_cast<std::uint64_t>(r.eps)
                  << " events/s, instances " << r.instance_cpu_us << " CPU-us/event, server "
                  << r.server_cpu_us << " CPU-us/event (ingest " << r.ingest_cpu_us << ")"
                  << (r.complete ? "" : " (INCOMPLETE)") << "\n";
        rows.push_back({{"system", "jetstream_ringflow_x" + std::to_string(instances)},
                        {"kind", "throughput"},
                        {"instances", instances},
                        {"offered_eps", 0},
                        {"achieved_eps", static_cast<std::uint64_t>(r.eps)},
                        {"instance_cpu_us_per_event", r.instance_cpu_us},
                        {"server_cpu_us_per_event", r.server_cpu_us},
                        {"server_ingest_cpu_us_per_event", r.ingest_cpu_us},
                        {"samples", r.events},
                        {"complete", r.complete}});
      }
    }
    std::ofstream f(out + "/summary.json");
    f << rows.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "ringflow_nats_instances_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
