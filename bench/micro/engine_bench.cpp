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
//
// Where the time goes (README "Where the time goes"): the steps of the shard's per-event path,
// each as its own micro-benchmark reporting `ns_per_event`, on the shard's real data
// structures where the public/detail API reaches them, single-threaded and hot in cache:
//
//   step/clock_read         ringflow::now_ns(): publish reads the clock once per event
//   step/publish_slot       SpscRing<EventSlot>::try_emplace of a 2-byte key + 64-byte payload
//                           (the copy publish makes into the 256-byte slot), released unread
//   step/drain              front_span + release of full batches, reading the fields the shard
//                           reads per slot (topic, deadline, idempotency key, lengths)
//   step/expiry_dedup       the deadline test + DedupWindow::seen_or_insert (only events with
//                           an idempotency key pay the window; the bench events have none)
//   step/append             PartitionLog::append of the same record (header fill, staging
//                           buffer copy, relaxed word stores, index, offsets), default sizes
//   step/graph_handoff      a batch through a oneTBB arena + serial lightweight function_node
//                           + wait_for_all, as run_pipeline() does when graph workers are
//                           configured (the default config runs the stages inline: 0 here)
//   step/stages3            three std::function stage calls per event (filter, map, route)
//   step/delivery           subscription match + one std::function handler call per event
//   step/accounting         the per-event single-writer counters (accepted, appended) plus
//                           the per-batch ones, amortised
//   ring_cross_core/{slot256,event64}
//                           a producer thread (core 0) -> SpscRing -> this thread (core 1):
//                           256-byte EventSlots (what ringflow moves) against 64-byte events
//                           (what ring_inline moves); the difference is the slot's cache lines
//   pipeline0_throughput    pipeline3 without stages (one subscriber): pipeline3 - pipeline0
//                           = stages + routing through the engine, by difference
//   pipeline3_nosub         pipeline3 without a subscriber: pipeline3 - nosub = delivery
#include <benchmark/benchmark.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <memory_resource>
#include <string>
#include <thread>
#include <vector>

#include "dedup_window.hpp"
#include "ringflow/detail/event_slot.hpp"
#include "ringflow/partition_log.hpp"
#include "ringflow/ringflow.hpp"

namespace {

constexpr std::size_t kBatch = 256;  // the default config's batch_size

/// Reports ns per event: `events` events per iteration.
void per_event(benchmark::State& state, std::size_t events) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * events));
  state.counters["ns_per_event"] = benchmark::Counter(
      static_cast<double>(events) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

std::array<std::byte, 64> payload64() {
  std::array<std::byte, 64> p{};
  for (std::size_t i = 0; i < p.size(); ++i)
    p[i] = static_cast<std::byte>(i * 7);
  return p;
}

void step_clock_read(benchmark::State& state) {
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i)
      benchmark::DoNotOptimize(ringflow::now_ns());
  }
  per_event(state, kBatch);
}
BENCHMARK(step_clock_read)->Name("step/clock_read");

using SlotRing = ringflow::SpscRing<ringflow::detail::EventSlot>;

void step_publish_slot(benchmark::State& state) {
  SlotRing ring(16384);  // rings.capacity in configs/default.toml: 4 MiB of slots
  const auto payload = payload64();
  const ringflow::PublishOptions o;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i)
      benchmark::DoNotOptimize(ring.try_emplace(o, std::int64_t{1}, 0U, 3U, "k1", payload));
    benchmark::ClobberMemory();
    ring.release(ring.front_span(kBatch).size());
  }
  per_event(state, kBatch);
}
BENCHMARK(step_publish_slot)->Name("step/publish_slot");

void step_drain(benchmark::State& state) {
  SlotRing ring(16384);  // rings.capacity in configs/default.toml: 4 MiB of slots
  const auto payload = payload64();
  const ringflow::PublishOptions o;
  // Fill it once: draining does not consume here (release, then the same slots are re-read
  // after a refill of the indices), so measure front_span/release with slots already written.
  for (auto _ : state) {
    state.PauseTiming();
    for (std::size_t i = 0; i < kBatch; ++i)
      (void)ring.try_emplace(o, std::int64_t{1}, 0U, 3U, "k1", payload);
    state.ResumeTiming();
    const auto slots = ring.front_span(kBatch);
    std::uint64_t acc = 0;
    for (const auto& s : slots) {
      acc += s.topic + static_cast<std::uint64_t>(s.deadline_ns) + s.idempotency_key + s.partition +
             s.payload_len + s.key_len;
    }
    benchmark::DoNotOptimize(acc);
    ring.release(slots.size());
  }
  per_event(state, kBatch);
}
BENCHMARK(step_drain)->Name("step/drain");

