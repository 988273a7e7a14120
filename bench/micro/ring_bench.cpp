// SPSC queue micro-benchmarks: ringflow::SpscRing against the queues a user would otherwise pick,
// all in this binary so they run interleaved on the same machine state.
//
//   1p1c_throughput/<queue>          producer(core 0) --[queue]--> consumer(core 1), one item/op
//   1p1c_throughput_batch64/<queue>  same, 64 items per op through each queue's batch API
//   ping_pong_latency/<queue>        pinger(core 0) --[q1]--> echo(core 1) --[q2]--> pinger
//
// Queues: SpscRing, boost::lockfree::spsc_queue<uint64_t> (runtime capacity),
// moodycamel::ReaderWriterQueue<uint64_t>, std::mutex + std::deque; ping-pong also has
// platform_control: one atomic word per direction, the cheapest possible cross-core hand-off, so
// tails can be judged against what the machine itself does.
//
// Items are uint64_t, capacity 65536, 2^20 items per iteration (the ring wraps 16 times per
// iteration). The consumer checks the sum of what it received every iteration. Throughput is
// items/s of wall time, retry loops pause (see spin_wait); ping-pong reports round trips/s and
// p50/p99/p99.9 of every round trip (rdtsc, converted with a TSC rate calibrated against
// steady_clock at start-up).
//
// Run (see results/ring/README.md):
//   ringflow_ring_bench --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//                       --benchmark_report_aggregates_only=true

#include "ringflow/spsc_ring.hpp"
#include "ringflow/wait_strategy.hpp"  // cpu_relax

#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <readerwriterqueue/readerwriterqueue.h>
#include <boost/lockfree/spsc_queue.hpp>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace {

constexpr std::size_t kCapacity = 65536;
constexpr std::uint64_t kItemsPerIteration = std::uint64_t{1} << 20;
constexpr std::size_t kBatch = 64;
constexpr int kProducerCore = 0;  // also the pinger
constexpr int kConsumerCore = 1;  // also the echo thread

// ---------------------------------------------------------------- pinning and clocks

/// Throughput retry loops (every queue, full on push, empty on pop) pause between attempts, as
/// any production spin-wait does (ringflow::BusySpin too): a waiter that hammers the other
/// side's line slows the side it is waiting for. Ping-pong loops spin without the pause, to
/// measure the bare hand-off; the platform_control row uses the same loops.
inline void spin_wait() {
  ringflow::cpu_relax();
}

bool pin_current_thread(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

/// Pins the benchmark's own thread for one run and restores its previous mask afterwards.
class ScopedPin {
 public:
  explicit ScopedPin(int core) {
    saved_ok_ = pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_) == 0;
    pinned_ = pin_current_thread(core);
  }
  ~ScopedPin() {
    if (saved_ok_) {
      pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_);
    }
  }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;
  [[nodiscard]] bool pinned() const { return pinned_; }

 private:
  cpu_set_t saved_{};
  bool saved_ok_ = false;
  bool pinned_ = false;
};

