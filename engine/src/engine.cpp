#include "ringflow/engine.hpp"

#include <algorithm>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>

#include "logger.hpp"
#include "ringflow/clock.hpp"
#include "ringflow/detail/membarrier.hpp"
#include "ringflow/numa_memory.hpp"
#include "ringflow/topic.hpp"
#include "ringflow/topology.hpp"
#include "shard.hpp"
#include "store/checkpoint/checkpoint_store.hpp"
#include "store/wal/durability.hpp"
#include "watchdog.hpp"

namespace ringflow {

namespace {

const char* state_name(Engine::State s) noexcept {
  switch (s) {
    case Engine::State::created:
      return "created";
    case Engine::State::running:
      return "running";
    case Engine::State::stopped:
      return "stopped";
  }
  return "?";
}

}  // namespace

struct Engine::Impl {
  EngineConfig cfg;
  Plan plan;
  State state = State::created;  // changed under `lifecycle`; mirrored in state_atomic
  std::atomic<State> state_atomic{State::created};  // lock-free reads (handlers may call)
  std::atomic<bool> shards_ready{false};            // shards vector complete (stats())
  // Guards state transitions, topics and producers (cold paths). Held only for short, bounded
  // sections: never while waiting for shards, so handlers may take it (make_producer(), a
  // Producer's destructor) while stop() drains.
  mutable std::mutex lifecycle;
  // Serialises stop() callers: the second waits until the first has joined the shards. Never
  // taken by anything a handler may call.
  std::mutex stop_serial;

  detail::PublishContext ctx;
  Pipeline pipeline;
  std::vector<detail::Subscription> subscriptions;
  /// By topic id. A deque: names never move, so topic_name()'s views stay valid as topics are
  /// added (immutable once started).
  std::deque<std::string> topic_names;
  std::unordered_map<std::string, std::uint32_t> topic_ids;
  std::vector<std::uint32_t> dead_letter_of;  ///< by topic: its dead-letter topic (or kNoTopic)
  std::vector<std::uint8_t> is_dead_letter;   ///< by topic: 1 for a dead-letter topic
  std::vector<std::uint8_t> topic_flags;      ///< by topic, read by publish() (PublishContext)
  std::atomic<std::uint64_t> subscribe_denied{0};  ///< statistic
  std::atomic<std::uint64_t> late_replies{0};      ///< statistic: reply() after the request ended
  LogSink log_sink = stderr_log_sink(LogLevel::warn);  ///< fixed once started

  /// Compiles publish grants to one flag per topic (under `lifecycle`).
  [[nodiscard]] std::vector<std::uint8_t> grants_table(
      const std::vector<std::string>& grants) const {
    std::vector<std::uint8_t> allowed(topic_names.size(), 0);
    for (std::size_t t = 0; t < topic_names.size(); ++t) {
      for (const auto& g : grants) {
        if (topic_matches(g, topic_names[t])) {
          allowed[t] = 1;
          break;
        }
      }
    }
    return allowed;
  }
  /// Compiles a restricted producer's grants to one flag per topic (under `lifecycle`).
  void compile_grants(detail::ProducerState& st) const {
    if (st.restricted) st.allowed = grants_table(st.publish_grants);
  }

  std::unique_ptr<std::unique_ptr<detail::ProducerState>[]> producers;
  std::atomic<std::uint32_t> producer_count{0};
  std::vector<std::uint32_t> free_producers;
  std::vector<std::uint8_t> producer_in_use;

  std::vector<std::unique_ptr<PartitionLog>> logs;
  /// The write-ahead log (wal.mode != off): after the logs (it reads them), before the shards
  /// (they append under its floors), so it is destroyed between the two.
  std::unique_ptr<detail::Durability> wal;
  /// A start() failed after recovery refilled the logs: they cannot be recovered into again.
  bool wal_recovery_touched_logs = false;
  std::vector<std::vector<detail::RecoveredKey>> recovered_keys;  ///< by partition, start()
  /// Durable subscriptions (start(), when any): their checkpoint files, the positions the
  /// shards publish, the offsets to replay from, and the thread that persists them. After
  /// `wal` (the writer reads its durable offsets), before `shards` (they write the positions).
  std::unique_ptr<detail::CheckpointStore> checkpoint_store;
  std::unique_ptr<detail::SubscriptionPositions> positions;
  std::vector<std::uint64_t> replay_from;  ///< by durable * partitions + partition
  std::unique_ptr<detail::CheckpointWriter> checkpoints;
  std::vector<std::unique_ptr<detail::Shard>> shards;
  std::vector<std::pmr::memory_resource*> shard_memory;
  /// True while stop() waits for the shards (the watchdog says so in its records).
  std::atomic<bool> stopping{false};
  /// Null when watchdog.handler_ms = 0. Declared after `shards`: destroyed (joined) first.
  std::unique_ptr<detail::Watchdog> watchdog;

  Impl(EngineConfig c, const Topology& topo) : cfg(std::move(c)) {
    plan = ringflow::plan(cfg, topo);  // validates; throws ConfigError with every problem
    detail::asymmetric_barrier_init();
    (void)detail::tsc_scale();  // calibrate the clock now, not on the first publish

    ctx.partitions = cfg.partitions;
    ctx.shards = cfg.shards;
    ctx.max_payload = static_cast<std::uint32_t>(cfg.max_payload_bytes);
    ctx.backpressure = cfg.backpressure;
    ctx.notify_space.store(cfg.backpressure == BackpressurePolicy::park, std::memory_order_relaxed);
    ctx.backpressure_timeout_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(cfg.backpressure_timeout).count();
    ctx.wake_shards = cfg.wait_strategy == WaitStrategyKind::park;
    ctx.partition_shard.resize(cfg.partitions);
    for (std::uint32_t p = 0; p < cfg.partitions; ++p) {
      ctx.partition_shard[p] = static_cast<std::uint16_t>(p % cfg.shards);
    }
    ctx.shard_work = std::make_unique<Parking[]>(cfg.shards);

    for (std::uint32_t s = 0; s < cfg.shards; ++s) {
      const int node = s < plan.shard_memory_node.size() ? plan.shard_memory_node[s] : -1;
      shard_memory.push_back(node_memory_resource(node, cfg.allocator));
    }
    PartitionLog::Options lo;
    lo.segment_bytes = cfg.segment_bytes;
    lo.retention_bytes = cfg.retention_bytes;
    lo.retention_age = cfg.retention_age;
    lo.preallocate = true;  // no page fault or allocation on the append path, ever
    for (std::uint32_t p = 0; p < cfg.partitions; ++p) {
      logs.push_back(std::make_unique<PartitionLog>(p, lo, shard_memory[p % cfg.shards]));
    }
    producers = std::make_unique<std::unique_ptr<detail::ProducerState>[]>(cfg.max_producers);
    producer_in_use.resize(cfg.max_producers, 0);
    // release_producer() (noexcept, from a Producer's destructor) pushes here: never allocates.
    free_producers.reserve(cfg.max_producers);
  }

  /// Topic tables may be read without the lock once the engine has left `created`: they never
  /// change again. Acquire: pairs with start()'s release of the state.
  [[nodiscard]] bool tables_frozen() const noexcept {
    return state_atomic.load(std::memory_order_acquire) != State::created;
  }

