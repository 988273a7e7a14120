#include "shard.hpp"

#include <algorithm>
#include <exception>

#include "pinned_arena.hpp"
#include "ringflow/clock.hpp"
#include "ringflow/topology.hpp"

namespace ringflow::detail {

namespace {
inline void cpu_relax() noexcept {
  __builtin_ia32_pause();
}
}  // namespace

Shard::Shard(ShardEnv env, std::uint32_t id, ThreadPlacement placement,
             std::vector<int> graph_worker_pus, bool pin)
    : env_(env),
      id_(id),
      placement_(std::move(placement)),
      graph_pus_(std::move(graph_worker_pus)),
      pin_(pin) {
  const std::size_t batch = env_.cfg->batch_size;
  items_.resize(batch);
  scratch_.resize(batch * env_.cfg->max_payload_bytes);
  batch_.items = items_.data();
  batch_.scratch = scratch_.data();
  batch_.scratch_stride = env_.cfg->max_payload_bytes;
  for (std::size_t i = 0; i < env_.subscriptions->size(); ++i) {
    sub_counters_.push_back(std::make_unique<SubscriptionCounters>());
  }
}

Shard::~Shard() {
  request_exit();
  join();
}

void Shard::start() {
  thread_ = std::thread([this] { run(); });
}

void Shard::request_exit() noexcept {
  exit_.store(true, std::memory_order_release);  // pairs with the worker's acquire in run()
  env_.ctx->shard_work[id_].notify();
}

void Shard::join() {
  if (thread_.joinable()) thread_.join();
}

bool Shard::rings_empty() const noexcept {
  // Acquire: pairs with make_producer()'s release; the states below are fully built.
  const std::uint32_t n = env_.producer_count->load(std::memory_order_acquire);
  for (std::uint32_t p = 0; p < n; ++p) {
    const RingPair& rp = *env_.producers[p]->rings[id_];
    if (!rp.lanes[0].empty() || !rp.lanes[1].empty()) return false;
  }
  return true;
}

void Shard::run() {
  if (pin_ && placement_.pu_os_index >= 0) {
    const PinResult r = pin_current_thread_to_pu(placement_.pu_os_index);
    if (!r) pin_note_ = r.reason;
  }
  arena_ = std::make_unique<PinnedArena>(graph_pus_, pin_);
  arena_->execute([this] { build_graph(); });

  const WaitStrategyKind wait = env_.cfg->wait_strategy;
  std::uint32_t idle = 0;
  for (;;) {
    if (poll_once() != 0) {
      idle = 0;
      continue;
    }
    // Acquire: pairs with request_exit(); stop() only asks after every producer is quiet, so
    // once the rings are empty here they stay empty.
    if (exit_.load(std::memory_order_acquire) && rings_empty()) break;
    switch (wait) {
      case WaitStrategyKind::busy_spin:
        cpu_relax();
        break;
      case WaitStrategyKind::spin_yield:
        if (++idle < 256) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
        break;
      case WaitStrategyKind::park:
        env_.ctx->shard_work[id_].wait_until(
            [this] { return exit_.load(std::memory_order_acquire) || !rings_empty(); });
        break;
    }
  }
  arena_->execute([this] {
    if (graph_) graph_->wait_for_all();
    nodes_.clear();
    graph_.reset();
  });
  arena_.reset();
}

std::size_t Shard::poll_once() {
  // Acquire: pairs with make_producer()'s release of the count; the new state is built.
  const std::uint32_t n = env_.producer_count->load(std::memory_order_acquire);
  std::size_t total = 0;
  // Urgent lane of every producer first, then the normal lanes. Each ring gives at most one
  // batch per pass, so a normal event waits behind at most one urgent batch per producer.
  for (std::uint32_t lane : {1U, 0U}) {
    for (std::uint32_t p = 0; p < n; ++p)
      total += drain_ring(*env_.producers[p], lane);
  }
  if (total != 0 && env_.cfg->retention_age.count() > 0) {
    const std::int64_t now = now_ns();
    if (now >= next_retention_check_ns_) {
      const std::int64_t cutoff =
          now -
          std::chrono::duration_cast<std::chrono::nanoseconds>(env_.cfg->retention_age).count();
      for (std::uint32_t part = id_; part < env_.logs->size(); part += env_.cfg->shards) {
        (*env_.logs)[part]->evict_older_than(cutoff);
      }
      next_retention_check_ns_ = now + 1'000'000;  // at most once per millisecond
    }
  }
  return total;
}

std::size_t Shard::drain_ring(ProducerState& p, std::uint32_t lane) {
  RingPair& rp = *p.rings[id_];
  EventRing& ring = rp.lanes[lane];
  const std::span<EventSlot> slots = ring.front_span(env_.cfg->batch_size);
  if (slots.empty()) return 0;

  const std::int64_t ingest = now_ns();  // one clock read per batch
  std::size_t n = 0;
  std::uint64_t expired = 0;
  for (const EventSlot& s : slots) {
    if (s.deadline_ns != 0 && s.deadline_ns <= ingest) {
      ++expired;
      continue;
    }
    PartitionLog& log = *(*env_.logs)[s.partition];
    RecordHeader h{};
    h.id = (log.end_offset() << 16) | s.partition;
    h.publish_ns = s.publish_ns;
    h.ingest_ns = ingest;
    h.deadline_ns = s.deadline_ns;
    h.correlation_id = s.correlation_id != 0 ? s.correlation_id : h.id;
    h.causation_id = s.causation_id;
    h.topic = s.topic;
    h.partition = s.partition;
    h.attempt = 1;
    h.priority = s.priority;
    const RecordHeader* rec = log.append(h, s.key(), s.payload());
    items_[n++] = WorkItem{rec, reinterpret_cast<const std::byte*>(rec + 1) + rec->key_len,
                           rec->payload_len, rec->topic, true};
  }
  const std::size_t taken = slots.size();
  // The events are in the logs now: hand the slots back before running the pipeline so the
  // producer can refill them meanwhile.
  ring.release(taken);
  if (env_.ctx->backpressure == BackpressurePolicy::park) env_.ctx->shard_space[id_].notify();

  batch_.size = n;
  if (n != 0) run_pipeline();

  counters_.appended.add(n);
  counters_.processed.add(n);
  counters_.expired.add(expired);
  counters_.batches.add(1);
  // Release: drain() acquires this; everything the handlers did for these events is visible.
  rp.completed[lane].store(rp.completed[lane].load(std::memory_order_relaxed) + taken,
                           std::memory_order_release);
  return taken;
}

void Shard::build_graph() {
  using namespace tbb::flow;
  const auto& stages = env_.pipeline->stages();
  const std::size_t subs = env_.subscriptions->size();
  if (stages.empty() && subs == 0) return;
  graph_ = std::make_unique<graph>();
  sender<Batch*>* tail = nullptr;

  // Stages: serial, lightweight (run inline in the thread that puts the batch: no task spawn).
  for (const Pipeline::Stage& st : stages) {
    auto node = std::make_unique<function_node<Batch*, Batch*, lightweight>>(*graph_, serial,
                                                                             [this, &st](Batch* b) {
                                                                               run_stage(st, *b);
                                                                               return b;
                                                                             });
    if (tail == nullptr) {
      head_ = node.get();
    } else {
      make_edge(*tail, *node);
    }
    tail = node.get();
    nodes_.push_back(std::move(node));
  }
  if (subs == 0) return;

  // Fan-out to subscriptions: one serial node each. With graph workers they are spawned as
  // tasks and run in parallel; without, lightweight keeps them on the shard thread.
  auto bcast = std::make_unique<broadcast_node<Batch*>>(*graph_);
  if (tail == nullptr) {
    head_ = bcast.get();
  } else {
    make_edge(*tail, *bcast);
  }
  const bool parallel = !graph_pus_.empty() && subs > 1;
  for (std::size_t s = 0; s < subs; ++s) {
    auto body = [this, s](Batch* b) {
      deliver(s, *b);
      return continue_msg{};
    };
    if (parallel) {
      auto node = std::make_unique<function_node<Batch*, continue_msg>>(*graph_, serial, body);
      make_edge(*bcast, *node);
      nodes_.push_back(std::move(node));
    } else {
      auto node =
          std::make_unique<function_node<Batch*, continue_msg, lightweight>>(*graph_, serial, body);
      make_edge(*bcast, *node);
      nodes_.push_back(std::move(node));
    }
  }
  nodes_.push_back(std::move(bcast));
}

void Shard::run_pipeline() {
  if (head_ == nullptr) return;
  arena_->execute([this] {
    head_->try_put(&batch_);
    graph_->wait_for_all();
  });
}

void Shard::run_stage(const Pipeline::Stage& st, Batch& b) {
  std::uint64_t filtered = 0;
  std::uint64_t failed = 0;
  for (std::size_t i = 0; i < b.size; ++i) {
    WorkItem& w = b.items[i];
    if (!w.live) continue;
    try {
      switch (st.kind) {
        case Pipeline::Kind::filter:
          if (!st.filter(EventView(w.rec, w.payload, w.payload_len, w.topic))) {
            w.live = false;
            ++filtered;
          }
          break;
        case Pipeline::Kind::map: {
          Event e(w.rec, w.payload, w.payload_len, w.topic,
                  {b.scratch + i * b.scratch_stride, b.scratch_stride});
          st.map(e);
          w.payload = e.payload().data();
          w.payload_len = static_cast<std::uint32_t>(e.payload().size());
          w.topic = e.topic().value;
          break;
        }
        case Pipeline::Kind::route: {
          const TopicId t = st.route(EventView(w.rec, w.payload, w.payload_len, w.topic));
          if (t.value >= env_.ctx->topic_count) {
            w.live = false;  // routed nowhere: counted as a stage failure
            ++failed;
          } else {
            w.topic = t.value;
          }
          break;
        }
      }
    } catch (...) {
      // A throwing stage never kills the worker: the event leaves the pipeline, counted.
      w.live = false;
      ++failed;
    }
  }
  counters_.filtered.add(filtered);
  counters_.stage_failures.add(failed);
}

void Shard::deliver(std::size_t s, Batch& b) {
  const Subscription& sub = (*env_.subscriptions)[s];
  std::uint64_t calls = 0;
  std::uint64_t ok = 0;
  for (std::size_t i = 0; i < b.size; ++i) {
    const WorkItem& w = b.items[i];
    if (!w.live || sub.matches[w.topic] == 0) continue;
    if (sub.group_size > 1 && w.rec->partition % sub.group_size != sub.member) continue;
    ++calls;
    try {
      const Outcome o = sub.handler(EventView(w.rec, w.payload, w.payload_len, w.topic));
      if (o.kind() == Outcome::Kind::ok) ++ok;
    } catch (...) {
      // Counted as a failed delivery; the worker carries on.
    }
  }
  SubscriptionCounters& c = *sub_counters_[s];
  c.deliveries.add(calls);
  c.ok.add(ok);
  c.failures.add(calls - ok);
}

}  // namespace ringflow::detail
