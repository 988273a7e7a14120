#include "shard.hpp"

#include <pthread.h>
#include <algorithm>

#include <cstring>
#include <exception>

#include "logger.hpp"
#include "pinned_arena.hpp"
#include "ringflow/clock.hpp"
#include "ringflow/topology.hpp"
#include "ringflow/wait_strategy.hpp"
#include "store/checkpoint/checkpoint_store.hpp"
#include "store/wal/durability.hpp"

namespace ringflow::detail {

namespace {
/// Copies an error text into a fixed NUL-padded field, truncating.
void copy_error(char (&dst)[DeadLetterInfo::kErrorBytes], std::string_view text) noexcept {
  const std::size_t n = std::min(text.size(), sizeof dst - 1);
  std::memcpy(dst, text.data(), n);
  std::memset(dst + n, 0, sizeof dst - n);
}
}  // namespace

Shard::Shard(ShardEnv env, std::uint32_t id, ThreadPlacement placement,
             std::vector<int> graph_worker_pus, bool pin)
    : env_(env),
      id_(id),
      placement_(std::move(placement)),
      graph_pus_(std::move(graph_worker_pus)),
      pin_(pin),
      wheel_(env.cfg->retry_capacity) {
  const std::size_t batch = env_.cfg->batch_size;
  items_.resize(batch);
  scratch_.resize(batch * env_.cfg->max_payload_bytes);
  batch_.items = items_.data();
  batch_.scratch = scratch_.data();
  batch_.scratch_stride = env_.cfg->max_payload_bytes;
  for (std::size_t i = 0; i < env_.subscriptions->size(); ++i) {
    sub_counters_.push_back(std::make_unique<SubscriptionCounters>());
    sub_watch_.push_back(std::make_unique<CallWatch>());
  }
  failures_.assign(env_.subscriptions->size(), std::vector<Failure>(batch));
  staged_.resize(batch);
  topic_counters_ = std::vector<TopicCounters>(env_.dead_letter_topic->size());
  dedup_.resize(env_.logs->size());
  if (env_.cfg->idempotency_window != 0) {
    const std::int64_t age =
        std::chrono::duration_cast<std::chrono::nanoseconds>(env_.cfg->idempotency_window_age)
            .count();
    for (std::size_t p = id_; p < dedup_.size(); p += env_.cfg->shards) {
      dedup_[p] = std::make_unique<DedupWindow>(env_.cfg->idempotency_window, age);
      // Keys the write-ahead log recovered: a duplicate published after a restart is still
      // recognised (within the window).
      if (env_.recovered_keys != nullptr && p < env_.recovered_keys->size()) {
        for (const RecoveredKey& k : (*env_.recovered_keys)[p])
          (void)dedup_[p]->seen_or_insert(k.key, k.ingest_ns);
      }
    }
  }
  nfailures_.assign(env_.subscriptions->size(), 0);
  if (env_.positions != nullptr) {
    tracking_ = true;
    std::size_t durable = 0;
    for (const Subscription& sub : *env_.subscriptions)
      durable += sub.durable != Subscription::kNotDurable ? 1 : 0;
    outstanding_.assign(durable * env_.logs->size(), 0);
    touched_.assign(env_.logs->size(), 0);
    touched_flag_.assign(env_.logs->size(), 0);
  }
  sample_every_ = env_.cfg->metrics_latency_sample_every;
  sample_left_ = sample_every_;
  rng_ ^= (std::uint64_t{id} + 1) * 0xBF58476D1CE4E5B9ULL;
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
  const EngineThreadScope scope;  // handlers on this thread may not drain()/stop()
  // Named, so per-thread tools (perf, top -H, gdb) can tell shards apart.
  const std::string name = "rf-shard-" + std::to_string(id_);
  (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  if (pin_ && placement_.pu_os_index >= 0) {
    const PinResult r = pin_current_thread_to_pu(placement_.pu_os_index);
    if (!r) {
      pin_note_ = r.reason;
      Logger(env_.log_sink)
          .log(LogLevel::warn, "placement",
               "shard " + std::to_string(id_) + " not pinned to PU " +
                   std::to_string(placement_.pu_os_index) + ": " + r.reason);
    }
  }
  arena_ = std::make_unique<PinnedArena>(graph_pus_, pin_);
  // The flow graph only pays off when graph workers can run subscriptions in parallel.
  inline_pipeline_ = graph_pus_.empty() || env_.subscriptions->size() < 2;
  if (!inline_pipeline_) arena_->execute([this] { build_graph(); });
  // Durable subscriptions resume first: no event published from now on reaches one of them
  // before the events it had not finished (replay() returns before the first poll).
  if (tracking_) replay();
  // Release: drain() acquires it; the replayed batches (and the retries they scheduled) are
  // complete, or on the wheel where drain() looks next.
  replay_done_.store(true, std::memory_order_release);

  const WaitStrategyKind wait = env_.cfg->wait_strategy;
  // spin_yield: spin for kSpinBeforeYieldNs after the last work, then yield. A time budget,
  // not a poll count, so that at moderate rates (an event every few us) the shard is still
  // spinning when the next one comes instead of handing its core to another thread.
  constexpr std::int64_t kSpinBeforeYieldNs = 100'000;
  std::int64_t idle_since = 0;  // 0 = not idle
  for (;;) {
    std::size_t work = poll_once();
    if (wheel_.pending() != 0) {
      work += wheel_.poll(clock_.now(), [this](RetryEntry& e) { fire_retry(e); });
      if (tracking_) publish_positions();
      publish_retry_pending();
    }
    if (work != 0) {
      idle_since = 0;
      continue;
    }
    if (wal_blocked_) [[unlikely]] {
      // Waiting for the write-ahead log's writer (it needs a core too): not idle, not parked.
      wal_blocked_ = false;
      counters_.wal_waits.add(1);
      std::this_thread::yield();
      continue;
    }
    // Acquire: pairs with request_exit(); stop() only asks after every producer is quiet and
    // every retry is done, so once the rings are empty here they stay empty.
    if (exit_.load(std::memory_order_acquire) && idle()) break;
    counters_.idle_polls.add(1);
    switch (wait) {
      case WaitStrategyKind::busy_spin:
        cpu_relax();
        break;
      case WaitStrategyKind::spin_yield: {
        const std::int64_t now = clock_.now();
        if (idle_since == 0) idle_since = now;
        if (now - idle_since < kSpinBeforeYieldNs) {
          cpu_relax();
        } else {
          counters_.yields.add(1);
          std::this_thread::yield();
        }
        break;
      }
      case WaitStrategyKind::park: {
        const auto ready = [this] {
          return exit_.load(std::memory_order_acquire) || !rings_empty();
        };
        counters_.parks.add(1);
        if (wheel_.pending() == 0) {
          env_.ctx->shard_work[id_].wait_until(ready);
        } else {
          // Sleep no longer than the next retry is due, and at most kRetrySleepNs: should the
          // clock jump forward meanwhile, the retries now due fire within that time.
          constexpr std::int64_t kRetrySleepNs = 50'000'000;
          const auto due = std::chrono::steady_clock::now() +
                           std::chrono::nanoseconds(std::clamp<std::int64_t>(
                               wheel_.earliest_due() - clock_.now(), 0, kRetrySleepNs));
          (void)env_.ctx->shard_work[id_].wait_until(ready, due);
        }
        break;
      }
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
  // Urgent lanes first: up to rings.urgent_ratio rounds (one batch per producer's urgent ring
  // each) while urgent events keep coming, then one round of the normal lanes. So urgent
  // events wait behind at most one normal batch per producer, and normal events are never
  // starved: they get at least one batch per urgent_ratio urgent batches.
  for (std::uint32_t round = 0; round < env_.cfg->urgent_ratio; ++round) {
    std::size_t urgent = 0;
    for (std::uint32_t p = 0; p < n; ++p)
      urgent += drain_ring(*env_.producers[p], 1);
    total += urgent;
    if (urgent == 0) break;
  }
  for (std::uint32_t p = 0; p < n; ++p)
    total += drain_ring(*env_.producers[p], 0);
  if (total != 0 && env_.cfg->retention_age.count() > 0) {
    const std::int64_t now = clock_.now();
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

  // One clock read per batch: deadlines are on the producers' clock, stored times on the
  // shard's (never backwards).
  const std::int64_t raw_now = now_ns();
  const std::int64_t ingest = clock_.at(raw_now);
  std::size_t n = 0;
  std::uint64_t expired = 0;
  std::uint64_t duplicates = 0;
  std::uint32_t requests_in_batch = 0;
  std::size_t taken = 0;
  for (const EventSlot& s : slots) {
    if (env_.wal && !(*env_.logs)[s.partition]->durable_headroom()) [[unlikely]] {
      // The write-ahead log is behind: leave the rest in the ring (back-pressure) until its
      // writer has made room, rather than evict records it has not written.
      wal_blocked_ = true;
      break;
    }
    ++taken;
    if (tracking_) touch(s.partition);
    TopicCounters& tc = topic_counters_[s.topic];
    tc.accepted.add(1);
    if (s.deadline_ns != 0 && s.deadline_ns <= raw_now) [[unlikely]] {
      tc.expired.add(1);
      // Never processed: it goes to the topic's dead letters with reason `expired`.
      RecordHeader h{};
      h.offset = UINT64_MAX;  // never stored in its own topic
      h.publish_ns = s.publish_ns;
      h.deadline_ns = s.deadline_ns;
      h.correlation_id = s.correlation_id;
      h.causation_id = s.causation_id;
      h.topic = s.topic;
      h.partition = s.partition;
      h.priority = s.priority;
      // Stored with the batch's ingest time: the records after it carry the same one, so
      // ingest_ns stays non-decreasing within the partition.
      dead_letter(kNoTopic, h, s.key(), s.payload(), 0, DeadLetterReason::expired, "",
                  "deadline passed before ingest", ingest, s.reply_token);
      ++expired;
      continue;
    }
    if (s.idempotency_key != 0 && dedup_[s.partition] &&
        dedup_[s.partition]->seen_or_insert(s.idempotency_key, ingest)) {
      ++duplicates;  // seen in this partition's window: dropped, counted
      tc.duplicates.add(1);
      continue;
    }
    PartitionLog& log = *(*env_.logs)[s.partition];
    RecordHeader h{};
    h.id = make_event_id(log.end_offset(), s.partition);
    h.publish_ns = s.publish_ns;
    h.ingest_ns = ingest;
    h.deadline_ns = s.deadline_ns;
    h.correlation_id = s.correlation_id != 0 ? s.correlation_id : h.id;
    h.causation_id = s.causation_id;
    h.topic = s.topic;
    h.partition = s.partition;
    h.attempt = 1;
    h.priority = s.priority;
    h.idempotency_key = s.idempotency_key;
    const RecordHeader* rec = log.append(h, s.key(), s.payload());
    tc.appended.add(1);
    items_[n++] = WorkItem{rec,
                           reinterpret_cast<const std::byte*>(rec + 1) + rec->key_len,
                           rec->payload_len,
                           rec->topic,
                           true,
                           s.reply_token};
    requests_in_batch += s.reply_token != 0 ? 1U : 0U;
  }
  if (taken == 0) return 0;
  if (env_.wal) {
    // Release: the log's writer acquires it, then reads the logs' ends: these events are
    // below them (their durable acknowledgement).
    rp.appended[lane].store(rp.appended[lane].load(std::memory_order_relaxed) + taken,
                            std::memory_order_release);
  }
  // The events are in the logs now: hand the slots back before running the pipeline so the
  // producer can refill them meanwhile.
  ring.release(taken);
  // Relaxed: a producer that parks re-checks its ring after announcing itself (Parking's
  // protocol); this flag only spares the fence when no producer parks at all.
  // Only this ring's producer can be waiting for this space: wake it, not every producer
  // parked on this shard.
  if (env_.ctx->notify_space.load(std::memory_order_relaxed)) rp.space.notify();

  batch_.size = n;
  if (n != 0) {
    // Sampled latency: one batch per sample_every_ events is timed (a clock read after each
    // stage of the shard's work), the others cost one subtraction. Every event of a timed batch
    // was ingested at `ingest` and went through each stage with it: it counts once per event.
    timing_ = false;
    if (sample_every_ != 0) {
      sample_left_ -= static_cast<std::int64_t>(n);
      if (sample_left_ <= 0) [[unlikely]] {
        sample_left_ = sample_every_;
        timing_ = true;
      }
    }
    const std::int64_t stored = timing_ ? now_ns() : 0;
    stages_ns_ = 0;
    run_pipeline();
    if (stage_throws_ != 0) [[unlikely]]
      log_stage_exceptions();
    if (requests_in_batch != 0) complete_unheard_requests();
    const std::int64_t handled = timing_ ? now_ns() : 0;
    handle_failures();
    if (timing_) [[unlikely]] {
      const std::int64_t done = clock_.now();  // on the shard's clock, as `ingest`
      const auto span = [](std::int64_t from, std::int64_t to) {
        return static_cast<std::uint64_t>(std::max<std::int64_t>(0, to - from));
      };
      const std::uint64_t pipeline = span(stored, handled);
      const std::uint64_t stages = std::min(span(0, stages_ns_), pipeline);
      ingest_to_done_.record(span(ingest, done), n);
      stage_latency_[static_cast<std::size_t>(LatencyStage::store)].record(span(ingest, stored), n);
      stage_latency_[static_cast<std::size_t>(LatencyStage::stages)].record(stages, n);
      stage_latency_[static_cast<std::size_t>(LatencyStage::handlers)].record(pipeline - stages, n);
      stage_latency_[static_cast<std::size_t>(LatencyStage::failures)].record(span(handled, done),
                                                                              n);
    }
  }

  counters_.appended.add(n);
  counters_.processed.add(n);
  counters_.expired.add(expired);
  counters_.duplicates.add(duplicates);
  counters_.batches.add(1);
  // Before `completed`: once drain() returns, the positions cover these events.
  if (tracking_) publish_positions();
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
      const EngineThreadScope scope;  // may run on a TBB worker: handlers there may not drain()
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
  if (inline_pipeline_) {
    // No graph worker could run a node in parallel: every node would run on this thread,
    // in this order, anyway. Calling them directly spares the arena entry and the graph's
    // task bookkeeping per batch.
    for (const Pipeline::Stage& st : env_.pipeline->stages())
      run_stage(st, batch_);
    for (std::size_t s = 0; s < env_.subscriptions->size(); ++s)
      deliver(s, batch_);
    return;
  }
  if (head_ == nullptr) return;
  arena_->execute([this] {
    head_->try_put(&batch_);
    graph_->wait_for_all();
  });
}

void Shard::run_stage(const Pipeline::Stage& st, Batch& b) {
  const std::int64_t started = timing_ ? now_ns() : 0;
  std::uint64_t filtered = 0;
  std::uint64_t failed = 0;
  // Relaxed: a sample for the watchdog, read with the stage slot (CallWatch).
  watched_stage_.store(static_cast<std::uint32_t>(&st - env_.pipeline->stages().data()),
                       std::memory_order_relaxed);
  for (std::size_t i = 0; i < b.size; ++i) {
    WorkItem& w = b.items[i];
    if (!w.live) continue;
    stage_watch_.enter(w.topic);
    try {
      switch (st.kind) {
        case Pipeline::Kind::filter:
          if (!st.filter(EventView(w.rec, w.payload, w.payload_len, w.topic, w.reply_token))) {
            w.live = false;
            ++filtered;
          }
          break;
        case Pipeline::Kind::map: {
          Event e(w.rec, w.payload, w.payload_len, w.topic,
                  {b.scratch + i * b.scratch_stride, b.scratch_stride}, w.reply_token);
          st.map(e);
          if (!routable(e.topic().value)) {
            // set_topic() to an unknown or dead-letter topic: like a route to nowhere, the
            // event leaves the pipeline, counted as a stage failure.
            w.live = false;
            ++failed;
            break;
          }
          w.payload = e.payload().data();
          w.payload_len = static_cast<std::uint32_t>(e.payload().size());
          w.topic = e.topic().value;
          break;
        }
        case Pipeline::Kind::route: {
          const TopicId t =
              st.route(EventView(w.rec, w.payload, w.payload_len, w.topic, w.reply_token));
          if (!routable(t.value)) {
            w.live = false;  // routed nowhere (or at a dead-letter topic): a stage failure
            ++failed;
          } else {
            w.topic = t.value;
          }
          break;
        }
      }
    } catch (const std::exception& e) {
      // A throwing stage never kills the worker: the event leaves the pipeline, counted, and
      // the shard logs it after the pipeline (rate limited).
      w.live = false;
      ++failed;
      note_stage_exception(st, e.what());
    } catch (...) {
      w.live = false;
      ++failed;
      note_stage_exception(st, "unknown exception");
    }
  }
  stage_watch_.leave();
  if (!replaying_) {  // a replay re-runs stages for one subscription: not new processing
    counters_.filtered.add(filtered);
    counters_.stage_failures.add(failed);
  }
  if (timing_) [[unlikely]]
    stages_ns_ += now_ns() - started;
}

void Shard::deliver(std::size_t s, Batch& b) {
  const Subscription& sub = (*env_.subscriptions)[s];
  CallWatch& watch = *sub_watch_[s];
  std::uint64_t calls = 0;
  std::uint64_t ok = 0;
  for (std::size_t i = 0; i < b.size; ++i) {
    const WorkItem& w = b.items[i];
    if (!w.live || sub.matches[w.topic] == 0) continue;
    if (sub.group_size > 1 && w.rec->partition % sub.group_size != sub.member) continue;
    ++calls;
    Failure* f = nullptr;
    watch.enter(w.topic);
    try {
      const Outcome o =
          sub.handler(EventView(w.rec, w.payload, w.payload_len, w.topic, w.reply_token));
      if (o.kind() == Outcome::Kind::ok) {
        ++ok;
        continue;
      }
      f = &failures_[s][nfailures_[s]++];
      f->kind = o.kind();
      f->delay_ns = o.delay().count();
      f->threw = false;
      copy_error(f->error, o.kind() == Outcome::Kind::retry ? std::string_view("retry requested")
                                                            : o.reason());
    } catch (const std::exception& e) {
      f = &failures_[s][nfailures_[s]++];
      f->kind = Outcome::Kind::fail;
      f->delay_ns = 0;
      f->threw = true;
      copy_error(f->error, e.what());
    } catch (...) {
      f = &failures_[s][nfailures_[s]++];
      f->kind = Outcome::Kind::fail;
      f->delay_ns = 0;
      f->threw = true;
      copy_error(f->error, "unknown exception");
    }
    f->item = static_cast<std::uint32_t>(i);
  }
  if (calls != 0) watch.leave();
  SubscriptionCounters& c = *sub_counters_[s];
  c.deliveries.add(calls);
  c.ok.add(ok);
  c.failures.add(calls - ok);
}

}  // namespace ringflow::detail

namespace ringflow::detail {

void Shard::publish_retry_pending() noexcept {
  // Release (each): drain()/stop() acquire them; what the retried handlers did is visible.
  retry_chains_started_.store(wheel_.chains_started(), std::memory_order_release);
  retry_oldest_chain_.store(wheel_.oldest_chain(), std::memory_order_release);
  retry_pending_.store(wheel_.pending(), std::memory_order_release);
}

std::int64_t Shard::backoff(const Subscription& sub, std::uint32_t attempt) noexcept {
  // Exponential: backoff_ns * 2^(attempt-1), capped, with +-25 % jitter so that retries of
  // a burst do not fire in lockstep.
  std::int64_t d = retry_backoff(sub.backoff_ns, sub.backoff_max_ns, attempt);
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  const std::int64_t span = d / 2;
  if (span > 0) {
    d = add_saturating(
        d, static_cast<std::int64_t>(rng_ % static_cast<std::uint64_t>(span)) - span / 2);
  }
  return d;
}

void Shard::stage(std::uint32_t item) {
  StagedEvent& st = staged_[item];
  if (st.staged) return;
  const WorkItem& w = items_[item];
  st.hdr = *w.rec;
  const auto* body = reinterpret_cast<const std::byte*>(w.rec + 1);
  std::memcpy(st.bytes, body, std::size_t{st.hdr.key_len} + st.hdr.payload_len);
  // The handlers' payload is the stored one unless a map stage replaced it in the scratch
  // buffer (which no append touches).
  const bool in_scratch =
      w.payload >= scratch_.data() && w.payload < scratch_.data() + scratch_.size();
  st.payload = in_scratch ? w.payload : st.bytes + st.hdr.key_len;
  st.payload_len = in_scratch ? w.payload_len : st.hdr.payload_len;
  st.reply_token = w.reply_token;
  st.staged = true;
}

void Shard::handle_failures() {
  // 1. Copy every failing event out of the log first: the dead letters appended below may
  //    reuse the segments holding this batch's records (small retention, many failures).
  bool any = false;
  for (std::uint32_t s = 0; s < nfailures_.size(); ++s) {
    for (std::size_t k = 0; k < nfailures_[s]; ++k) {
      stage(failures_[s][k].item);
      any = true;
    }
  }
  // 2. Then act on them, from the copies only.
  for (std::uint32_t s = 0; any && s < nfailures_.size(); ++s) {
    for (std::size_t k = 0; k < nfailures_[s]; ++k) {
      const Failure& f = failures_[s][k];
      const StagedEvent& st = staged_[f.item];
      if (f.threw) [[unlikely]]
        log_handler_exception(s, items_[f.item].topic, f.error);
      on_failure(s, st.hdr, st.key(), st.original(), {st.payload, st.payload_len},
                 items_[f.item].topic, st.hdr.attempt, f, f.error, nullptr, st.reply_token);
    }
    nfailures_[s] = 0;
  }
  if (any) {
    for (std::size_t i = 0; i < batch_.size; ++i)
      staged_[i].staged = false;
  }
  publish_retry_pending();
}

void Shard::on_failure(std::uint32_t sub, const RecordHeader& rec, std::string_view key,
                       std::span<const std::byte> original, std::span<const std::byte> payload,
                       std::uint32_t topic, std::uint32_t attempt, const Failure& f,
                       const char* first_error, const RetryEntry* continues,
                       std::uint32_t reply_token) {
  const Subscription& s = (*env_.subscriptions)[sub];
  if (f.kind != Outcome::Kind::retry || attempt >= s.max_attempts) {
    dead_letter(sub, rec, key, original, attempt,
                f.kind == Outcome::Kind::retry ? DeadLetterReason::retries_exhausted
                                               : DeadLetterReason::failed,
                first_error, f.error, clock_.now(), reply_token);
    return;
  }
  RetryEntry* e = wheel_.acquire();
  if (e == nullptr) {
    log_retry_overflow();
    dead_letter(sub, rec, key, original, attempt, DeadLetterReason::retry_overflow, first_error,
                f.error, clock_.now(), reply_token);
    return;
  }
  e->hdr = rec;
  e->hdr.attempt = static_cast<std::uint16_t>(attempt + 1);
  e->hdr.key_len = static_cast<std::uint8_t>(key.size());
  std::memcpy(e->data, key.data(), key.size());
  std::memcpy(e->data + key.size(), payload.data(), payload.size());
  e->payload_len = static_cast<std::uint16_t>(payload.size());
  std::memcpy(e->original, original.data(), original.size());
  e->original_len = static_cast<std::uint16_t>(original.size());
  e->topic = topic;
  e->subscription = sub;
  e->reply_token = reply_token;
  std::memcpy(e->first_error, first_error, sizeof e->first_error);
  // A delay the handler asks for is bounded by retry_backoff_max like the backoff itself, so
  // that no retry (and no drain() waiting for it) is put off indefinitely.
  const std::int64_t delay =
      f.delay_ns > 0 ? std::min(f.delay_ns, s.backoff_max_ns) : backoff(s, attempt);
  e->due_ns = add_saturating(clock_.now(), delay);
  wheel_.schedule(e, continues);
  counters_.retries.add(1);
  if (s.durable != Subscription::kNotDurable) {
    // The event is unfinished for this subscription until the chain ends: its position may
    // not pass it. The first outstanding retry of the partition freezes the position there
    // (later failures of the partition have higher offsets).
    std::uint32_t& out = outstanding_[std::size_t{s.durable} * env_.logs->size() + rec.partition];
    if (out++ == 0) store_position(s.durable, rec.partition, rec.offset);
  }
}

void Shard::fire_retry(RetryEntry& e) {
  const Subscription& sub = (*env_.subscriptions)[e.subscription];
  if (sub.durable != Subscription::kNotDurable) {
    // This chain is no longer outstanding; should it continue, on_failure() counts it again.
    --outstanding_[std::size_t{sub.durable} * env_.logs->size() + e.hdr.partition];
    touch(e.hdr.partition);
  }
  const std::span<const std::byte> original(e.original, e.original_len);
  const std::uint32_t attempt = e.hdr.attempt;
  Failure f{};
  f.kind = Outcome::Kind::fail;
  if (e.hdr.deadline_ns != 0 && e.hdr.deadline_ns <= now_ns()) {
    copy_error(f.error, "deadline passed before retry");
    dead_letter(e.subscription, e.hdr, e.key(), original, attempt - 1, DeadLetterReason::expired,
                e.first_error, f.error, clock_.now(), e.reply_token);
    return;
  }
  SubscriptionCounters& c = *sub_counters_[e.subscription];
  c.deliveries.add(1);
  c.retried.add(1);
  CallWatch& watch = *sub_watch_[e.subscription];
  watch.enter(e.topic);
  try {
    // The view's key sits right after the header, as in the log: RetryEntry keeps that layout.
    const Outcome o =
        sub.handler(EventView(&e.hdr, e.payload(), e.payload_len, e.topic, e.reply_token));
    watch.leave();
    if (o.kind() == Outcome::Kind::ok) {
      c.ok.add(1);
      return;
    }
    f.kind = o.kind();
    f.delay_ns = o.delay().count();
    copy_error(f.error,
               o.kind() == Outcome::Kind::retry ? std::string_view("retry requested") : o.reason());
  } catch (const std::exception& ex) {
    watch.leave();
    copy_error(f.error, ex.what());
    log_handler_exception(e.subscription, e.topic, f.error);
  } catch (...) {
    watch.leave();
    copy_error(f.error, "unknown exception");
    log_handler_exception(e.subscription, e.topic, f.error);
  }
  c.failures.add(1);
  on_failure(e.subscription, e.hdr, e.key(), original, {e.payload(), e.payload_len}, e.topic,
             attempt, f, e.first_error, &e, e.reply_token);
}

void Shard::dead_letter(std::uint32_t sub, const RecordHeader& rec, std::string_view key,
                        std::span<const std::byte> original, std::uint32_t attempts,
                        DeadLetterReason reason, const char* first_error, const char* last_error,
                        std::int64_t ingest_ns, std::uint32_t reply_token) {
  if (sub < sub_counters_.size()) sub_counters_[sub]->dead_lettered.add(1);
  // A request ends here: its caller learns why (an expired one as expired), not at its
  // deadline. Later subscriptions' outcomes for the same event change nothing.
  if (reply_token != 0) {
    complete_request(
        reply_token, rec.publish_ns,
        reason == DeadLetterReason::expired ? RequestStatus::expired : RequestStatus::dead_lettered,
        reason);
  }
  const std::uint32_t dlq =
      rec.topic < env_.dead_letter_topic->size() ? (*env_.dead_letter_topic)[rec.topic] : kNoTopic;
  if (dlq == kNoTopic) {
    // Defensive: only dead-letter topics have none, and their handlers are not retried.
    counters_.dead_letter_failures.add(1);
    return;
  }
  counters_.dead_lettered[static_cast<std::size_t>(reason)].add(1);
  if (rec.topic < topic_counters_.size()) topic_counters_[rec.topic].dead_lettered.add(1);
  DeadLetterInfo info{};
  info.origin_offset = rec.offset;
  info.dead_ns = now_ns();
  info.origin_topic = rec.topic;
  info.subscription = sub;
  info.attempts = attempts;
  info.reason = reason;
  copy_error(info.first_error, first_error);
  copy_error(info.last_error, last_error);

  PartitionLog& log = *(*env_.logs)[rec.partition];
  RecordHeader h = rec;
  h.id = make_event_id(log.end_offset(), rec.partition);
  h.ingest_ns = ingest_ns;
  // Tracing: a dead letter is caused by the event it reports (or by what caused that one,
  // when the event was never stored).
  h.causation_id = rec.offset != UINT64_MAX ? rec.id : rec.causation_id;
  if (h.correlation_id == 0) h.correlation_id = h.id;
  h.topic = dlq;
  h.attempt = static_cast<std::uint16_t>(attempts);
  const RecordHeader* stored = log.append(h, key, original, &info);
  deliver_dead_letter(stored);
}

void Shard::deliver_dead_letter(const RecordHeader* rec, std::size_t only) {
  const auto* payload = reinterpret_cast<const std::byte*>(rec + 1) + rec->key_len;
  for (std::size_t s = 0; s < env_.subscriptions->size(); ++s) {
    if (only != SIZE_MAX && s != only) continue;
    const Subscription& sub = (*env_.subscriptions)[s];
    if (sub.matches[rec->topic] == 0) continue;
    if (sub.group_size > 1 && rec->partition % sub.group_size != sub.member) continue;
    SubscriptionCounters& c = *sub_counters_[s];
    c.deliveries.add(1);
    bool ok = false;
    CallWatch& watch = *sub_watch_[s];
    watch.enter(rec->topic);
    try {
      ok = sub.handler(EventView(rec, payload, rec->payload_len, rec->topic)).kind() ==
           Outcome::Kind::ok;
    } catch (const std::exception& e) {
      ok = false;
      log_handler_exception(static_cast<std::uint32_t>(s), rec->topic, e.what());
    } catch (...) {
      ok = false;
      log_handler_exception(static_cast<std::uint32_t>(s), rec->topic, "unknown exception");
    }
    watch.leave();
    if (ok) {
      c.ok.add(1);
    } else {
      // One attempt per dead letter: the subscription gave up on it (counted as its
      // dead_lettered, so first_deliveries == ok + dead_lettered holds here too); it stays in
      // the dead-letter topic's log, not re-queued (no DLQ of a DLQ).
      c.failures.add(1);
      c.dead_lettered.add(1);
      counters_.dead_letter_failures.add(1);
    }
  }
}

}  // namespace ringflow::detail

namespace ringflow::detail {

void Shard::complete_request(std::uint32_t reply_token, std::int64_t publish_ns,
                             RequestStatus status, DeadLetterReason reason) noexcept {
  const std::uint32_t p = RequestTable::producer_of(reply_token);
  // Acquire: pairs with make_producer()'s release; the producer's table is built.
  if (p >= env_.producer_count->load(std::memory_order_acquire)) return;
  // Acquire: pairs with make_producer()'s release; the table is built.
  RequestTable* t = env_.producers[p]->requests.load(std::memory_order_acquire);
  if (t != nullptr)
    (void)t->complete(RequestTable::slot_of(reply_token), publish_ns, status, {}, reason);
}

void Shard::complete_unheard_requests() noexcept {
  for (std::size_t i = 0; i < batch_.size; ++i) {
    const WorkItem& w = items_[i];
    if (w.reply_token == 0) continue;
    // Dropped by a stage, or at a topic no subscription matches: nobody will reply.
    if (!w.live || (env_.ctx->topic_flags[w.topic] & kTopicHasSubscriber) == 0) {
      complete_request(w.reply_token, w.rec->publish_ns, RequestStatus::no_subscriber);
    }
  }
}

}  // namespace ringflow::detail

namespace ringflow::detail {

std::string Shard::topic_name(std::uint32_t t) const {
  // append(), not "#" + ...: GCC 12 warns falsely (-Wrestrict) on that once inlined.
  return t < env_.topic_names->size() ? (*env_.topic_names)[t]
                                      : std::string("#").append(std::to_string(t));
}

void Shard::log_handler_exception(std::uint32_t sub, std::uint32_t topic,
                                  const char* what) noexcept {
  std::uint64_t suppressed = 0;
  if (!handler_log_limit_.admit(now_ns(), suppressed)) return;
  const Subscription& s = (*env_.subscriptions)[sub];
  try {  // building the record may throw (bad_alloc): logging must not stop the shard
    Logger(env_.log_sink)
        .log(LogLevel::error, "delivery",
             "shard " + std::to_string(id_) + ": handler of subscription " + std::to_string(sub) +
                 " ('" + s.pattern + "') threw on topic '" + topic_name(topic) + "': " + what,
             suppressed);
  } catch (...) {  // NOLINT(bugprone-empty-catch): the record is lost, the shard goes on
  }
}

void Shard::note_stage_exception(const Pipeline::Stage& st, const char* what) noexcept {
  if (stage_throws_++ == 0) {
    stage_thrower_ = &st;
    copy_error(stage_error_, what);
  }
}

void Shard::log_stage_exceptions() noexcept {
  const std::uint64_t n = stage_throws_;
  stage_throws_ = 0;
  std::uint64_t suppressed = 0;
  if (!stage_log_limit_.admit(now_ns(), suppressed)) return;
  try {  // as above
    Logger(env_.log_sink)
        .log(LogLevel::error, "pipeline",
             "shard " + std::to_string(id_) + ": stage '" + stage_thrower_->name + "' threw on " +
                 std::to_string(n) +
                 " event(s) of a batch (dropped, counted as stage failures): " + stage_error_,
             suppressed);
  } catch (...) {  // NOLINT(bugprone-empty-catch): the record is lost, the shard goes on
  }
}

void Shard::log_retry_overflow() noexcept {
  std::uint64_t suppressed = 0;
  if (!overflow_log_limit_.admit(now_ns(), suppressed)) return;
  try {  // as above
    Logger(env_.log_sink)
        .log(LogLevel::warn, "config",
             "shard " + std::to_string(id_) + ": retry.capacity (" +
                 std::to_string(env_.cfg->retry_capacity) +
                 ") retries already scheduled: the event is dead-lettered (retry_overflow); "
                 "raise retry.capacity or slow the retries",
             suppressed);
  } catch (...) {  // NOLINT(bugprone-empty-catch): the record is lost, the shard goes on
  }
}

}  // namespace ringflow::detail

namespace ringflow::detail {

void Shard::store_position(std::uint32_t durable, std::uint32_t partition,
                           std::uint64_t offset) noexcept {
  // Release: pairs with the checkpoint writer's acquire; the handlers' work for the events
  // below `offset` happens before a checkpoint that covers them is written.
  env_.positions->at(durable, partition).store(offset, std::memory_order_release);
}

void Shard::publish_positions() noexcept {
  const std::size_t parts = env_.logs->size();
  for (std::size_t i = 0; i < ntouched_; ++i) {
    const std::uint32_t p = touched_[i];
    touched_flag_[p] = 0;
    // Everything below the end has been through the pipeline and its dead letters delivered;
    // what a durable subscription has not finished is on the wheel (outstanding_).
    const std::uint64_t end = (*env_.logs)[p]->end_offset();
    for (const Subscription& sub : *env_.subscriptions) {
      if (sub.durable == Subscription::kNotDurable) continue;
      if (outstanding_[std::size_t{sub.durable} * parts + p] == 0)
        store_position(sub.durable, p, end);
    }
  }
  ntouched_ = 0;
}

void Shard::replay() {
  const std::size_t parts = env_.logs->size();
  replaying_ = true;
  // The recovered ends: dead letters the replay makes are appended past them, and delivered
  // (as live ones) when they are made, so they are not replayed to another subscription.
  std::vector<std::uint64_t> ends(parts, 0);
  for (std::uint32_t p = id_; p < parts; p += env_.cfg->shards)
    ends[p] = (*env_.logs)[p]->end_offset();
  for (std::uint32_t p = id_; p < parts; p += env_.cfg->shards) {
    for (std::uint32_t s = 0; s < env_.subscriptions->size(); ++s) {
      const Subscription& sub = (*env_.subscriptions)[s];
      if (sub.durable == Subscription::kNotDurable) continue;
      const std::uint64_t from = (*env_.replay_from)[std::size_t{sub.durable} * parts + p];
      if (from == UINT64_MAX) continue;
      if (sub.group_size > 1 && p % sub.group_size != sub.member) continue;  // not its partition
      replay_partition(s, p, from, ends[p]);
    }
  }
  replaying_ = false;
  replay_buf_ = {};
  // Dead letters made during the replay lie past the recovered ends; from here on every
  // position follows its partition's log.
  for (std::uint32_t p = id_; p < parts; p += env_.cfg->shards)
    touch(p);
  publish_positions();
}

void Shard::replay_partition(std::uint32_t s, std::uint32_t p, std::uint64_t from,
                             std::uint64_t end) {
  const Subscription& sub = (*env_.subscriptions)[s];
  const std::size_t batch = env_.cfg->batch_size;
  constexpr std::size_t kStride = (PartitionLog::kMaxRecordBytes + 7) / 8;  // in words
  if (replay_buf_.empty()) replay_buf_.resize(batch * kStride);
  const PartitionLog& log = *(*env_.logs)[p];
  SubscriptionCounters& c = *sub_counters_[s];
  const std::uint64_t first_before = c.deliveries.get() - c.retried.get();
  PartitionReader r = log.reader();
  if (r.seek(from) == ReadStatus::evicted) {
    Logger(env_.log_sink)
        .log(LogLevel::warn, "checkpoint",
             "durable subscription '" + sub.durable_name + "', partition " + std::to_string(p) +
                 ": offsets " + std::to_string(from) + ".." + std::to_string(r.position()) +
                 " are no longer held in memory (log.retention_bytes): replay starts at " +
                 std::to_string(r.position()));
  }
  while (r.position() < end) {
    std::size_t n = 0;
    while (n < batch && r.position() < end) {
      auto* buf = reinterpret_cast<std::byte*>(replay_buf_.data() + n * kStride);
      std::size_t size = 0;
      const ReadStatus st = r.next_raw(buf, size);
      if (st == ReadStatus::end) break;
      if (st == ReadStatus::evicted) continue;  // cannot happen: nothing evicts during replay
      const auto* rec = reinterpret_cast<const RecordHeader*>(buf);
      if ((env_.ctx->topic_flags[rec->topic] & kTopicDeadLetter) != 0) {
        // A dead letter: delivered as live ones are (one attempt, no stages), in log order.
        // (Its copy is past the batch's slots: the batch leaves it intact.)
        run_replay_batch(s, n);
        n = 0;
        deliver_dead_letter(rec, s);
        continue;
      }
      items_[n++] = WorkItem{rec,
                             reinterpret_cast<const std::byte*>(rec + 1) + rec->key_len,
                             rec->payload_len,
                             rec->topic,
                             true,
                             0};  // a request's caller is gone: replay answers no one
    }
    run_replay_batch(s, n);
    if (sub.durable != Subscription::kNotDurable &&
        outstanding_[std::size_t{sub.durable} * env_.logs->size() + p] == 0)
      store_position(sub.durable, p, r.position());
    if (wheel_.pending() != 0) {
      // Retries of replayed events (and of earlier partitions' ones) fire as in the run loop.
      (void)wheel_.poll(clock_.now(), [this](RetryEntry& e) { fire_retry(e); });
      publish_retry_pending();
    }
    ntouched_ = 0;  // positions move by the replay's own stores until it is done
    for (std::uint32_t q = 0; q < touched_flag_.size(); ++q)
      touched_flag_[q] = 0;
  }
  const std::uint64_t replayed = c.deliveries.get() - c.retried.get() - first_before;
  c.replayed.add(replayed);
  Logger(env_.log_sink)
      .log(LogLevel::info, "checkpoint",
           "durable subscription '" + sub.durable_name + "', partition " + std::to_string(p) +
               ": replayed offsets " + std::to_string(from) + ".." + std::to_string(end) + " (" +
               std::to_string(replayed) + " event(s) for it)");
}

void Shard::run_replay_batch(std::uint32_t s, std::size_t n) {
  if (n == 0) return;
  batch_.size = n;
  timing_ = false;
  for (const Pipeline::Stage& st : env_.pipeline->stages())
    run_stage(st, batch_);
  if (stage_throws_ != 0) log_stage_exceptions();
  deliver(s, batch_);
  handle_failures();
}

}  // namespace ringflow::detail