  /// One line: where each thread runs and what the planner noted (the plan record at start).
  [[nodiscard]] std::string plan_summary() const {
    std::vector<std::string> parts;
    const auto place = [](const std::string& who, const ThreadPlacement& p) {
      return who + " on core " + std::to_string(p.core) + " (PU " + std::to_string(p.pu_os_index) +
             ", NUMA node " + std::to_string(p.numa_node) + ")";
    };
    for (std::size_t s = 0; s < plan.shards.size(); ++s) {
      const int mem = s < plan.shard_memory_node.size() ? plan.shard_memory_node[s] : -1;
      parts.push_back(place("shard " + std::to_string(s), plan.shards[s]) +
                      (mem < 0 ? ", memory not bound" : ", memory on node " + std::to_string(mem)));
      if (s < plan.graph_workers.size()) {
        for (const ThreadPlacement& w : plan.graph_workers[s])
          parts.push_back(
              place("graph worker " + std::to_string(s) + "." + std::to_string(w.index), w));
      }
    }
    parts.emplace_back(plan.pinning ? "pinning on" : "pinning off (placement advisory)");
    parts.insert(parts.end(), plan.notes.begin(), plan.notes.end());
    std::string out;
    for (const std::string& p : parts)
      out += (out.empty() ? "" : "; ") + p;
    return out;
  }

  void require(State s, const char* what) const {
    if (state != s) {
      throw std::logic_error(std::string("ringflow::Engine::") + what + " needs state " +
                             state_name(s) + ", but the engine is " + state_name(state));
    }
  }

