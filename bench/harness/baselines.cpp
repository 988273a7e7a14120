#include "harness/baselines.hpp"

#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_scheduler_observer.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <span>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "harness/affinity.hpp"
#include "harness/clock.hpp"
#include "ringflow/spsc_ring.hpp"

namespace ringflow::bench {
namespace {

std::string cores_text(const std::vector<int>& cores) {
  if (cores.empty()) return "unpinned";
  std::string s = cores.size() == 1 ? "core " : "cores ";
  for (std::size_t i = 0; i < cores.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(cores[i]);
  }
  return s;
}

void wait_until(const std::atomic<std::uint64_t>& counter, std::uint64_t target) {
  // acquire: pairs with the workers' release increments, so their sink state is complete.
  while (counter.load(std::memory_order_acquire) < target) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// ------------------------------------------------------------------------------------------
// mutex_queue
// ------------------------------------------------------------------------------------------

class MutexQueueSystem final : public System {
  struct Queue {
    std::mutex m;
    std::condition_variable cv;
    std::deque<BenchEvent> items;  // guarded by m
    bool stopping = false;         // guarded by m
    std::size_t capacity = 0;
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> completed{0};
    SinkState sink;              // owned by this queue's worker thread until it is joined
    std::uint64_t filtered = 0;  // likewise
    std::thread worker;
  };

  class QueueSender final : public Sender {
   public:
    explicit QueueSender(MutexQueueSystem& sys) : sys_(sys) {}
    bool send(const BenchEvent& ev) noexcept override { return sys_.push(ev); }

   private:
    MutexQueueSystem& sys_;
  };

 public:
  std::string name() const override { return "mutex_queue"; }

  void start(const RunSpec& spec) override {
    spec_ = spec;
    const unsigned lanes = std::max(spec.partitions, 1u);
    const unsigned subs = std::max(spec.subscribers, 1u);
    queues_.clear();
    for (unsigned i = 0; i < lanes * subs; ++i) {
      auto q = std::make_unique<Queue>();
      q->capacity = std::max<std::size_t>(spec.capacity / lanes, 1);
      queues_.push_back(std::move(q));
    }
    for (std::size_t i = 0; i < queues_.size(); ++i) {
      Queue& q = *queues_[i];
      const int core =
          spec.worker_cores.empty() ? -1 : spec.worker_cores[i % spec.worker_cores.size()];
      q.worker = std::thread([&q, core] {
        (void)pin_current_thread(core);  // the core was checked by the runner
        worker_loop(q);
      });
    }
  }

  std::unique_ptr<Sender> make_sender(unsigned /*index*/) override {
    return std::make_unique<QueueSender>(*this);
  }

  void drain() override {
    for (auto& q : queues_)
      wait_until(q->completed, q->accepted.load(std::memory_order_acquire));
  }

  SinkTotals stop() override {
    for (auto& q : queues_) {
      {
        const std::lock_guard lk(q->m);
        q->stopping = true;
      }
      q->cv.notify_all();
    }
    SinkTotals t;
    for (auto& q : queues_) {
      q->worker.join();
      t.sinks.merge(q->sink);
      t.filtered += q->filtered;
    }
    queues_.clear();
    return t;
  }

  std::string placement() const override {
    return std::to_string(std::max(spec_.partitions, 1u) * std::max(spec_.subscribers, 1u)) +
           " worker thread(s) on " + cores_text(spec_.worker_cores);
  }

 private:
  static void worker_loop(Queue& q) {
    std::unique_lock lk(q.m);
    for (;;) {
      q.cv.wait(lk, [&] { return !q.items.empty() || q.stopping; });
      if (q.items.empty()) return;  // stopping and drained
      const BenchEvent ev = q.items.front();
      q.items.pop_front();
      lk.unlock();
      if (!run_stages(q.sink, ev.bytes.data())) ++q.filtered;
      // release: the sink state written above is visible to whoever acquires `completed`.
      q.completed.fetch_add(1, std::memory_order_release);
      lk.lock();
    }
  }

  bool push(const BenchEvent& ev) noexcept {
    const unsigned subs = std::max(spec_.subscribers, 1u);
    const unsigned lanes = std::max(spec_.partitions, 1u);
    const unsigned lane = key_of(ev.bytes.data()) % lanes;
    const std::unique_ptr<Queue>* group = &queues_[static_cast<std::size_t>(lane) * subs];
    if (subs == 1) {
      Queue& q = *group[0];
      {
        const std::lock_guard lk(q.m);
        if (q.items.size() >= q.capacity) return false;
        q.items.push_back(ev);
        // relaxed: only drain() reads it, after the producers were joined.
        q.accepted.fetch_add(1, std::memory_order_relaxed);
      }
      q.cv.notify_one();
      return true;
    }
    // Fan-out: all subscribers get it or none does. Locks in index order (no deadlock).
    for (unsigned s = 0; s < subs; ++s)
      group[s]->m.lock();
    bool room = true;
    for (unsigned s = 0; s < subs; ++s)
      room = room && group[s]->items.size() < group[s]->capacity;
    if (room) {
      for (unsigned s = 0; s < subs; ++s) {
        group[s]->items.push_back(ev);
        group[s]->accepted.fetch_add(1, std::memory_order_relaxed);  // relaxed: as above
      }
    }
    for (unsigned s = subs; s-- > 0;)
      group[s]->m.unlock();
    if (room) {
      for (unsigned s = 0; s < subs; ++s)
        group[s]->cv.notify_one();
    }
    return room;
  }

  RunSpec spec_;
  std::vector<std::unique_ptr<Queue>> queues_;  // [lane * subscribers + subscriber]
};

// ------------------------------------------------------------------------------------------
// tbb_graph_direct
// ------------------------------------------------------------------------------------------

namespace flow = oneapi::tbb::flow;

class TbbGraphSystem final : public System {
  struct Enriched {
    BenchEvent ev;
    std::uint64_t hash;
  };
  using FilterNode = flow::multifunction_node<BenchEvent, std::tuple<BenchEvent>>;
  using EnrichNode = flow::function_node<BenchEvent, Enriched>;
  using SinkNode = flow::function_node<Enriched, flow::continue_msg>;

  /// Pins each worker that enters the arena to worker_cores[slot % n]; cheap enough to run on
  /// every re-entry.
  class Pinner final : public oneapi::tbb::task_scheduler_observer {
   public:
    Pinner(oneapi::tbb::task_arena& arena, std::vector<int> cores)
        : task_scheduler_observer(arena), cores_(std::move(cores)) {
      observe(true);
    }
    ~Pinner() override { observe(false); }
    Pinner(const Pinner&) = delete;
    Pinner& operator=(const Pinner&) = delete;
    void on_scheduler_entry(bool is_worker) override {
      // Workers only: a producer or the runner entering the arena (execute, wait_for_all) keeps
      // its own placement.
      if (cores_.empty() || !is_worker) return;
      const int slot = std::max(oneapi::tbb::this_task_arena::current_thread_index(), 0);
      (void)pin_current_thread(cores_[static_cast<std::size_t>(slot) % cores_.size()]);
    }

   private:
    std::vector<int> cores_;
  };

  struct Lane {
    std::unique_ptr<FilterNode> filter;
    std::unique_ptr<EnrichNode> enrich;
    std::vector<std::unique_ptr<SinkNode>> sinks;
  };

  class GraphSender final : public Sender {
   public:
    explicit GraphSender(TbbGraphSystem& sys) : sys_(sys) {}
    bool send(const BenchEvent& ev) noexcept override { return sys_.put(ev); }

   private:
    TbbGraphSystem& sys_;
  };

 public:
  std::string name() const override { return "tbb_graph_direct"; }

  void start(const RunSpec& spec) override {
    spec_ = spec;
    subs_ = std::max(spec.subscribers, 1u);
    const int workers = static_cast<int>(std::max<std::size_t>(spec.worker_cores.size(), 1));
    // reserved_for_masters = 0: the producers stay outside; all slots are TBB workers.
    arena_ = std::make_unique<oneapi::tbb::task_arena>(workers, 0);
    pinner_ = std::make_unique<Pinner>(*arena_, spec.worker_cores);
    arena_->execute([&] {  // the graph binds to the arena current at construction
      graph_ = std::make_unique<flow::graph>();
      const unsigned lanes = std::max(spec.partitions, 1u);
      for (unsigned l = 0; l < lanes; ++l) {
        Lane lane;
        lane.filter = std::make_unique<FilterNode>(
            *graph_, flow::serial,
            [this](const BenchEvent& ev, FilterNode::output_ports_type& out) {
              if (stage_validate(ev.bytes.data())) {
                std::get<0>(out).try_put(ev);
              } else {
                filtered_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
                // release: as in the sink; the event is complete for accounting.
                deliveries_.fetch_add(subs_, std::memory_order_release);
              }
            });
        lane.enrich = std::make_unique<EnrichNode>(*graph_, flow::serial, [](const BenchEvent& ev) {
          return Enriched{ev, stage_enrich(ev.bytes.data())};
        });
        flow::make_edge(flow::output_port<0>(*lane.filter), *lane.enrich);
        for (unsigned s = 0; s < subs_; ++s) {
          lane.sinks.push_back(
              std::make_unique<SinkNode>(*graph_, flow::serial, [this](const Enriched& e) {
                stage_route_sink(sinks_.local(), e.ev.bytes.data(), e.hash);
                // release: this thread's sink state is complete for whoever acquires it.
                deliveries_.fetch_add(1, std::memory_order_release);
                return flow::continue_msg();
              }));
          flow::make_edge(*lane.enrich, *lane.sinks.back());
        }
        lanes_.push_back(std::move(lane));
      }
    });
  }

  std::unique_ptr<Sender> make_sender(unsigned /*index*/) override {
    return std::make_unique<GraphSender>(*this);
  }

  void drain() override {
    wait_until(deliveries_, accepted_.load(std::memory_order_acquire) * subs_);
  }

  SinkTotals stop() override {
    arena_->execute([&] { graph_->wait_for_all(); });
    SinkTotals t;
    sinks_.combine_each([&](const SinkState& s) { t.sinks.merge(s); });
    t.filtered = filtered_.load(std::memory_order_relaxed);
    lanes_.clear();  // nodes before their graph
    graph_.reset();
    pinner_.reset();
    arena_.reset();
    return t;
  }

  std::string placement() const override {
    return "oneTBB arena of " +
           std::to_string(std::max<std::size_t>(spec_.worker_cores.size(), 1)) + " worker(s) on " +
           cores_text(spec_.worker_cores) + " (task_scheduler_observer)";
  }

 private:
  bool put(const BenchEvent& ev) noexcept {
    // relaxed loads: the bound is approximate by design (a few events over with several
    // producers); no data is published through these counters here.
    const std::uint64_t done = deliveries_.load(std::memory_order_relaxed) / subs_;
    if (accepted_.load(std::memory_order_relaxed) - done >= spec_.capacity) return false;
    accepted_.fetch_add(1, std::memory_order_relaxed);
    const unsigned lane = key_of(ev.bytes.data()) % static_cast<unsigned>(lanes_.size());
    return lanes_[lane].filter->try_put(ev);
  }

  RunSpec spec_;
  unsigned subs_ = 1;
  std::unique_ptr<oneapi::tbb::task_arena> arena_;
  std::unique_ptr<Pinner> pinner_;
  std::unique_ptr<flow::graph> graph_;
  std::vector<Lane> lanes_;
  oneapi::tbb::enumerable_thread_specific<SinkState> sinks_;
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> deliveries_{0};
  std::atomic<std::uint64_t> filtered_{0};
};

// ------------------------------------------------------------------------------------------
// ring_inline: the hand-written Disruptor-style pipeline, a control for what this workload can
// reach on this machine without an engine.
//
//   producer ─try_push─▶ SpscRing<BenchEvent> ─front_span/release─▶ consumer thread
//                        (validate, enrich, route+sink inline on the slot, a batch at a time)
//
// No log, no routing table, no graph, no fan-out: one ring of fixed-size 64-byte events read
// in place, the read index published once per batch, the consumer busy-spinning when empty.
// ------------------------------------------------------------------------------------------

/// Most events the consumer takes from the ring before publishing its read index.
constexpr std::size_t kBatch = 256;

class RingInlineSystem final : public System {
  using Ring = ringflow::SpscRing<BenchEvent>;

  class RingSender final : public Sender {
   public:
    explicit RingSender(RingInlineSystem& sys) : sys_(sys) {}
    bool send(const BenchEvent& ev) noexcept override {
      if (!sys_.ring_->try_push(ev)) return false;
      // relaxed load + store, no read-modify-write: this is the only producer (unsupported()
      // refuses more), and drain() reads the count after a barrier or join with it.
      sys_.accepted_.store(sys_.accepted_.load(std::memory_order_relaxed) + 1,
                           std::memory_order_relaxed);
      return true;
    }

   private:
    RingInlineSystem& sys_;
  };

 public:
  std::string name() const override { return "ring_inline"; }

  std::string unsupported(const RunSpec& spec) const override {
    if (spec.producers > 1) {
      return "ring_inline has one producer and one consumer (" + std::to_string(spec.producers) +
             " producers asked)";
    }
    if (spec.subscribers > 1) return "ring_inline has no fan-out (one consumer)";
    if (spec.partitions > 1) return "ring_inline has no partitions (one ring, one consumer)";
    return {};
  }

  void start(const RunSpec& spec) override {
    spec_ = spec;
    ring_ = std::make_unique<Ring>(std::max<std::size_t>(spec.capacity, 1));
    const int core = spec.worker_cores.empty() ? -1 : spec.worker_cores.front();
    consumer_ = std::thread([this, core] {
      (void)pin_current_thread(core);  // the core was checked by the runner
      consume();
    });
  }

  std::unique_ptr<Sender> make_sender(unsigned /*index*/) override {
    return std::make_unique<RingSender>(*this);
  }

  void drain() override {
    // relaxed: the runner's barrier/join already ordered the producer's last store before this.
    const std::uint64_t target = accepted_.load(std::memory_order_relaxed);
    // acquire: pairs with the consumer's release store of its completed count.
    while (completed_.load(std::memory_order_acquire) < target) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  SinkTotals stop() override {
    // relaxed: the consumer only needs to see it eventually; join() orders its sink state.
    stop_.store(true, std::memory_order_relaxed);
    if (consumer_.joinable()) consumer_.join();
    SinkTotals t;
    t.sinks = sink_;
    t.filtered = filtered_;
    ring_.reset();
    return t;
  }

  std::string placement() const override {
    return "1 consumer thread on " +
           (spec_.worker_cores.empty() ? std::string("unpinned")
                                       : "core " + std::to_string(spec_.worker_cores.front())) +
           " (busy-spin, batches of up to " + std::to_string(kBatch) + ")";
  }

 private:
  void consume() noexcept {
    std::uint64_t done = 0;
    for (;;) {
      const std::span<BenchEvent> batch = ring_->front_span(kBatch);
      if (batch.empty()) {
        // relaxed: see stop(); the ring is empty and the producers are gone once it is set.
        if (stop_.load(std::memory_order_relaxed)) return;
        cpu_relax();
        continue;
      }
      for (const BenchEvent& ev : batch) {
        if (!run_stages(sink_, ev.bytes.data())) ++filtered_;
      }
      ring_->release(batch.size());
      done += batch.size();
      // release: drain() returns only once these events' stage work is complete.
      completed_.store(done, std::memory_order_release);
    }
  }

  RunSpec spec_;
  std::unique_ptr<Ring> ring_;
  std::thread consumer_;
  SinkState sink_;              // consumer thread only until it is joined
  std::uint64_t filtered_ = 0;  // likewise
  alignas(64) std::atomic<std::uint64_t> accepted_{0};
  alignas(64) std::atomic<std::uint64_t> completed_{0};
  alignas(64) std::atomic<bool> stop_{false};
};

}  // namespace

std::unique_ptr<System> make_mutex_queue_system() {
  return std::make_unique<MutexQueueSystem>();
}
std::unique_ptr<System> make_tbb_graph_system() {
  return std::make_unique<TbbGraphSystem>();
}
std::unique_ptr<System> make_ring_inline_system() {
  return std::make_unique<RingInlineSystem>();
}

}  // namespace ringflow::bench