inline std::uint64_t ticks_start() {
#if defined(__x86_64__)
  _mm_lfence();  // earlier instructions finish before the TSC is read
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

inline std::uint64_t ticks_end() {
#if defined(__x86_64__)
  unsigned aux = 0;
  const std::uint64_t t = __rdtscp(&aux);  // waits for earlier instructions
  _mm_lfence();
  return t;
#else
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

/// Nanoseconds per tick of ticks_start()/ticks_end().
double ns_per_tick() {
  static const double value = [] {
#if defined(__x86_64__)
    const auto c0 = std::chrono::steady_clock::now();
    const std::uint64_t t0 = ticks_start();
    while (std::chrono::steady_clock::now() - c0 < std::chrono::milliseconds(200)) {
    }
    const auto c1 = std::chrono::steady_clock::now();
    const std::uint64_t t1 = ticks_end();
    return static_cast<double>(
               std::chrono::duration_cast<std::chrono::nanoseconds>(c1 - c0).count()) /
           static_cast<double>(t1 - t0);
#else
    return 1.0;
#endif
  }();
  return value;
}

// ---------------------------------------------------------------- queue adapters
// Same five operations for every queue; batch operations use the queue's own batch API where it
// has one (SpscRing, boost) and a loop where it does not (ReaderWriterQueue).

struct SpscRingQueue {
  static constexpr const char* kName = "SpscRing";
  ringflow::SpscRing<std::uint64_t> q{kCapacity};

  bool push(std::uint64_t v) { return q.try_push(v); }
  bool pop(std::uint64_t& v) { return q.try_pop(v); }
  std::size_t push_n(const std::uint64_t* p, std::size_t n) { return q.try_push_n(p, n); }
  std::size_t pop_n(std::uint64_t* p, std::size_t n) { return q.try_pop_n(p, n); }
};

struct BoostQueue {
  static constexpr const char* kName = "boost_spsc_queue";
  boost::lockfree::spsc_queue<std::uint64_t> q{kCapacity};

  bool push(std::uint64_t v) { return q.push(v); }
  bool pop(std::uint64_t& v) { return q.pop(v); }
  std::size_t push_n(const std::uint64_t* p, std::size_t n) { return q.push(p, n); }
  std::size_t pop_n(std::uint64_t* p, std::size_t n) { return q.pop(p, n); }
};

struct RwqQueue {
  static constexpr const char* kName = "moodycamel_rwq";
  moodycamel::ReaderWriterQueue<std::uint64_t> q{kCapacity};

  bool push(std::uint64_t v) { return q.try_enqueue(v); }  // try_: never allocates
  bool pop(std::uint64_t& v) { return q.try_dequeue(v); }
  std::size_t push_n(const std::uint64_t* p, std::size_t n) {
    std::size_t i = 0;
    while (i < n && q.try_enqueue(p[i])) {
      ++i;
    }
    return i;
  }
  std::size_t pop_n(std::uint64_t* p, std::size_t n) {
    std::size_t i = 0;
    while (i < n && q.try_dequeue(p[i])) {
      ++i;
    }
    return i;
  }
};

struct MutexDequeQueue {
  static constexpr const char* kName = "mutex_deque";
  std::mutex m;
  std::deque<std::uint64_t> d;  // guarded by m; bounded at kCapacity like the others

  bool push(std::uint64_t v) {
    const std::lock_guard lock(m);
    if (d.size() >= kCapacity) {
      return false;
    }
    d.push_back(v);
    return true;
  }
  bool pop(std::uint64_t& v) {
    const std::lock_guard lock(m);
    if (d.empty()) {
      return false;
    }
    v = d.front();
    d.pop_front();
    return true;
  }
  std::size_t push_n(const std::uint64_t* p, std::size_t n) {  // one lock per batch
    const std::lock_guard lock(m);
    const std::size_t k = std::min(n, kCapacity - d.size());
    d.insert(d.end(), p, p + k);
    return k;
  }
  std::size_t pop_n(std::uint64_t* p, std::size_t n) {
    const std::lock_guard lock(m);
    const std::size_t k = std::min(n, d.size());
    std::copy_n(d.begin(), k, p);
    d.erase(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(k));
    return k;
  }
};

/// Ping-pong floor: a one-word mailbox per direction (0 = empty, else value + 1).
struct PlatformControl {
  static constexpr const char* kName = "platform_control";
  alignas(64) std::atomic<std::uint64_t> word{0};
  char pad[64 - sizeof(std::atomic<std::uint64_t>)]{};

  bool push(std::uint64_t v) {
    if (word.load(std::memory_order_acquire) != 0) {  // pairs with pop's release
      return false;
    }
    word.store(v + 1, std::memory_order_release);  // pairs with pop's acquire
    return true;
  }
  bool pop(std::uint64_t& v) {
    const std::uint64_t x = word.load(std::memory_order_acquire);  // pairs with push's release
    if (x == 0) {
      return false;
    }
    v = x - 1;
    word.store(0, std::memory_order_release);  // pairs with push's acquire
    return true;
  }
};

// ---------------------------------------------------------------- 1p1c throughput

enum class Mode { single, batch, span };

/// The producer thread lives for one benchmark run; each iteration it sends kItemsPerIteration
/// items after the consumer (the benchmark thread) raises `round`.
template <class Q, Mode M>
void one_producer_one_consumer(benchmark::State& state) {
  auto queue = std::make_unique<Q>();
  Q& q = *queue;
  std::atomic<std::uint64_t> round{0};
  std::atomic<bool> quit{false};
  std::atomic<bool> producer_pinned{false};

  std::thread producer([&] {
    producer_pinned.store(pin_current_thread(kProducerCore), std::memory_order_relaxed);
    std::uint64_t done_rounds = 0;
    std::uint64_t next = 0;
    std::vector<std::uint64_t> batch(kBatch);
    for (;;) {
      while (round.load(std::memory_order_acquire) == done_rounds) {
        if (quit.load(std::memory_order_relaxed)) {
          return;
        }
      }
      ++done_rounds;
      const std::uint64_t end = next + kItemsPerIteration;
      if constexpr (M == Mode::single) {
        for (; next != end; ++next) {
          while (!q.push(next)) {
            spin_wait();
          }
        }
      } else {
        while (next != end) {
          for (std::size_t i = 0; i < kBatch; ++i) {
            batch[i] = next + i;
          }
          std::size_t sent = 0;
          while (sent != kBatch) {
            const std::size_t k = q.push_n(batch.data() + sent, kBatch - sent);
            if (k == 0) {
              spin_wait();
            }
            sent += k;
          }
          next += kBatch;
        }
      }
    }
  });

  const ScopedPin pin(kConsumerCore);
  std::vector<std::uint64_t> buf(kBatch);
  std::uint64_t first = 0;
  for (auto _ : state) {
    round.fetch_add(1, std::memory_order_release);
    std::uint64_t sum = 0;
    std::uint64_t got = 0;
    if constexpr (M == Mode::single) {
      std::uint64_t v = 0;
      for (; got != kItemsPerIteration; ++got) {
        while (!q.pop(v)) {
          spin_wait();
        }
        sum += v;
      }
    } else if constexpr (M == Mode::batch) {
      while (got != kItemsPerIteration) {
        const std::size_t k = q.pop_n(buf.data(), kBatch);
        if (k == 0) {
          spin_wait();
        }
        for (std::size_t i = 0; i < k; ++i) {
          sum += buf[i];
        }
        got += k;
      }
    } else {  // zero-copy: read in place, then release
      while (got != kItemsPerIteration) {
        const auto span = q.q.front_span(kBatch);
        if (span.empty()) {
          spin_wait();
        }
        for (const std::uint64_t v : span) {
          sum += v;
        }
        q.q.release(span.size());
        got += span.size();
      }
    }
    const std::uint64_t last = first + kItemsPerIteration - 1;
    if (sum != (first + last) * kItemsPerIteration / 2) {
      state.SkipWithError("consumer checksum mismatch: items lost, duplicated or reordered");
      break;
    }
    first += kItemsPerIteration;
    benchmark::DoNotOptimize(sum);
  }
  quit.store(true, std::memory_order_relaxed);
  producer.join();
  if (!pin.pinned() || !producer_pinned.load(std::memory_order_relaxed)) {
    state.SkipWithError("could not pin producer to core 0 and consumer to core 1");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(kItemsPerIteration));
}

// ---------------------------------------------------------------- ping-pong latency

template <class Q>
void ping_pong(benchmark::State& state) {
  auto ping = std::make_unique<Q>();
  auto pong = std::make_unique<Q>();
  std::atomic<bool> quit{false};
  std::atomic<bool> echo_pinned{false};

  std::thread echo([&] {
    echo_pinned.store(pin_current_thread(kConsumerCore), std::memory_order_relaxed);
    std::uint64_t v = 0;
    for (;;) {
      while (!ping->pop(v)) {
        if (quit.load(std::memory_order_relaxed)) {
          return;
        }
      }
      while (!pong->push(v)) {
      }
    }
  });

  const ScopedPin pin(kProducerCore);
  std::vector<std::uint64_t> ticks;
  ticks.reserve(static_cast<std::size_t>(state.max_iterations));
  std::uint64_t seq = 0;
  for (auto _ : state) {
    const std::uint64_t t0 = ticks_start();
    while (!ping->push(seq)) {
    }
    std::uint64_t back = 0;
    while (!pong->pop(back)) {
    }
    const std::uint64_t t1 = ticks_end();
    ticks.push_back(t1 - t0);
    if (back != seq) {
      state.SkipWithError("echo returned a different value");
      break;
    }
    ++seq;
  }
  quit.store(true, std::memory_order_relaxed);
  echo.join();
  if (!pin.pinned() || !echo_pinned.load(std::memory_order_relaxed)) {
    state.SkipWithError("could not pin pinger to core 0 and echo to core 1");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));  // round trips/s
  if (ticks.empty()) {
    return;
  }
  std::sort(ticks.begin(), ticks.end());
  const double scale = ns_per_tick();
  auto pct = [&](double p) {
    const auto i = static_cast<std::size_t>(p * static_cast<double>(ticks.size() - 1));
    return static_cast<double>(ticks[i]) * scale;
  };
  state.counters["p50_ns"] = pct(0.50);
  state.counters["p99_ns"] = pct(0.99);
  state.counters["p99.9_ns"] = pct(0.999);
}

// ---------------------------------------------------------------- registration and context

/// Min and max across repetitions next to the built-in mean/median/stddev, so the aggregates-only
/// report still shows the spread (BENCHMARKING.md: medians with min-max).
benchmark::internal::Benchmark* with_spread(benchmark::internal::Benchmark* b) {
  return b
      ->ComputeStatistics(
          "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); })
      ->ComputeStatistics("max", [](const std::vector<double>& v) {
        return *std::max_element(v.begin(), v.end());
      });
}

template <class Q>
void register_queue() {
  const std::string name = Q::kName;
  with_spread(benchmark::RegisterBenchmark(("1p1c_throughput/" + name).c_str(),
                                           one_producer_one_consumer<Q, Mode::single>))
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  with_spread(benchmark::RegisterBenchmark(("1p1c_throughput_batch64/" + name).c_str(),
                                           one_producer_one_consumer<Q, Mode::batch>))
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  with_spread(benchmark::RegisterBenchmark(("ping_pong_latency/" + name).c_str(), ping_pong<Q>))
      ->UseRealTime()
      ->Unit(benchmark::kNanosecond);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("online_cpus", std::to_string(cpus));
  benchmark::AddCustomContext(
      "pinning",
      "pthread_setaffinity_np: producer/pinger thread -> CPU 0, consumer/echo thread -> CPU 1");
  benchmark::AddCustomContext("items", "uint64_t, capacity 65536, 2^20 items per iteration");
  benchmark::AddCustomContext("compiler", "g++ " __VERSION__);
#if defined(NDEBUG)
  benchmark::AddCustomContext("ndebug", "yes (role checks off)");
#else
  benchmark::AddCustomContext("ndebug", "no: role checks on, numbers not representative");
#endif
  benchmark::AddCustomContext("tsc_ns_per_tick", std::to_string(ns_per_tick()));
  if (cpus < 2) {
    std::fprintf(stderr, "ring_bench needs 2 CPUs (0 and 1) for its pinned threads\n");
    return 1;
  }

  register_queue<SpscRingQueue>();
  register_queue<BoostQueue>();
  register_queue<RwqQueue>();
  register_queue<MutexDequeQueue>();
  with_spread(benchmark::RegisterBenchmark("1p1c_throughput_batch64/SpscRing_front_span",
                                           one_producer_one_consumer<SpscRingQueue, Mode::span>))
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  with_spread(benchmark::RegisterBenchmark("ping_pong_latency/platform_control",
                                           ping_pong<PlatformControl>))
      ->UseRealTime()
      ->Unit(benchmark::kNanosecond);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