  EngineStats stats() const;
  /// start()'s work under the lock: compile the tables, build and start the shards.
  void start_locked();
  /// After recovery: loads each durable subscription's checkpoint, sets its positions and
  /// what to replay, writes the files and starts the checkpoint thread.
  void start_checkpoints();
  void drain_rings() const;
  /// Waits until every shard has replayed its durable subscriptions' unfinished events.
  void wait_replays() const;
  /// upto == 0: the retry chains started so far; UINT64_MAX: all, until none is pending.
  void drain_retries(std::uint64_t upto) const;
};

Engine::Engine(EngineConfig cfg) : Engine(std::move(cfg), Topology::machine()) {}

Engine::Engine(EngineConfig cfg, const Topology& topology)
    : impl_(std::make_unique<Impl>(std::move(cfg), topology)) {}

Engine::~Engine() {
  try {
    stop();
  } catch (...) {
    // stop() only throws on a thread-join failure; nothing sensible is left to do here.
  }
}

TopicId Engine::add_topic(std::string_view name, const TopicOptions& options) {
  std::lock_guard lock(impl_->lifecycle);
  Impl& m = *impl_;
  m.require(State::created, "add_topic()");
  if (std::string why = check_topic_name(name); !why.empty()) {
    throw std::invalid_argument("ringflow: cannot add topic: " + why);
  }
  if (const auto it = m.topic_ids.find(std::string(name)); it != m.topic_ids.end()) {
    if (m.is_dead_letter[it->second] != 0) {
      throw std::invalid_argument("ringflow: topic '" + std::string(name) +
                                  "' is already registered as a dead-letter topic (only the "
                                  "engine writes there; subscribe to it instead)");
    }
    throw std::invalid_argument("ringflow: topic '" + std::string(name) +
                                "' is already registered");
  }
  const bool derived = options.dead_letter_topic.empty();
  const std::string dlq_name = derived ? std::string(name) + ".dlq" : options.dead_letter_topic;
  // A derived name may be 4 bytes longer than kMaxTopicNameBytes, so that every valid topic
  // name has its default dead-letter topic.
  if (std::string why =
          derived ? check_dead_letter_topic_name(dlq_name) : check_topic_name(dlq_name);
      !why.empty()) {
    throw std::invalid_argument("ringflow: cannot add topic '" + std::string(name) +
                                "': its dead-letter topic is not a valid name: " + why);
  }
  if (dlq_name == name) {
    throw std::invalid_argument("ringflow: topic '" + std::string(name) +
                                "' cannot be its own dead-letter topic");
  }
  const auto existing_dlq = m.topic_ids.find(dlq_name);
  if (existing_dlq != m.topic_ids.end() && m.is_dead_letter[existing_dlq->second] == 0) {
    // An ordinary topic's events carry no DeadLetterInfo: a dead-letter subscriber would see
    // dead_letter() == nullptr. Dead-letter topics are created by the engine only.
    throw std::invalid_argument("ringflow: cannot add topic '" + std::string(name) +
                                "': its dead-letter topic '" + dlq_name +
                                "' is already an ordinary topic; choose another name with "
                                "TopicOptions::dead_letter_topic");
  }
  const bool new_dlq = existing_dlq == m.topic_ids.end();
  if (m.topic_names.size() + (new_dlq ? 2 : 1) > m.cfg.max_topics) {
    throw std::length_error("ringflow: cannot add topic '" + std::string(name) +
                            "' (and its dead-letter topic): max_topics (" +
                            std::to_string(m.cfg.max_topics) +
                            ") reached; raise engine.max_topics");
  }
  // Everything that may allocate first; an allocation failure leaves nothing registered.
  const std::size_t added = new_dlq ? 2 : 1;
  m.dead_letter_of.reserve(m.dead_letter_of.size() + added);
  m.is_dead_letter.reserve(m.is_dead_letter.size() + added);
  const auto id = static_cast<std::uint32_t>(m.topic_names.size());
  const std::uint32_t dlq = new_dlq ? id + 1 : existing_dlq->second;  // else a shared one
  std::size_t names_added = 0;
  std::vector<decltype(m.topic_ids)::iterator> ids_added;
  ids_added.reserve(2);
  try {
    m.topic_names.emplace_back(name);
    ++names_added;
    ids_added.push_back(m.topic_ids.emplace(std::string(name), id).first);
    if (new_dlq) {
      m.topic_names.push_back(dlq_name);
      ++names_added;
      ids_added.push_back(m.topic_ids.emplace(dlq_name, dlq).first);
    }
  } catch (...) {
    for (const auto& it : ids_added)
      m.topic_ids.erase(it);
    for (; names_added != 0; --names_added)
      m.topic_names.pop_back();
    throw;
  }
  // Reserved above: these do not allocate.
  m.dead_letter_of.push_back(dlq);
  m.is_dead_letter.push_back(0);
  if (new_dlq) {
    m.dead_letter_of.push_back(detail::kNoTopic);  // a dead-letter topic has none itself
    m.is_dead_letter.push_back(1);
  }
  return TopicId{id};
}

// Read-only lookups: lock-free once started (the tables are frozen), so handlers may call them
// at any time, stop() included; before start() they take the lock (add_topic() may run).

TopicId Engine::dead_letter_topic(TopicId topic) const {
  const Impl& m = *impl_;
  std::unique_lock lock(m.lifecycle, std::defer_lock);
  if (!m.tables_frozen()) lock.lock();
  if (topic.value >= m.dead_letter_of.size()) {
    throw std::out_of_range("ringflow: unknown topic id " + std::to_string(topic.value));
  }
  const std::uint32_t d = m.dead_letter_of[topic.value];
  return d == detail::kNoTopic ? TopicId{} : TopicId{d};
}

std::optional<TopicId> Engine::find_topic(std::string_view name) const noexcept {
  const Impl& m = *impl_;
  std::unique_lock lock(m.lifecycle, std::defer_lock);
  if (!m.tables_frozen()) lock.lock();
  try {
    const auto it = m.topic_ids.find(std::string(name));
    if (it == m.topic_ids.end()) return std::nullopt;
    return TopicId{it->second};
  } catch (...) {
    return std::nullopt;  // the key copy could not be allocated
  }
}

TopicId Engine::topic(std::string_view name) const {
  if (auto t = find_topic(name)) return *t;
  throw std::out_of_range("ringflow: unknown topic '" + std::string(name) +
                          "': register it with add_topic() before start()");
}

std::string_view Engine::topic_name(TopicId id) const {
  const Impl& m = *impl_;
  std::unique_lock lock(m.lifecycle, std::defer_lock);
  if (!m.tables_frozen()) lock.lock();
  if (id.value >= m.topic_names.size()) {
    throw std::out_of_range("ringflow: unknown topic id " + std::to_string(id.value));
  }
  return m.topic_names[id.value];  // stable storage: valid as long as the engine
}

Pipeline& Engine::pipeline() {
  std::lock_guard lock(impl_->lifecycle);
  impl_->require(State::created, "pipeline()");
  return impl_->pipeline;
}

Pipeline& Pipeline::add(Stage s) {
  if (frozen_) throw std::logic_error("ringflow: the pipeline cannot change once the engine runs");
  if (s.name.empty()) throw std::invalid_argument("ringflow: a pipeline stage needs a name");
  const bool has_fn = (s.kind == Kind::filter && s.filter) || (s.kind == Kind::map && s.map) ||
                      (s.kind == Kind::route && s.route);
  if (!has_fn) {
    throw std::invalid_argument("ringflow: pipeline stage '" + s.name + "' has no function");
  }
  stages_.push_back(std::move(s));
  return *this;
}

std::uint32_t Engine::subscribe(std::string_view pattern, Handler handler,
                                const SubscribeOptions& options) {
  std::lock_guard lock(impl_->lifecycle);
  impl_->require(State::created, "subscribe()");
  if (std::string why = check_topic_pattern(pattern); !why.empty()) {
    throw std::invalid_argument("ringflow: cannot subscribe: " + why);
  }
  if (!handler) throw std::invalid_argument("ringflow: cannot subscribe with an empty handler");
  if (options.principal) {
    const Principal& who = *options.principal;
    bool covered = false;
    for (const auto& g : who.subscribe)
      covered = covered || pattern_covers(g, pattern);
    if (!covered) {
      impl_->subscribe_denied.fetch_add(1, std::memory_order_relaxed);  // statistic
      std::string grants;
      for (const auto& g : who.subscribe)
        grants += (grants.empty() ? "" : ", ") + g;
      throw Unauthorized("ringflow: principal '" + who.name + "' may not subscribe to '" +
                         std::string(pattern) + "' (its subscribe grants: [" + grants + "])");
    }
  }
  if (!options.group.empty()) {
    for (const auto& other : impl_->subscriptions) {
      if (other.group == options.group && other.pattern != pattern) {
        throw std::invalid_argument(
            "ringflow: consumer group '" + options.group + "' subscribes to '" + other.pattern +
            "'; every member must use the same pattern (got '" + std::string(pattern) + "')");
      }
    }
  }
  if (options.max_attempts == 0 || options.max_attempts > 65535) {
    throw std::invalid_argument("ringflow: SubscribeOptions::max_attempts must be 1..65535, got " +
                                std::to_string(options.max_attempts));
  }
  if (options.retry_backoff.count() < 0 || options.retry_backoff_max < options.retry_backoff) {
    throw std::invalid_argument(
        "ringflow: SubscribeOptions needs 0 <= retry_backoff <= retry_backoff_max");
  }
  if (!options.durable_name.empty() || options.replay_from_start) {
    if (impl_->cfg.wal_mode == WalMode::off) {
      throw std::invalid_argument(
          "ringflow: SubscribeOptions::durable_name '" + options.durable_name +
          "' needs the write-ahead log (wal.mode = os, interval or sync, and wal.dir): its "
          "checkpoints are kept beside the log");
    }
    if (std::string why = detail::CheckpointStore::check_name(options.durable_name); !why.empty()) {
      throw std::invalid_argument("ringflow: cannot subscribe: " + why);
    }
    for (const auto& other : impl_->subscriptions) {
      if (other.durable_name == options.durable_name) {
        throw std::invalid_argument("ringflow: durable_name '" + options.durable_name +
                                    "' is already used by the subscription to '" + other.pattern +
                                    "'; each durable subscription needs its own name");
      }
    }
  }
  detail::Subscription sub;
  sub.durable_name = options.durable_name;
  sub.replay_from_start = options.replay_from_start;
  sub.max_attempts = options.max_attempts;
  sub.backoff_ns = options.retry_backoff.count();
  sub.backoff_max_ns = options.retry_backoff_max.count();
  sub.pattern = std::string(pattern);
  sub.handler = std::move(handler);
  sub.group = options.group;
  impl_->subscriptions.push_back(std::move(sub));
  return static_cast<std::uint32_t>(impl_->subscriptions.size() - 1);
}

Producer Engine::make_producer() {
  return make_producer(ProducerOptions{});
}

Producer Engine::make_producer(const Principal& who) {
  ProducerOptions o;
  o.principal = who;
  return make_producer(o);
}

Producer Engine::make_producer(const ProducerOptions& options) {
  if (options.principal) {
    for (const auto& g : options.principal->publish) {
      if (std::string why = check_topic_pattern(g); !why.empty()) {
        throw std::invalid_argument("ringflow: principal '" + options.principal->name +
                                    "' has a bad publish grant: " + why);
      }
    }
  }
  if (options.backpressure_timeout && options.backpressure_timeout->count() < 0) {
    throw std::invalid_argument("ringflow: ProducerOptions::backpressure_timeout is negative");
  }
  if (options.max_pending_requests > detail::RequestTable::kMaxSlots) {
    throw std::invalid_argument("ringflow: ProducerOptions::max_pending_requests must be at most " +
                                std::to_string(detail::RequestTable::kMaxSlots) + ", got " +
                                std::to_string(options.max_pending_requests));
  }
  std::lock_guard lock(impl_->lifecycle);
  Impl& m = *impl_;
  if (m.state == State::stopped) {
    throw std::logic_error("ringflow::Engine::make_producer() on a stopped engine");
  }
  // Everything that may allocate first, then the hand-over, which cannot fail: an allocation
  // failure leaves the producer slots as they were (none lost, none half made).
  const bool reuse = !m.free_producers.empty();
  const std::uint32_t idx =
      reuse ? m.free_producers.back()
            : m.producer_count.load(std::memory_order_relaxed);  // written only under the lock
  std::unique_ptr<detail::ProducerState> fresh;
  if (!reuse) {
    if (idx >= m.cfg.max_producers) {
      throw std::runtime_error("ringflow: all " + std::to_string(m.cfg.max_producers) +
                               " producers are in use; raise engine.max_producers or destroy "
                               "idle producers");
    }
    fresh = std::make_unique<detail::ProducerState>(&m.ctx, idx);
    for (std::uint32_t s = 0; s < m.cfg.shards; ++s) {
      fresh->rings.push_back(
          std::make_unique<detail::RingPair>(m.cfg.ring_capacity, m.shard_memory[s]));
    }
    fresh->pushed =
        std::make_unique<std::atomic<std::uint64_t>[]>(std::size_t{m.cfg.shards} * detail::kLanes);
    fresh->full =
        std::make_unique<std::atomic<std::uint64_t>[]>(std::size_t{m.cfg.shards} * detail::kLanes);
  }
  detail::ProducerState& st = reuse ? *m.producers[idx] : *fresh;
  // Relaxed: written only under the lock held here.
  const detail::RequestTable* table = st.requests.load(std::memory_order_relaxed);
  std::unique_ptr<detail::RequestTable> new_table;
  if (table == nullptr || table->capacity() != options.max_pending_requests) {
    // A reused producer keeps its old table alive (handles of its previous owner may still
    // point into it; their requests end at their deadlines or at stop()).
    new_table = std::make_unique<detail::RequestTable>(idx, options.max_pending_requests);
    st.request_tables.reserve(st.request_tables.size() + 1);
  }
  std::vector<std::string> grants =
      options.principal ? options.principal->publish : std::vector<std::string>{};
  // Before start() the topics may still change: start() compiles it then.
  std::vector<std::uint8_t> allowed = options.principal.has_value() && m.state == State::running
                                          ? m.grants_table(grants)
                                          : std::vector<std::uint8_t>{};

  // The hand-over: nothing below allocates.
  if (reuse) {
    m.free_producers.pop_back();
  } else {
    m.producers[idx] = std::move(fresh);
    // Release: shards and drain() acquire the count; the state above is then fully built.
    m.producer_count.store(idx + 1, std::memory_order_release);
  }
  m.producer_in_use[idx] = 1;
  if (new_table) {
    st.request_tables.push_back(std::move(new_table));  // reserved above
    // Release: shards and reply() acquire it; the table is fully built.
    st.requests.store(st.request_tables.back().get(), std::memory_order_release);
  }
  st.backpressure = options.backpressure.value_or(m.cfg.backpressure);
  st.backpressure_timeout_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          options.backpressure_timeout.value_or(m.cfg.backpressure_timeout))
          .count();
  if (st.backpressure == BackpressurePolicy::park) {
    m.ctx.notify_space.store(true, std::memory_order_relaxed);  // read by shards per batch
  }
  st.restricted = options.principal.has_value();
  st.publish_grants = std::move(grants);
  st.allowed = std::move(allowed);
  // A new owner thread may claim it (debug role checks). The shard re-claims the consumer
  // sides on its next poll; the lock orders this hand-over after the previous owner's last use.
  m.producers[idx]->role.reset();
  for (auto& rp : m.producers[idx]->rings) {
    for (auto& ring : rp->lanes)
      ring.reset_roles();
  }
  return Producer(this, m.producers[idx].get());
}