void step_expiry_dedup(benchmark::State& state) {
  ringflow::detail::DedupWindow window(16384, 0);  // engine.idempotency_window default
  std::uint64_t key = 1;
  const std::int64_t ingest = ringflow::now_ns();
  for (auto _ : state) {
    std::uint64_t dup = 0;
    for (std::size_t i = 0; i < kBatch; ++i) {
      const std::int64_t deadline = 0;
      benchmark::DoNotOptimize(deadline);
      if (deadline != 0 && deadline <= ingest) continue;
      dup += window.seen_or_insert(key++ * 0x9E3779B97F4A7C15ULL, ingest) ? 1U : 0U;
    }
    benchmark::DoNotOptimize(dup);
  }
  per_event(state, kBatch);
}
BENCHMARK(step_expiry_dedup)->Name("step/expiry_dedup");

void step_append(benchmark::State& state) {
  ringflow::PartitionLog::Options lo;  // segment 1 MiB, retention 8 MiB: configs/default.toml
  lo.preallocate = true;
  ringflow::PartitionLog log(0, lo);
  const auto payload = payload64();
  std::int64_t t = 1;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      ringflow::detail::RecordHeader h{};
      h.id = log.end_offset() + 1;
      h.publish_ns = t;
      h.ingest_ns = t++;
      h.correlation_id = h.id;
      h.attempt = 1;
      benchmark::DoNotOptimize(log.append(h, "k1", payload));
    }
  }
  per_event(state, kBatch);
  state.counters["record_bytes"] = static_cast<double>(ringflow::detail::record_size(2, 64));
}
BENCHMARK(step_append)->Name("step/append");

void step_graph_handoff(benchmark::State& state) {
  namespace flow = oneapi::tbb::flow;
  oneapi::tbb::task_arena arena(1, 1);
  std::unique_ptr<flow::graph> g;
  std::unique_ptr<flow::function_node<int*, int*, flow::lightweight>> node;
  arena.execute([&] {
    g = std::make_unique<flow::graph>();
    node = std::make_unique<flow::function_node<int*, int*, flow::lightweight>>(*g, flow::serial,
                                                                                [](int* b) {
                                                                                  ++*b;
                                                                                  return b;
                                                                                });
  });
  int batch = 0;
  for (auto _ : state) {
    arena.execute([&] {
      node->try_put(&batch);
      g->wait_for_all();
    });
  }
  benchmark::DoNotOptimize(batch);
  arena.execute([&] {
    node.reset();
    g.reset();
  });
  per_event(state, kBatch);  // one hand-off per full batch
}
BENCHMARK(step_graph_handoff)->Name("step/graph_handoff");

/// What a stage or handler sees: a pointer to the record and its payload (as EventView).
struct View {
  const std::byte* payload;
  std::uint32_t len;
  std::uint32_t topic;
};

void step_stages3(benchmark::State& state) {
  const auto payload = payload64();
  std::vector<std::array<std::byte, 64>> scratch(kBatch, payload);
  const std::function<bool(const View&)> filter = [](const View& v) { return v.len == 64; };
  const std::function<void(View&)> map = [&](View& v) {
    auto* p = const_cast<std::byte*>(v.payload);
    p[0] = std::byte{1};
  };
  const std::function<std::uint32_t(const View&)> route = [](const View& v) {
    return (static_cast<unsigned>(v.payload[1]) & 1U) != 0 ? 1U : 2U;
  };
  std::array<View, kBatch> items{};
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i)
      items[i] = View{scratch[i].data(), 64, 0};
    for (auto& v : items) {
      if (!filter(v)) v.len = 0;
    }
    for (auto& v : items)
      map(v);
    for (auto& v : items)
      v.topic = route(v);
    benchmark::DoNotOptimize(items);
  }
  per_event(state, kBatch);
}
BENCHMARK(step_stages3)->Name("step/stages3");

void step_delivery(benchmark::State& state) {
  const auto payload = payload64();
  std::uint64_t sunk = 0;
  const std::function<int(const View&)> handler = [&](const View&) {
    ++sunk;
    return 0;  // Outcome::ok
  };
  const std::array<std::uint8_t, 4> matches{0, 1, 1, 0};
  std::array<View, kBatch> items{};
  for (std::size_t i = 0; i < kBatch; ++i)
    items[i] = View{payload.data(), 64, 1U + static_cast<std::uint32_t>(i & 1U)};
  for (auto _ : state) {
    std::uint64_t ok = 0;
    for (const auto& v : items) {
      if (matches[v.topic] == 0) continue;
      ok += handler(v) == 0 ? 1U : 0U;
    }
    benchmark::DoNotOptimize(ok);
  }
  benchmark::DoNotOptimize(sunk);
  per_event(state, kBatch);
}
BENCHMARK(step_delivery)->Name("step/delivery");

