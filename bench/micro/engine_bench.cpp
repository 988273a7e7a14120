// Engine micro-benchmarks (Google Benchmark). The end-to-end latency/throughput harness is
// tools/ringflow-bench; these isolate the publish path and the shard path for profiling.
//
//   pipeline3_throughput:   producer (bench thread, core 0) -> ring -> shard (core 1)
//                           -> log append -> filter -> map -> route -> subscriber
//   urgent_under_load/{urgent,normal}:
//                           one producer floods the normal lane, handlers spend ~0.2 us per
//                           event, so the engine is saturated (the normal ring stays full) and
//                           every 20 us sends a probe, on the urgent lane or (the baseline, same
//                           run) the normal lane; probe latency = handler time - publish time,
//                           percentiles as counters
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

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

void urgent_under_load(benchmark::State& state) {
  const bool urgent = state.range(0) != 0;
  ringflow::pin_current_thread_to_pu(0);
  ringflow::EngineConfig c = bench_config(false);
  ringflow::Engine engine(c);
  const auto t = engine.add_topic("bench.load");
  std::vector<std::int64_t> probe_ns;  // written by the shard thread only, read after drain
  probe_ns.reserve(1 << 20);
  std::uint64_t flood_done = 0;
  engine.subscribe("bench.load", [&](const ringflow::EventView& e) {
    if (e.key() == "probe") {
      if (probe_ns.size() < probe_ns.capacity()) {
        probe_ns.push_back(ringflow::now_ns() - e.publish_ns());
      }
    } else {
      // ~0.2 us of handler work per flood event: the shard becomes the bottleneck, so the
      // normal lane really is saturated (its ring stays full).
      const std::int64_t until = ringflow::now_ns() + 200;
      while (ringflow::now_ns() < until) {
      }
      ++flood_done;
    }
  });
  engine.start();
  auto producer = engine.make_producer();
  std::byte payload[64] = {};
  ringflow::PublishOptions probe_opts;
  probe_opts.priority = urgent ? ringflow::Priority::urgent : ringflow::Priority::normal;
  std::uint64_t probes_refused = 0;
  for (auto _ : state) {
    const std::int64_t end = ringflow::now_ns() + 2'000'000'000;  // 2 s of saturation
    std::int64_t next_probe = ringflow::now_ns();
    for (std::int64_t now = ringflow::now_ns(); now < end; now = ringflow::now_ns()) {
      if (now >= next_probe) {
        if (producer.publish(t, "probe", payload, probe_opts) != ringflow::PublishStatus::ok) {
          ++probes_refused;  // a full normal lane refuses the baseline's probe: counted
        }
        next_probe += 20'000;
      }
      (void)producer.publish(t, "flood", payload);  // full most of the time: that is the load
    }
  }
  engine.drain();
  engine.stop();
  std::sort(probe_ns.begin(), probe_ns.end());
  const auto pct = [&](double q) {
    if (probe_ns.empty()) return 0.0;
    const auto i = static_cast<std::size_t>(q * static_cast<double>(probe_ns.size() - 1));
    return static_cast<double>(probe_ns[i]);
  };
  state.counters["probe_p50_ns"] = pct(0.50);
  state.counters["probe_p99_ns"] = pct(0.99);
  state.counters["probe_p999_ns"] = pct(0.999);
  state.counters["probes"] = static_cast<double>(probe_ns.size());
  state.counters["probes_refused"] = static_cast<double>(probes_refused);
  state.counters["flood_eps"] =
      benchmark::Counter(static_cast<double>(flood_done), benchmark::Counter::kIsRate);
}
BENCHMARK(urgent_under_load)
    ->ArgName("urgent")
    ->Arg(1)
    ->Arg(0)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
