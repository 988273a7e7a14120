// Engine micro-benchmarks (Google Benchmark). The end-to-end latency/throughput harness is
// tools/ringflow-bench; these isolate the publish path and the shard path for profiling.
//
//   pipeline3_throughput:   producer (bench thread, core 0) -> ring -> shard (core 1)
//                           -> log append -> filter -> map -> route -> subscriber
//   publish_only:           the producer's side alone: publish() into a ring a shard drains
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstring>
#include <string>

#include "ringflow/ringflow.hpp"

namespace {

ringflow::EngineConfig bench_config(bool stages) {
  ringflow::EngineConfig c;
  c.partitions = 8;
  c.shards = 1;
  c.shard_cores = {1};
  c.ring_capacity = 65536;
  c.batch_size = 256;
  c.wait_strategy = ringflow::WaitStrategyKind::busy_spin;
  (void)stages;
  return c;
}

void pipeline3_throughput(benchmark::State& state) {
  ringflow::pin_current_thread_to_pu(0);
  ringflow::Engine engine(bench_config(true));
  const auto in = engine.add_topic("bench.in");
  const auto out_a = engine.add_topic("bench.a");
  const auto out_b = engine.add_topic("bench.b");
  std::atomic<std::uint64_t> sunk{0};
  engine.pipeline()
      .filter("validate", [](const ringflow::EventView& e) { return e.payload().size() == 64; })
      .map("enrich",
           [](ringflow::Event& e) {
             auto p = e.mutable_payload();
             p[0] = std::byte{1};
           })
      .route("route", [&](const ringflow::EventView& e) {
        return (static_cast<unsigned>(e.payload()[1]) & 1U) != 0 ? out_a : out_b;
      });
  engine.subscribe("bench.*", [&](const ringflow::EventView&) {
    sunk.store(sunk.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  });
  engine.start();
  auto producer = engine.make_producer();
  std::byte payload[64] = {};
  const std::string keys[4] = {"k0", "k1", "k2", "k3"};
  std::uint64_t i = 0;
  std::uint64_t full = 0;
  for (auto _ : state) {
    payload[1] = static_cast<std::byte>(i);
    while (producer.publish(in, keys[i & 3], payload) != ringflow::PublishStatus::ok)
      ++full;
    ++i;
  }
  engine.drain();
  state.SetItemsProcessed(static_cast<std::int64_t>(i));
  state.counters["ring_full_retries"] = static_cast<double>(full);
  const auto st = engine.stats();
  state.counters["mean_batch"] =
      st.batches != 0 ? static_cast<double>(st.appended) / static_cast<double>(st.batches) : 0.0;
  engine.stop();
}
BENCHMARK(pipeline3_throughput)->UseRealTime()->MinTime(1.0);

}  // namespace

BENCHMARK_MAIN();
