// One instance of a partitioned service: consumes its partitions of a JetStream stream through
// ringflow and publishes each processed event to an output stream (deduplicated by input
// sequence). Run N of these with disjoint --own sets (or let one take over another's partitions).
//
//   ringflow_nats_instance --server nats://127.0.0.1:4222 --stream IN --prefix in
//       --partitions 4 --own 0,1 --out-stream OUT --out-prefix out [--delay-us 0]
//   (or --lease-instance ID [--lease-ttl-ms 6000] instead of --own: partitions by KV leases)
//   [--ack-wait-ms 30000] [--max-deliver N] set the consumers' AckWait and MaxDeliver.
//   --server may be given once per server of a cluster; --replicas 3 creates the input and
//   output streams (if absent) and the lease bucket with 3 replicas (a 3-node cluster).
//
// SIGTERM/SIGINT: stops cleanly (finishes and acks what it holds). Prints "ready" once fetching.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/nats/nats.hpp"
#include "ringflow/ringflow.hpp"

namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int /*sig*/) {
  g_stop.store(true, std::memory_order_relaxed);
}

std::vector<std::uint32_t> parse_list(const std::string& s) {
  std::vector<std::uint32_t> v;
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? s.npos : comma - pos);
    if (!item.empty()) v.push_back(static_cast<std::uint32_t>(std::stoul(item)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  namespace rn = ringflow::nats;
  rn::ConnectionOptions co;
  co.servers.clear();
  rn::SourceOptions so;
  so.stream = "IN";
  so.subject_prefix = "in";
  so.partitions = 4;
  so.topic = "in";
  rn::StreamOptions out_stream;
  out_stream.name = "OUT";
  out_stream.subject_prefix = "out";
  long delay_us = 0;
  rn::LeaseOptions lease;  // --lease-instance ID: partitions by leases instead of --own
  for (int k = 1; k < argc; ++k) {
    const std::string a = argv[k];
    const auto next = [&]() -> std::string {
      if (k + 1 >= argc) {
        std::cerr << "missing value after " << a << "\n";
        std::exit(2);
      }
      return argv[++k];
    };
    if (a == "--server") {
      co.servers.push_back(next());
    } else if (a == "--stream") {
      so.stream = next();
    } else if (a == "--prefix") {
      so.subject_prefix = next();
    } else if (a == "--partitions") {
      so.partitions = static_cast<std::uint32_t>(std::stoul(next()));
    } else if (a == "--own") {
      so.owned = parse_list(next());
    } else if (a == "--durable") {
      so.durable_prefix = next();
    } else if (a == "--ack-wait-ms") {
      so.ack_wait = std::chrono::milliseconds(std::stol(next()));
    } else if (a == "--max-deliver") {
      so.max_deliver = static_cast<std::uint32_t>(std::stoul(next()));
    } else if (a == "--out-stream") {
      out_stream.name = next();
    } else if (a == "--out-prefix") {
      out_stream.subject_prefix = next();
    } else if (a == "--lease-instance") {
      lease.instance = next();
    } else if (a == "--lease-ttl-ms") {
      lease.ttl = std::chrono::milliseconds(std::stol(next()));
    } else if (a == "--replicas") {
      out_stream.replicas = std::stoi(next());
      lease.replicas = out_stream.replicas;
    } else if (a == "--delay-us") {
      delay_us = std::stol(next());
    } else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  if (co.servers.empty()) co.servers.emplace_back("nats://127.0.0.1:4222");
  co.name = "ringflow-instance";
  co.on_status = [](const rn::Status& s) {
    if (s.kind != rn::Status::Kind::dead_letter) {
      std::cerr << "nats: " << rn::to_string(s.kind) << " " << s.detail << "\n";
    }
  };
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  try {
    rn::Connection conn(co);
    // A cluster that has just started elects its JetStream meta leader first: try for 30 s.
    for (const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);;) {
      try {
        rn::ensure_stream(conn, {.name = so.stream,
                                 .subject_prefix = so.subject_prefix,
                                 .replicas = out_stream.replicas});
        rn::ensure_stream(conn, out_stream);
        break;
      } catch (const rn::NatsError& e) {
        if (std::chrono::steady_clock::now() >= give_up) throw;
        std::cerr << "streams not ready, retrying: " << e.what() << "\n";
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    }

    ringflow::EngineConfig cfg;
    cfg.partitions = 4;
    cfg.pin_threads = false;
    cfg.wait_strategy = ringflow::WaitStrategyKind::park;
    ringflow::Engine engine(cfg);
    engine.add_topic(so.topic);

    rn::SinkOptions sk;
    sk.subject_prefix = out_stream.subject_prefix;
    sk.partitions = so.partitions;
    sk.msg_id_prefix = "out";
    rn::Sink sink(conn, sk);
    so.before_ack = [&sink] { return sink.flush(std::chrono::seconds(1)); };
    rn::Source source(conn, engine, so);
    source.subscribe(so.topic, [&sink, delay_us](const ringflow::EventView& e) {
      if (delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      return sink.publish(e);
    });
    engine.start();
    source.start();
    std::unique_ptr<rn::Leases> leases;
    if (!lease.instance.empty()) {
      leases = std::make_unique<rn::Leases>(conn, source, lease);
      leases->start();
    }
    std::cout << "ready" << std::endl;
    while (!g_stop.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (leases) leases->stop();  // gives the partitions back at once
    source.stop();
    engine.stop();
    const rn::SourceStats s = source.stats();
    std::cout << "fetched " << s.fetched << " redelivered " << s.redelivered << " acked " << s.acked
              << " dead_lettered " << s.dead_lettered << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "ringflow_nats_instance: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