void Engine::release_producer(detail::ProducerState* s) noexcept {
  std::lock_guard lock(impl_->lifecycle);
  if (impl_->producer_in_use[s->index] == 0) return;
  impl_->producer_in_use[s->index] = 0;
  // Its rings stay registered: the shard keeps draining what is queued, and the next
  // make_producer() reuses them (the lock orders the hand-over).
  impl_->free_producers.push_back(s->index);
}

void Engine::start() {
  std::lock_guard lock(impl_->lifecycle);
  Impl& m = *impl_;
  m.require(State::created, "start()");
  // What follows allocates (tables, shards) and starts threads. Should any of it fail, the
  // engine goes back to `created` with no thread running, and start() may be called again.
  if (m.wal_recovery_touched_logs) {
    throw std::logic_error(
        "ringflow::Engine::start(): an earlier start() failed after the write-ahead log's "
        "recovery had refilled the partition logs; construct a new Engine to try again");
  }
  try {
    m.start_locked();
  } catch (...) {
    m.watchdog.reset();     // joins its thread; before the shards it reads
    m.shards.clear();       // each shard's destructor asks its worker to leave and joins it
    m.checkpoints.reset();  // joins its thread; before the log whose offsets it reads
    m.positions.reset();
    m.checkpoint_store.reset();
    m.replay_from.clear();
    for (auto& sub : m.subscriptions)
      sub.durable = detail::Subscription::kNotDurable;
    if (m.wal) {
      m.wal.reset();  // joins its writers and releases the directory's lock
      for (auto& log : m.logs)
        log->set_durable_floor(nullptr);  // the floors lived in the log's writer state
    }
    m.pipeline.frozen_ = false;
    // The joined workers may have claimed the consumer sides of the rings (debug role checks):
    // hand them over to the next start()'s workers. Their producers re-claim theirs.
    for (std::uint32_t p = 0; p < m.producer_count.load(std::memory_order_relaxed); ++p) {
      for (auto& rp : m.producers[p]->rings) {
        for (auto& ring : rp->lanes)
          ring.reset_roles();
      }
    }
    throw;
  }
  m.shards_ready.store(true, std::memory_order_release);  // pairs with stats()' acquire
  // Relaxed is enough for the flag itself: producers created before start() were handed over
  // under the lock, and a producer that sees running = 1 only needs its own ring (built before).
  m.ctx.running.store(1, std::memory_order_release);
  m.state = State::running;
  m.state_atomic.store(State::running, std::memory_order_release);
  try {
    const std::string line = "started: " + std::to_string(m.cfg.shards) + " shard(s), " +
                             std::to_string(m.logs.size()) + " partition(s), " +
                             std::to_string(m.topic_names.size()) + " topic(s), " +
                             std::to_string(m.subscriptions.size()) + " subscription(s)";
    const detail::Logger log(&m.log_sink);
    log.log(LogLevel::info, "engine", line);
    log.log(LogLevel::info, "plan", m.plan_summary());
    // What the config asked for and this process cannot give (an arena that could not be made,
    // binding without hwloc, a jemalloc allocator a config file asked for and the process does
    // not have) is a config problem found at run time: a warning, not a silent fallback. The
    // default allocator's fallback and the other memory notes are information.
    for (const std::string& note : memory_notes()) {
      const bool problem =
          note.find("failed") != std::string::npos || note.rfind("no NUMA binding", 0) == 0 ||
          (note.find("falls back") != std::string::npos && m.cfg.line_of("memory.allocator") != 0);
      log.log(problem ? LogLevel::warn : LogLevel::info, problem ? "config" : "memory", note);
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): no memory for the records; the engine runs
  }
}

void Engine::Impl::start_locked() {
  Impl& m = *this;
  // Compile subscriptions to topic ids once: dispatch never matches strings.
  m.ctx.topic_count = static_cast<std::uint32_t>(m.topic_names.size());
  m.topic_flags.assign(m.topic_names.size(), 0);
  for (std::size_t t = 0; t < m.topic_names.size(); ++t) {
    if (m.is_dead_letter[t] != 0) m.topic_flags[t] |= detail::kTopicDeadLetter;
  }
  m.ctx.topic_flags = m.topic_flags.data();
  // Consumer groups: number the members of each group in subscription order.
  std::unordered_map<std::string, std::uint32_t> group_sizes;
  for (const auto& sub : m.subscriptions) {
    if (!sub.group.empty()) ++group_sizes[sub.group];
  }
  std::unordered_map<std::string, std::uint32_t> next_member;
  for (auto& sub : m.subscriptions) {
    if (!sub.group.empty()) {
      sub.group_size = group_sizes[sub.group];
      sub.member = next_member[sub.group]++;
    }
    sub.matches.assign(m.topic_names.size(), 0);
    // A '>' pattern never matches a dead-letter topic: a catch-all subscriber must not consume
    // its own failures. Name dead-letter topics explicitly ("orders.created.dlq", "*.*.dlq").
    const bool catch_all = sub.pattern.find('>') != std::string::npos;
    for (std::size_t t = 0; t < m.topic_names.size(); ++t) {
      if (catch_all && m.is_dead_letter[t] != 0) continue;
      sub.matches[t] = topic_matches(sub.pattern, m.topic_names[t]) ? 1 : 0;
    }
  }
  // Requests to a topic no subscription matches end as no_subscriber (shard, after the graph).
  for (const auto& sub : m.subscriptions) {
    for (std::size_t t = 0; t < m.topic_names.size(); ++t) {
      if (sub.matches[t] != 0) m.topic_flags[t] |= detail::kTopicHasSubscriber;
    }
  }
  m.pipeline.frozen_ = true;
  for (std::uint32_t p = 0; p < m.producer_count.load(std::memory_order_relaxed); ++p) {
    m.compile_grants(*m.producers[p]);  // producers made before start(); topics are final now
  }
  if (m.cfg.wal_mode != WalMode::off && !m.wal) {
    // Recovery runs before any shard exists: the logs, offsets and idempotency windows are
    // rebuilt from disk, then the writers follow the logs from where they ended.
    auto durability = std::make_unique<detail::Durability>(m.cfg, &m.log_sink);
    wal_recovery_touched_logs = true;  // until recovery and the rest of start() succeed
    const detail::RecoverySummary r = durability->recover(m.logs, m.topic_names, m.recovered_keys);
    if (r.records != 0 || r.truncations != 0) {
      detail::Logger(&m.log_sink)
          .log(LogLevel::info, "wal",
               "recovery: " + std::to_string(r.records) + " events, " + std::to_string(r.bytes) +
                   " bytes scanned in " + std::to_string(r.seconds) + " s, " +
                   std::to_string(r.truncations) + " tail(s) truncated");
    }
    m.wal = std::move(durability);
    m.wal->start(m.producers.get(), &m.producer_count);
    m.start_checkpoints();
  }
  detail::ShardEnv env{&m.cfg,
                       &m.ctx,
                       &m.pipeline,
                       &m.subscriptions,
                       m.producers.get(),
                       &m.producer_count,
                       &m.logs,
                       &m.dead_letter_of,
                       &m.log_sink,
                       &m.recovered_keys,
                       m.wal != nullptr,
                       &m.topic_names,
                       m.positions.get(),
                       &m.replay_from};
  for (std::uint32_t s = 0; s < m.cfg.shards; ++s) {
    m.shards.push_back(std::make_unique<detail::Shard>(env, s, m.plan.shards[s],
                                                       m.plan.graph_worker_pus(s), m.plan.pinning));
  }
  if (m.cfg.handler_watchdog.count() > 0) {
    m.watchdog = std::make_unique<detail::Watchdog>(
        m.cfg.handler_watchdog,
        detail::Watchdog::Targets{&m.shards, &m.subscriptions, &m.pipeline, &m.topic_names,
                                  &m.log_sink, &m.stopping});
  }
  for (auto& sh : m.shards)
    sh->start();
  if (m.watchdog) m.watchdog->start();
  wal_recovery_touched_logs = false;
}