/// The shard's counters: a single writer, relaxed load + store (engine/src/shard.hpp Counter).
struct StepCounter {
  std::atomic<std::uint64_t> v{0};
  void add(std::uint64_t n) noexcept {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

void step_accounting(benchmark::State& state) {
  // Per event: topic accepted + appended. Per batch: appended, processed, expired, duplicates,
  // batches, the subscription's deliveries/ok/failures, filtered/stage_failures per stage, and
  // the ring's completed count (a release store).
  std::array<StepCounter, 2> topic{};
  std::array<StepCounter, 14> batch{};
  std::atomic<std::uint64_t> completed{0};
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      topic[0].add(1);
      topic[1].add(1);
    }
    for (auto& c : batch)
      c.add(kBatch);
    completed.store(completed.load(std::memory_order_relaxed) + kBatch, std::memory_order_release);
    benchmark::ClobberMemory();
  }
  per_event(state, kBatch);
}
BENCHMARK(step_accounting)->Name("step/accounting");

/// A 64-byte event, cache-line sized, as ring_inline moves it.
struct alignas(64) Event64 {
  std::array<std::byte, 64> bytes;
};

/// Producer thread on core 0 -> SpscRing<T> -> the benchmark thread on core 1, which reads the
/// bytes the shard reads (header + key + payload). ns_per_event is the consumer's wall time.
template <class T>
void ring_cross_core(benchmark::State& state) {
  constexpr std::size_t kEvents = 1 << 22;
  const auto payload = payload64();
  for (auto _ : state) {
    ringflow::SpscRing<T> ring(16384);  // rings.capacity in configs/default.toml
    std::thread producer([&] {
      ringflow::pin_current_thread_to_pu(0);
      const ringflow::PublishOptions o;
      for (std::size_t i = 0; i < kEvents; ++i) {
        if constexpr (std::is_same_v<T, ringflow::detail::EventSlot>) {
          while (!ring.try_emplace(o, static_cast<std::int64_t>(i), 0U, 3U, "k1", payload)) {
          }
        } else {
          T e;
          e.bytes = payload;
          std::memcpy(e.bytes.data(), &i, sizeof i);
          while (!ring.try_push(e)) {
          }
        }
      }
    });
    ringflow::pin_current_thread_to_pu(1);
    std::size_t got = 0;
    std::uint64_t acc = 0;
    while (got < kEvents) {
      const auto span = ring.front_span(kBatch);
      for (const T& e : span) {
        const std::byte* p = nullptr;
        if constexpr (std::is_same_v<T, ringflow::detail::EventSlot>) {
          acc += static_cast<std::uint64_t>(e.publish_ns) + e.topic;
          p = e.payload().data();
        } else {
          p = e.bytes.data();
        }
        std::uint64_t w;
        std::memcpy(&w, p + 56, sizeof w);  // the payload's last word: all of it was read
        acc += w;
      }
      ring.release(span.size());
      got += span.size();
    }
    producer.join();
    benchmark::DoNotOptimize(acc);
  }
  per_event(state, kEvents);
}
BENCHMARK(ring_cross_core<ringflow::detail::EventSlot>)
    ->Name("ring_cross_core/slot256")
    ->UseRealTime()
    ->Iterations(5);
BENCHMARK(ring_cross_core<Event64>)->Name("ring_cross_core/event64")->UseRealTime()->Iterations(5);

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

/// producer (this thread, core 0) -> ring -> shard (core 1) -> log append -> [3 stages] ->
/// [subscriber]. state.range(0): the three stages; state.range(1): the subscriber.
void pipeline_throughput(benchmark::State& state) {
  const bool with_stages = state.range(0) != 0;
  const bool with_subscriber = state.range(1) != 0;
  ringflow::pin_current_thread_to_pu(0);
  ringflow::Engine engine(bench_config(true));
  const auto in = engine.add_topic("bench.in");
  const auto out_a = engine.add_topic("bench.a");
  const auto out_b = engine.add_topic("bench.b");
  std::atomic<std::uint64_t> sunk{0};
  if (with_stages) {
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
  }
  if (with_subscriber) {
    engine.subscribe("bench.*", [&](const ringflow::EventView&) {
      sunk.store(sunk.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    });
  }
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
  per_event(state, 1);
  state.counters["ring_full_retries"] = static_cast<double>(full);
  const auto st = engine.stats();
  state.counters["mean_batch"] =
      st.batches != 0 ? static_cast<double>(st.appended) / static_cast<double>(st.batches) : 0.0;
  engine.stop();
}
BENCHMARK(pipeline_throughput)
    ->Name("pipeline3_throughput")
    ->Args({1, 1})
    ->UseRealTime()
    ->MinTime(1.0);
BENCHMARK(pipeline_throughput)
    ->Name("pipeline0_throughput")
    ->Args({0, 1})
    ->UseRealTime()
    ->MinTime(1.0);
BENCHMARK(pipeline_throughput)->Name("pipeline3_nosub")->Args({1, 0})->UseRealTime()->MinTime(1.0);

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
