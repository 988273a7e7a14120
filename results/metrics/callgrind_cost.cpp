// Instruction cost of latency sampling on the shard's hot path: publish N events through one
// shard with metrics_latency_sample_every = argv[1]; run under
//   valgrind --tool=callgrind --toggle-collect='ringflow::detail::Shard::drain_ring*'
// and divide the collected instructions by N.
#include <cstdio>
#include <cstdlib>
#include <thread>
#include "ringflow/ringflow.hpp"
int main(int argc, char** argv) {
  const unsigned every = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 0;
  const int n = argc > 2 ? std::atoi(argv[2]) : 200000;
  ringflow::EngineConfig cfg;
  cfg.partitions = 1;
  cfg.shards = 1;
  cfg.pin_threads = false;
  cfg.metrics_latency_sample_every = every;
  if (argc > 3) cfg.batch_size = static_cast<std::size_t>(std::atoi(argv[3]));
  ringflow::Engine engine(cfg);
  const auto t = engine.add_topic("e");
  engine.subscribe("e", [](const ringflow::EventView&) {});
  engine.start();
  auto p = engine.make_producer();
  const std::byte payload[64] = {};
  for (int i = 0; i < n; ++i)
    while (p.publish(t, "k", payload) != ringflow::PublishStatus::ok)
      std::this_thread::yield();
  engine.drain();
  const auto s = engine.stats();
  std::printf("events %llu batches %llu\n", (unsigned long long)s.appended,
              (unsigned long long)s.batches);
  engine.stop();
}