void Engine::Impl::start_checkpoints() {
  Impl& m = *this;
  std::vector<std::string> names;
  for (auto& sub : m.subscriptions) {
    if (sub.durable_name.empty()) continue;
    sub.durable = static_cast<std::uint32_t>(names.size());
    names.push_back(sub.durable_name);
  }
  if (names.empty()) return;
  const std::uint32_t parts = m.cfg.partitions;
  m.checkpoint_store = std::make_unique<detail::CheckpointStore>(m.cfg.wal_dir, &m.log_sink);
  m.positions = std::make_unique<detail::SubscriptionPositions>(names.size(), parts);
  m.replay_from.assign(names.size() * parts, UINT64_MAX);
  const detail::Logger log(&m.log_sink);
  for (const auto& sub : m.subscriptions) {
    if (sub.durable == detail::Subscription::kNotDurable) continue;
    const auto saved = m.checkpoint_store->load(sub.durable_name, parts);
    std::uint64_t to_replay = 0;
    for (std::uint32_t p = 0; p < parts; ++p) {
      const std::uint64_t end = m.logs[p]->end_offset();
      const std::uint64_t first = m.logs[p]->first_offset();
      // A checkpoint past the recovered end (its log lost a torn tail) resumes at the end.
      std::uint64_t from = saved ? std::min((*saved)[p], end) : sub.replay_from_start ? first : end;
      if (from < first) {
        log.log(LogLevel::warn, "checkpoint",
                "durable subscription '" + sub.durable_name + "', partition " + std::to_string(p) +
                    ": its checkpoint " + std::to_string(from) +
                    " is below the oldest event held (" + std::to_string(first) +
                    "); the events between are not replayed");
        from = first;
      }
      // Relaxed: no shard runs yet; starting the shard threads orders it before their reads.
      m.positions->at(sub.durable, p).store(from, std::memory_order_relaxed);
      if (from < end) {
        m.replay_from[std::size_t{sub.durable} * parts + p] = from;
        to_replay += end - from;
      }
    }
    log.log(LogLevel::info, "checkpoint",
            "durable subscription '" + sub.durable_name + "': " +
                (saved ? "resumes from its checkpoint, " + std::to_string(to_replay) +
                             " logged event(s) to replay"
                 : sub.replay_from_start
                     ? "first start, replays the " + std::to_string(to_replay) +
                           " event(s) the log holds"
                     : std::string("first start (no checkpoint): starts at the end of the log")));
  }
  const detail::Durability* durability = m.wal.get();
  m.checkpoints = std::make_unique<detail::CheckpointWriter>(
      *m.checkpoint_store, std::move(names), *m.positions,
      [durability](std::uint32_t p) { return durability->durable_offset(p); });
  m.checkpoints->start();
}

void Engine::set_log_sink(LogSink sink) {
  std::lock_guard lock(impl_->lifecycle);
  impl_->require(State::created, "set_log_sink()");
  impl_->log_sink = std::move(sink);
}

void Engine::Impl::drain_retries(std::uint64_t upto) const {
  // Waits until every retry chain each shard started before `upto` (its chain numbering) has
  // ended; UINT64_MAX: every chain, also those started later (stop(), producers quiet).
  for (const auto& sh : shards) {
    const std::uint64_t target = upto == UINT64_MAX ? UINT64_MAX : sh->retry_chains_started();
    for (std::uint32_t spins = 0; !sh->retry_chains_done_below(target); ++spins) {
      if (spins < 64) {
        cpu_relax();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
  }
}

void Engine::Impl::wait_replays() const {
  for (const auto& shard : shards) {
    for (std::uint32_t spins = 0; !shard->replay_done(); ++spins) {
      if (spins < 64) {
        cpu_relax();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }
}

void Engine::Impl::drain_rings() const {
  const std::uint32_t n = producer_count.load(std::memory_order_acquire);
  for (std::uint32_t p = 0; p < n; ++p) {
    const detail::ProducerState& st = *producers[p];
    for (std::uint32_t s = 0; s < cfg.shards; ++s) {
      for (std::uint32_t lane = 0; lane < detail::kLanes; ++lane) {
        // Acquire: pairs with publish()'s release of its pushed count.
        const std::uint64_t target =
            st.pushed[s * detail::kLanes + lane].load(std::memory_order_acquire);
        const std::atomic<std::uint64_t>& done = st.rings[s]->completed[lane];
        // Acquire: pairs with the shard's release after the batch's handlers ran.
        for (std::uint32_t spins = 0; done.load(std::memory_order_acquire) < target; ++spins) {
          if (spins < 64) {
            cpu_relax();
          } else {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
          }
        }
      }
    }
  }
}

void Engine::drain() {
  if (detail::on_engine_thread()) {
    throw std::logic_error(
        "ringflow::Engine::drain() called from a handler or stage: it would wait for its own "
        "batch; drain from another thread");
  }
  if (state() != State::running) return;
  impl_->wait_replays();  // what durable subscriptions replay at start is in flight too
  impl_->drain_rings();
  // Then the retries of what was just drained: every retry chain a shard had started by now
  // (its batches of the events above are complete), not chains of events accepted later, so
  // drain() returns under steady load with retrying handlers too.
  impl_->drain_retries(0);
}

void Engine::stop() {
  if (detail::on_engine_thread()) {
    throw std::logic_error(
        "ringflow::Engine::stop() called from a handler or stage: it would wait for its own "
        "shard; stop the engine from another thread");
  }
  Impl& m = *impl_;
  // Callers queue here; the lifecycle lock is held only for the state changes, never while
  // waiting for the shards, so handlers that call into the engine cannot block this stop().
  std::lock_guard serial(m.stop_serial);
  {
    std::lock_guard lock(m.lifecycle);
    if (m.state == State::stopped) return;
    if (m.state == State::created) {
      m.state = State::stopped;
      m.state_atomic.store(State::stopped, std::memory_order_release);
      return;
    }
    // 1. No new publish may start: clear `running` (under the lock, so make_producer() and
    //    stop() agree on it), then the heavy barrier (membarrier.hpp).
    m.ctx.running.store(0, std::memory_order_relaxed);
  }
  // Relaxed: only the watchdog's wording depends on it.
  m.stopping.store(true, std::memory_order_relaxed);
  detail::heavy_barrier();
  if (m.wal) m.wal->begin_stop();  // a log that cannot be written must not hold the drain up
  // 2. Wait out publishes that passed their check before the barrier.
  const std::uint32_t n = m.producer_count.load(std::memory_order_acquire);
  for (std::uint32_t p = 0; p < n; ++p) {
    // Acquire: pairs with publish()'s release of active = 0; its push is visible.
    while (m.producers[p]->active.load(std::memory_order_acquire) != 0)
      std::this_thread::yield();
  }
  // 3. Everything accepted is processed, then the workers leave.
  m.drain_rings();
  m.drain_retries(UINT64_MAX);
  for (auto& sh : m.shards)
    sh->request_exit();
  for (auto& sh : m.shards)
    sh->join();
  // The shards have left: the log's writers write (and sync) what is left, then leave too;
  // then the checkpoints, clamped to the final durable offsets, before the directory's lock
  // is released.
  if (m.wal) m.wal->stop_writers();
  if (m.checkpoints) m.checkpoints->stop_and_flush();
  if (m.wal) m.wal->release_lock();
  // Only now: while stop() waited above, the watchdog kept reporting a handler that blocks.
  if (m.watchdog) m.watchdog->stop();
  std::lock_guard lock(m.lifecycle);
  // Every request still pending ends now: nothing waits forever.
  for (std::uint32_t p = 0; p < m.producer_count.load(std::memory_order_relaxed); ++p) {
    for (auto& t : m.producers[p]->request_tables)
      t->stop_all();
  }
  m.state = State::stopped;
  m.state_atomic.store(State::stopped, std::memory_order_release);
  detail::Logger(&m.log_sink)
      .log(LogLevel::info, "engine", "stopped: every accepted event processed");
}

Engine::State Engine::state() const noexcept {
  return impl_->state_atomic.load(std::memory_order_acquire);
}

EngineStats Engine::Impl::stats() const {
  EngineStats out;
  // Acquire: pairs with start()'s release; topic and subscription lists are final then.
  if (shards_ready.load(std::memory_order_acquire)) {
    out.topics.resize(topic_names.size());
    for (std::size_t t = 0; t < topic_names.size(); ++t)
      out.topics[t].name = topic_names[t];
    out.subscriptions.resize(subscriptions.size());
    for (std::size_t s = 0; s < subscriptions.size(); ++s) {
      out.subscriptions[s].pattern = subscriptions[s].pattern;
      out.subscriptions[s].group = subscriptions[s].group;
      out.subscriptions[s].durable_name = subscriptions[s].durable_name;
    }
    for (const auto& sh : shards) {
      const auto& tcs = sh->topic_counters();
      for (std::size_t t = 0; t < tcs.size() && t < out.topics.size(); ++t) {
        out.topics[t].accepted += tcs[t].accepted.get();
        out.topics[t].appended += tcs[t].appended.get();
        out.topics[t].expired += tcs[t].expired.get();
        out.topics[t].duplicates += tcs[t].duplicates.get();
        out.topics[t].dead_lettered += tcs[t].dead_lettered.get();
      }
      const auto& scs = sh->subscription_counters();
      for (std::size_t s = 0; s < scs.size(); ++s) {
        SubscriptionStats& o = out.subscriptions[s];
        o.first_deliveries += scs[s]->deliveries.get() - scs[s]->retried.get();
        o.retries += scs[s]->retried.get();
        o.ok += scs[s]->ok.get();
        o.dead_lettered += scs[s]->dead_lettered.get();
        o.replayed += scs[s]->replayed.get();
        out.replayed += scs[s]->replayed.get();
      }
    }
  }
  const std::uint32_t n = producer_count.load(std::memory_order_acquire);
  for (std::uint32_t p = 0; p < n; ++p) {
    for (std::size_t i = 0; i < kPublishStatusCount; ++i) {
      out.published[i] += producers[p]->counters.by_status[i].load(std::memory_order_relaxed);
    }
  }
  // Acquire: pairs with start()'s release; the shards vector is complete and never changes.
  const bool ready = shards_ready.load(std::memory_order_acquire);
  for (std::size_t i = 0; ready && i < shards.size(); ++i) {
    const auto& sh = shards[i];
    const detail::ShardCounters& c = sh->counters();
    out.appended += c.appended.get();
    out.expired += c.expired.get();
    out.processed += c.processed.get();
    out.filtered += c.filtered.get();
    out.stage_failures += c.stage_failures.get();
    out.batches += c.batches.get();
    out.wal_waits += c.wal_waits.get();
    out.retries += c.retries.get();
    out.duplicates += c.duplicates.get();
    for (std::size_t r = 0; r < 4; ++r)
      out.dead_lettered[r] += c.dead_lettered[r].get();
    out.dead_letter_failures += c.dead_letter_failures.get();
    if (watchdog) out.handler_stalls += watchdog->stalls(i);
    for (const auto& sc : sh->subscription_counters()) {
      out.deliveries += sc->deliveries.get();
      out.handler_ok += sc->ok.get();
      out.handler_failures += sc->failures.get();
    }
  }
  for (const auto& l : logs)
    out.evicted_segments += l->evicted_segments();
  out.subscribe_denied = subscribe_denied.load(std::memory_order_relaxed);  // statistic
  out.late_replies = late_replies.load(std::memory_order_relaxed);          // statistic
  if (wal) {
    out.wal_bytes_written = wal->bytes_written();
    out.wal_syncs = wal->syncs();
    out.wal_segments_deleted = wal->segments_deleted();
    out.wal_failing = wal->failing();
  }
  return out;
}

EngineStats Engine::stats() const {
  return impl_->stats();
}

const EngineConfig& Engine::config() const noexcept {
  return impl_->cfg;
}
const Plan& Engine::plan() const noexcept {
  return impl_->plan;
}
std::uint32_t Engine::partitions() const noexcept {
  return impl_->cfg.partitions;
}

const PartitionLog& Engine::log(std::uint32_t partition) const {
  if (partition >= impl_->logs.size()) {
    throw std::out_of_range("ringflow: partition " + std::to_string(partition) + " of " +
                            std::to_string(impl_->logs.size()));
  }
  return *impl_->logs[partition];
}

// ---- Producer (out-of-line parts) ----

Producer& Producer::operator=(Producer&& other) noexcept {
  if (this != &other) {
    if (state_ != nullptr) engine_->release_producer(state_);
    engine_ = other.engine_;
    state_ = other.state_;
    other.engine_ = nullptr;
    other.state_ = nullptr;
    hand_over();
  }
  return *this;
}

Producer::~Producer() {
  if (state_ != nullptr) engine_->release_producer(state_);
}

std::string_view to_string(DurableStatus s) noexcept {
  switch (s) {
    case DurableStatus::durable:
      return "durable";
    case DurableStatus::timed_out:
      return "timed_out";
    case DurableStatus::wal_off:
      return "wal_off";
    case DurableStatus::failed:
      return "failed";
  }
  return "?";
}

DurableMark Producer::last_mark() const noexcept {
  if (state_ == nullptr) return {};
  const std::uint32_t ring = state_->last_ring;
  // Relaxed: the producer's own counter (it wrote it).
  return DurableMark{ring, state_->pushed[ring].load(std::memory_order_relaxed)};
}

bool Producer::is_durable(DurableMark mark) const noexcept {
  if (state_ == nullptr || mark.count == 0) return mark.count == 0;
  const detail::RingPair& rp = *state_->rings[mark.ring / detail::kLanes];
  // Acquire: pairs with the log writer's release once the files hold the event.
  return rp.durable[mark.ring % detail::kLanes].load(std::memory_order_acquire) >= mark.count;
}

DurableStatus Producer::wait_durable(DurableMark mark, std::int64_t deadline_ns) const {
  if (engine_ == nullptr || engine_->config().wal_mode == WalMode::off) {
    return DurableStatus::wal_off;
  }
  for (std::uint32_t spins = 0;; ++spins) {
    if (is_durable(mark)) return DurableStatus::durable;
    if (engine_->impl_->wal && engine_->impl_->wal->failed()) return DurableStatus::failed;
    if (now_ns() >= deadline_ns) return DurableStatus::timed_out;
    if (spins < 64) {
      cpu_relax();
    } else if (spins < 256) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
}

DurableStatus Producer::wait_all_durable(std::int64_t deadline_ns) const {
  if (engine_ == nullptr || engine_->config().wal_mode == WalMode::off) {
    return DurableStatus::wal_off;
  }
  const std::size_t rings = state_->rings.size() * detail::kLanes;
  for (std::size_t r = 0; r < rings; ++r) {
    // Relaxed: the producer's own counters.
    const DurableMark m{static_cast<std::uint32_t>(r),
                        state_->pushed[r].load(std::memory_order_relaxed)};
    const DurableStatus st = wait_durable(m, deadline_ns);
    if (st != DurableStatus::durable) return st;
  }
  return DurableStatus::durable;
}

std::uint64_t Engine::durable_offset(std::uint32_t partition) const {
  if (partition >= impl_->logs.size()) {
    throw std::out_of_range("ringflow::Engine::durable_offset: partition " +
                            std::to_string(partition) + " of " +
                            std::to_string(impl_->logs.size()));
  }
  // Acquire: state running/stopped was published after the log was created (start()).
  if (!impl_->wal || state() == State::created) return 0;
  return impl_->wal->durable_offset(partition);
}

ProducerStats Producer::stats() const noexcept {
  ProducerStats out;
  if (state_ == nullptr) return out;
  for (std::size_t i = 0; i < kPublishStatusCount; ++i) {
    out.by_status[i] = state_->counters.by_status[i].load(std::memory_order_relaxed);
  }
  out.waited_full = state_->counters.waited_full.load(std::memory_order_relaxed);
  return out;
}

bool Producer::wait_and_push(detail::EventRing& ring, std::uint32_t shard, const PublishOptions& o,
                             std::int64_t ts, std::uint32_t topic, std::uint32_t partition,
                             std::string_view key, std::span<const std::byte> payload,
                             std::uint32_t reply_token) noexcept {
  detail::ProducerState& s = *state_;
  auto& waited = s.counters.waited_full;
  waited.store(waited.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // stat
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(s.backpressure_timeout_ns);
  bool pushed = false;
  const auto try_once = [&] {
    pushed = ring.try_emplace(o, ts, topic, partition, key, payload, reply_token);
    return pushed;
  };
  if (s.backpressure == BackpressurePolicy::park) {
    (void)s.rings[shard]->space.wait_until(try_once, deadline);
  } else {
    SpinThenYield w;
    (void)w.wait_until(try_once, deadline);
  }
  return pushed;
}

}  // namespace ringflow

namespace ringflow {

std::size_t Engine::redrive(TopicId dead_letter_topic,
                            const std::function<bool(const StoredEvent&)>& select,
                            Producer& producer) {
  {
    std::lock_guard lock(impl_->lifecycle);
    if (impl_->state == State::created || dead_letter_topic.value >= impl_->is_dead_letter.size() ||
        impl_->is_dead_letter[dead_letter_topic.value] == 0) {
      throw std::invalid_argument(
          "ringflow: redrive needs a dead-letter topic of a started engine");
    }
  }
  std::size_t count = 0;
  StoredEvent e;
  for (std::uint32_t p = 0; p < partitions(); ++p) {
    PartitionReader r = reader(p);
    for (ReadStatus st = r.next(e); st != ReadStatus::end; st = r.next(e)) {
      if (st != ReadStatus::ok || e.topic != dead_letter_topic || !e.dead_letter) continue;
      if (select && !select(e)) continue;
      PublishOptions o;
      o.correlation_id = e.correlation_id;
      o.causation_id = e.id;
      o.deadline_ns = 0;  // a redriven event gets a fresh chance
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      PublishStatus s = PublishStatus::full;
      while ((s = producer.publish(TopicId{e.dead_letter->origin_topic}, e.key, e.payload, o)) ==
                 PublishStatus::full &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
      }
      if (s != PublishStatus::ok) {
        const std::string why = "redrive of '" + std::string(topic_name(dead_letter_topic)) +
                                "' stopped after " + std::to_string(count) +
                                " event(s): publish returned " + std::string(to_string(s));
        detail::Logger(&impl_->log_sink).log(LogLevel::error, "redrive", why);
        throw std::runtime_error("ringflow: " + why);
      }
      ++count;
    }
  }
  detail::Logger(&impl_->log_sink)
      .log(LogLevel::info, "redrive",
           "redrive of '" + std::string(topic_name(dead_letter_topic)) +
               "': " + std::to_string(count) + " dead letter(s) republished to their topics");
  return count;
}

}  // namespace ringflow

namespace ringflow {

ReplyHandle Producer::request(TopicId topic, std::string_view key,
                              std::span<const std::byte> payload, std::int64_t deadline_ns,
                              const PublishOptions& options) noexcept {
  if (state_ == nullptr) return {RequestStatus::not_accepted, PublishStatus::stopped};
  // Acquire: pairs with make_producer()'s release (it may have run on another thread).
  detail::RequestTable* table = state_->requests.load(std::memory_order_acquire);
  if (table == nullptr || table->capacity() == 0) {
    return {RequestStatus::too_many_pending, PublishStatus::ok};
  }
  PublishOptions o = options;
  o.timestamp_ns = o.timestamp_ns != 0 ? o.timestamp_ns : now_ns();
  o.deadline_ns = deadline_ns;
  o.idempotency_key = 0;  // a request is answered once per call: no deduplication
  if (deadline_ns <= o.timestamp_ns) {
    state_->counters.bump(PublishStatus::expired);
    return {RequestStatus::expired, PublishStatus::expired};
  }
  const std::uint32_t slot = table->claim(o.timestamp_ns, deadline_ns);
  if (slot == UINT32_MAX) return {RequestStatus::too_many_pending, PublishStatus::ok};
  const PublishStatus s = publish_event(topic, key, payload, o, table->token(slot));
  if (s != PublishStatus::ok) {
    // Never reached a shard: end it here (the handle reports why) and free the slot.
    (void)table->complete(slot, o.timestamp_ns, RequestStatus::not_accepted);
    table->release(slot);
    return {s == PublishStatus::stopped ? RequestStatus::stopped : RequestStatus::not_accepted, s};
  }
  return {table, slot};
}

ReplyStatus Engine::reply(const EventView& event, std::span<const std::byte> payload) noexcept {
  if (event.reply_token_ == 0) return ReplyStatus::not_a_request;
  if (payload.size() > impl_->cfg.max_payload_bytes) return ReplyStatus::too_large;
  const std::uint32_t p = detail::RequestTable::producer_of(event.reply_token_);
  Impl& m = *impl_;
  // Acquire: pairs with make_producer()'s release; the producer's state is built.
  if (p >= m.producer_count.load(std::memory_order_acquire)) return ReplyStatus::not_a_request;
  // Acquire: pairs with make_producer()'s release; the table is built.
  detail::RequestTable* t = m.producers[p]->requests.load(std::memory_order_acquire);
  if (t != nullptr && t->complete(detail::RequestTable::slot_of(event.reply_token_),
                                  event.publish_ns(), RequestStatus::replied, payload)) {
    return ReplyStatus::ok;
  }
  m.late_replies.fetch_add(1, std::memory_order_relaxed);  // statistic
  return ReplyStatus::late;
}

}  // namespace ringflow

// ---- metrics (metrics.hpp): summed on read from the counters their owners write ----

namespace ringflow {

MetricsSnapshot Engine::metrics() const {
  const Impl& m = *impl_;
  MetricsSnapshot out;
  out.taken_ns = now_ns();
  out.families.reserve(kMetricCount);
  for (std::size_t i = 0; i < kMetricCount; ++i)
    out.families.push_back({static_cast<Metric>(i), &kMetricDefs[i], {}});
  const auto add = [&out](Metric x, std::vector<std::string> labels, std::uint64_t v) {
    MetricSample smp;
    smp.label_values = std::move(labels);
    smp.value = v;
    out.families[static_cast<std::size_t>(x)].samples.push_back(std::move(smp));
  };

  const EngineStats st = m.stats();
  for (std::size_t i = 0; i < kPublishStatusCount; ++i)
    add(Metric::published, {std::string(to_string(static_cast<PublishStatus>(i)))},
        st.published[i]);
  std::uint64_t waits = 0;
  // Acquire: pairs with make_producer()'s release; the states below are fully built.
  const std::uint32_t np = m.producer_count.load(std::memory_order_acquire);
  for (std::uint32_t p = 0; p < np; ++p)
    waits += m.producers[p]->counters.waited_full.load(std::memory_order_relaxed);  // statistic
  add(Metric::producer_waits, {}, waits);

  for (const TopicStats& t : st.topics) {
    add(Metric::events, {t.name}, t.accepted);
    add(Metric::events_stored, {t.name}, t.appended);
    add(Metric::events_expired, {t.name}, t.expired);
    add(Metric::events_duplicate, {t.name}, t.duplicates);
    add(Metric::topic_dead_letters, {t.name}, t.dead_lettered);
  }
  add(Metric::processed, {}, st.processed);
  add(Metric::filtered, {}, st.filtered);
  add(Metric::stage_failures, {}, st.stage_failures);

  // Acquire: pairs with start()'s release; the shards vector is complete and never changes.
  const bool ready = m.shards_ready.load(std::memory_order_acquire);
  std::vector<std::uint64_t> sub_failures(st.subscriptions.size(), 0);
  for (std::size_t sh = 0; ready && sh < m.shards.size(); ++sh) {
    const auto& subs = m.shards[sh]->subscription_counters();
    for (std::size_t s = 0; s < subs.size() && s < sub_failures.size(); ++s)
      sub_failures[s] += subs[s]->failures.get();
  }
  for (std::size_t s = 0; s < st.subscriptions.size(); ++s) {
    const SubscriptionStats& ss = st.subscriptions[s];
    const auto labels = [&] {
      return std::vector<std::string>{std::to_string(s), ss.pattern, ss.group};
    };
    add(Metric::deliveries, labels(), ss.first_deliveries);
    add(Metric::retries, labels(), ss.retries);
    add(Metric::handled_ok, labels(), ss.ok);
    add(Metric::handler_failures, labels(), sub_failures[s]);
    add(Metric::subscription_dead_letters, labels(), ss.dead_lettered);
    add(Metric::replayed, labels(), ss.replayed);
  }
  for (std::size_t r = 0; r < std::size(st.dead_lettered); ++r)
    add(Metric::dead_letters, {std::string(to_string(static_cast<DeadLetterReason>(r)))},
        st.dead_lettered[r]);
  add(Metric::dead_letter_failures, {}, st.dead_letter_failures);
  add(Metric::subscribe_denied, {}, st.subscribe_denied);
  add(Metric::late_replies, {}, st.late_replies);
  for (std::size_t sh = 0; sh < m.cfg.shards; ++sh)
    add(Metric::handler_stalls, {std::to_string(sh)},
        ready && m.watchdog ? m.watchdog->stalls(sh) : 0);

  static constexpr const char* kLaneNames[detail::kLanes] = {"normal", "urgent"};
  for (std::uint32_t sh = 0; sh < m.cfg.shards; ++sh) {
    for (std::uint32_t lane = 0; lane < detail::kLanes; ++lane) {
      std::uint64_t depth = 0;
      std::uint64_t full = 0;
      for (std::uint32_t p = 0; p < np; ++p) {
        const detail::ProducerState& ps = *m.producers[p];
        const std::size_t ring = std::size_t{sh} * detail::kLanes + lane;
        // Relaxed (all three): a gauge and a statistic. `completed` may run ahead of `pushed`
        // (the producer counts after its push), so the difference is clamped at 0.
        const std::uint64_t done = ps.rings[sh]->completed[lane].load(std::memory_order_relaxed);
        const std::uint64_t pushed = ps.pushed[ring].load(std::memory_order_relaxed);
        depth += pushed > done ? pushed - done : 0;
        full += ps.full[ring].load(std::memory_order_relaxed);
      }
      add(Metric::ring_depth, {std::to_string(sh), kLaneNames[lane]}, depth);
      add(Metric::ring_full, {std::to_string(sh), kLaneNames[lane]}, full);
    }
  }
  for (const auto& log : m.logs) {
    const std::string part = std::to_string(log->partition());
    add(Metric::partition_end_offset, {part}, log->end_offset());
    add(Metric::partition_first_offset, {part}, log->first_offset());
    add(Metric::partition_segments, {part}, log->segment_count());
    add(Metric::partition_bytes, {part}, log->bytes_held());
    add(Metric::retention_evictions, {part}, log->evicted_segments());
  }
  // A histogram sample from a recorder (null: before start(), all zero).
  const auto add_histogram = [&out](Metric x, std::vector<std::string> labels,
                                    const detail::LatencyRecorder* rec) {
    MetricSample h;
    h.label_values = std::move(labels);
    h.histogram.buckets.assign(LatencyBuckets::kCount, 0);
    if (rec != nullptr) {
      // The count is the sum of the buckets as read (Prometheus wants _count == the +Inf
      // bucket), so a scrape racing the shard stays self-consistent.
      std::uint64_t count = 0;
      for (std::size_t b = 0; b < LatencyBuckets::kCount; ++b) {
        h.histogram.buckets[b] = rec->buckets[b].get();
        count += h.histogram.buckets[b];
      }
      h.histogram.count = count;
      h.histogram.sum_ns = rec->sum_ns.get();
    }
    out.families[static_cast<std::size_t>(x)].samples.push_back(std::move(h));
  };
  for (std::size_t sh = 0; sh < m.cfg.shards; ++sh) {
    const std::string id = std::to_string(sh);
    const detail::Shard* shard = ready ? m.shards[sh].get() : nullptr;
    const auto counter = [&](const detail::Counter detail::ShardCounters::*c) {
      return shard == nullptr ? 0 : (shard->counters().*c).get();
    };
    add(Metric::batches, {id}, counter(&detail::ShardCounters::batches));
    add(Metric::shard_idle_polls, {id}, counter(&detail::ShardCounters::idle_polls));
    add(Metric::shard_yields, {id}, counter(&detail::ShardCounters::yields));
    add(Metric::shard_parks, {id}, counter(&detail::ShardCounters::parks));
    add_histogram(Metric::ingest_to_done, {id},
                  shard == nullptr ? nullptr : &shard->ingest_to_done());
    for (std::size_t i = 0; i < kLatencyStageCount; ++i) {
      const auto stage = static_cast<LatencyStage>(i);
      add_histogram(Metric::stage_latency, {id, std::string(kLatencyStageNames[i])},
                    shard == nullptr ? nullptr : &shard->stage_latency(stage));
    }
  }
  return out;
}

}  // namespace ringflow
