// Source: durable pull consumers (one per owned partition) -> one engine topic, with acks driven
// by the gating subscriptions' outcomes. The correlation is described in nats.hpp.
//
// Threads: one fetch thread per owned partition (blocks in a pull request with an expiry), one
// ack thread. Handlers (engine shard threads) only append to the completion queue; every NATS
// call on a message happens on a fetch or the ack thread.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "nats_common.hpp"
#include "ringflow/topic.hpp"

namespace ringflow::nats {

namespace {

using Clock = std::chrono::steady_clock;

struct Completion {
  std::uint64_t seq = 0;
  bool dead = false;
  bool whole = false;  ///< settles the message at once (not one subscription's share)
  std::string reason;
};

struct Pending {
  natsMsg* msg = nullptr;  ///< the latest delivery: the one acked
  std::uint32_t remaining = 0;
  std::uint32_t partition = 0;
  bool dead = false;
  std::string reason;
};

struct Finished {
  natsMsg* msg = nullptr;
  std::uint64_t seq = 0;
  bool dead = false;
  std::string reason;
};

struct Lane {
  std::uint32_t partition = 0;
  natsSubscription* sub = nullptr;
  std::atomic<bool> run{true};  // written by own/release, read by the lane thread (relaxed:
                                // a flag, no data is published through it)
  std::thread thread;
};

}  // namespace

struct Source::Impl {
  Connection& conn;
  Engine& engine;
  SourceOptions o;
  TopicId topic;
  std::string topic_name;
  std::vector<std::uint32_t> gating;  // engine subscription indices; fixed once started
  std::uint32_t expected = 0;
  std::uint32_t max_attempts = 0;  // the largest of the gating subscriptions matching the topic
  std::uint32_t max_deliver = 0;   // the consumers' MaxDeliver; fixed by start()

  // One producer shared by the fetch threads (publish is cheap). A Producer belongs to one
  // thread at a time: a fetch thread that is not the last one to publish takes it over by
  // moving it (the engine's hand-over), under the lock, so no publish runs on it meanwhile.
  std::mutex producer_mu;
  Producer producer;
  std::thread::id producer_thread;  // guarded by producer_mu

  std::mutex mu;  // pending + done
  std::condition_variable settled_cv;
  // Guarded by mu: messages the ack thread took out of `pending` and is still acking (it uses
  // their subscription), and how many such batches it has completed.
  std::size_t finishing = 0;
  std::uint64_t finished_batches = 0;
  std::unordered_map<std::uint64_t, Pending> pending;
  std::unordered_map<std::uint64_t, std::pair<bool, std::string>> done;  // seq -> (dead, reason)
  std::deque<std::uint64_t> done_order;

  std::mutex cq_mu;  // completions from handlers
  std::condition_variable cq_cv;
  std::vector<Completion> cq;
  bool acker_run = false;  // guarded by cq_mu
  std::thread acker;

  std::mutex lanes_mu;
  std::map<std::uint32_t, std::unique_ptr<Lane>> lanes;
  std::atomic<bool> started{false};  // lifecycle flags, also read by own() from a lease thread
  std::atomic<bool> stopped{false};

  // Statistics (relaxed: independent counters).
  std::atomic<std::uint64_t> fetched{0}, redelivered{0}, published{0}, answered_again{0}, acked{0},
      dead_lettered{0}, naked{0}, fetch_errors{0};

  Impl(Connection& c, Engine& e, SourceOptions opt) : conn(c), engine(e), o(std::move(opt)) {}

  [[nodiscard]] std::string durable(std::uint32_t p) const {
    return o.durable_prefix + "_" + std::to_string(p);
  }
  [[nodiscard]] std::string filter(std::uint32_t p) const {
    return o.subject_prefix + "." + std::to_string(p) + ".*";
  }

  void post(Completion c) {
    bool was_empty = false;
    {
      std::lock_guard lock(cq_mu);
      was_empty = cq.empty();
      cq.push_back(std::move(c));
    }
    // The ack thread empties the queue in one go: wake it for the first completion only.
    if (was_empty) cq_cv.notify_one();
  }

  void remember(std::uint64_t seq, bool dead, const std::string& reason) {
    if (o.remembered == 0) return;
    if (done.emplace(seq, std::make_pair(dead, reason)).second) done_order.push_back(seq);
    while (done_order.size() > o.remembered) {
      done.erase(done_order.front());
      done_order.pop_front();
    }
  }

  // Ack, or publish the dead letter and terminate. Owns f.msg.
  void finish(Finished& f) {
    if (!f.dead) {
      const natsStatus s = natsMsg_Ack(f.msg, nullptr);
      if (s == NATS_OK) {
        acked.fetch_add(1, std::memory_order_relaxed);
      } else {
        conn.report(Status::Kind::ack_error, detail::error_text("natsMsg_Ack", s));
      }
      natsMsg_Destroy(f.msg);
      return;
    }
    const std::string subj = std::string(natsMsg_GetSubject(f.msg)) + ".dlq";
    natsMsg* copy = nullptr;
    natsStatus s = natsMsg_Create(&copy, subj.c_str(), nullptr, natsMsg_GetData(f.msg),
                                  natsMsg_GetDataLength(f.msg));
    if (s == NATS_OK) {
      (void)natsMsgHeader_Set(copy, "Ringflow-Reason", f.reason.c_str());
      (void)natsMsgHeader_Set(copy, "Ringflow-Sequence", std::to_string(f.seq).c_str());
      const std::string id = "dlq-" + std::to_string(f.seq);
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = id.c_str();
      jsPubAck* pa = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      s = js_PublishMsg(&pa, detail::js_of(conn), copy, &po, &jerr);
      if (pa != nullptr) jsPubAck_Destroy(pa);
      natsMsg_Destroy(copy);
      if (s != NATS_OK) {
        // Left unacked: redelivered after AckWait and answered again from `done`.
        conn.report(Status::Kind::dlq_error, detail::error_text("publish " + subj, s, jerr));
        natsMsg_Destroy(f.msg);
        return;
      }
    }
    s = natsMsg_Term(f.msg, nullptr);
    if (s != NATS_OK) conn.report(Status::Kind::ack_error, detail::error_text("natsMsg_Term", s));
    dead_lettered.fetch_add(1, std::memory_order_relaxed);
    conn.report(Status::Kind::dead_letter, subj + ": " + f.reason);
    natsMsg_Destroy(f.msg);
  }

  void ack_loop() {
    std::vector<Completion> batch;
    std::vector<Finished> fin;
    for (;;) {
      {
        std::unique_lock lock(cq_mu);
        cq_cv.wait_for(lock, std::chrono::milliseconds(50),
                       [&] { return !cq.empty() || !acker_run; });
        if (cq.empty() && !acker_run) return;
        batch.insert(batch.end(), std::make_move_iterator(cq.begin()),
                     std::make_move_iterator(cq.end()));
        cq.clear();
      }
      if (batch.empty()) continue;
      // Outputs queued by handlers must be stored before their inputs are acked.
      if (o.before_ack && !o.before_ack()) continue;  // keep the batch, try again
      {
        std::lock_guard lock(mu);
        for (Completion& c : batch) {
          const auto it = pending.find(c.seq);
          if (it == pending.end()) continue;  // already settled (released, or a stray id)
          Pending& p = it->second;
          if (c.dead) {
            if (!p.dead) p.reason = std::move(c.reason);
            p.dead = true;
          }
          p.remaining = c.whole || p.remaining <= 1 ? 0 : p.remaining - 1;
          if (p.remaining != 0) continue;
          remember(c.seq, p.dead, p.reason);
          fin.push_back(Finished{p.msg, c.seq, p.dead, std::move(p.reason)});
          pending.erase(it);
        }
        finishing += fin.size();
      }
      batch.clear();
      if (!fin.empty()) settled_cv.notify_all();
      for (Finished& f : fin)
        finish(f);
      {
        std::lock_guard lock(mu);
        finishing -= fin.size();
        ++finished_batches;
      }
      settled_cv.notify_all();
      fin.clear();
    }
  }

  // One fetched message: remember it, hand it to the engine (or answer a redelivery).
  void handle(Lane& lane, natsMsg* msg) {
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
      natsMsg_Destroy(msg);  // not a JetStream message: nothing to ack
      return;
    }
    const std::uint64_t seq = meta->Sequence.Stream;
    const bool again = meta->NumDelivered > 1;
    jsMsgMetaData_Destroy(meta);
    fetched.fetch_add(1, std::memory_order_relaxed);
    if (again) redelivered.fetch_add(1, std::memory_order_relaxed);
    {
      std::unique_lock lock(mu);
      if (const auto it = pending.find(seq); it != pending.end()) {
        natsMsg_Destroy(it->second.msg);  // still in the engine: ack the newest delivery
        it->second.msg = msg;
        return;
      }
      if (const auto it = done.find(seq); it != done.end()) {
        Finished f{msg, seq, it->second.first, it->second.second};
        lock.unlock();
        answered_again.fetch_add(1, std::memory_order_relaxed);
        finish(f);
        return;
      }
      pending.emplace(seq, Pending{msg, expected, lane.partition, false, {}});
    }
    const std::string_view subject = natsMsg_GetSubject(msg);
    const std::string prefix = o.subject_prefix + "." + std::to_string(lane.partition) + ".";
    const std::string_view key =
        subject.starts_with(prefix) ? subject.substr(prefix.size()) : std::string_view{};
    if (!valid_key(key)) {
      post(Completion{seq, true, true, "bad subject"});
      return;
    }
    PublishOptions po;
    po.correlation_id = seq;
    po.idempotency_key = seq;
    const std::string_view data(natsMsg_GetData(msg),
                                static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    for (;;) {
      PublishStatus st{};
      {
        std::lock_guard lock(producer_mu);
        if (producer_thread != std::this_thread::get_id()) {
          Producer p(std::move(producer));
          producer = std::move(p);
          producer_thread = std::this_thread::get_id();
        }
        st = producer.publish(topic, key, data, po);
      }
      if (st == PublishStatus::ok) {
        published.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (st == PublishStatus::full) {
        // Back-pressure from the engine: stop fetching until it takes this one.
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        continue;
      }
      if (st == PublishStatus::too_large) {
        post(Completion{seq, true, true, "too_large"});
        return;
      }
      // Not taken (engine stopping): give it back for later.
      Pending dropped;
      {
        std::lock_guard lock(mu);
        const auto it = pending.find(seq);
        if (it == pending.end()) return;
        dropped = std::move(it->second);
        pending.erase(it);
      }
      (void)natsMsg_NakWithDelay(dropped.msg, 1000, nullptr);
      naked.fetch_add(1, std::memory_order_relaxed);
      natsMsg_Destroy(dropped.msg);
      return;
    }
  }

  // Two requests: a no-wait one takes what is there (up to fetch_batch) at once; when there is
  // nothing, a long poll for one message (expiry + idle heartbeat) waits for the next. A single
  // long poll for a whole batch would hold a lone message until the batch filled or expired.
  void fetch_loop(Lane& lane) {
    // libnats 3.4.1's fetch overruns its message array (Batch entries) when the subscription
    // already holds k delivered messages (late deliveries of an earlier request, e.g.
    // redeliveries released just as that request expired): it takes the k, asks the server for
    // Batch - k more, then collects until it holds Batch - k in all, which never happens when
    // k > Batch - k, so what arrives next is written past the array: a heap corruption in this
    // thread (reproduced with a plain libnats program: 18 messages back for a Batch of 8, with 5
    // queued). A larger Batch cannot fix it (the server refuses batches above MaxAckPending).
    // So while messages are queued, the fetch asks for 1: libnats hands over a queued one and
    // sends no request (Batch 1 cannot overrun). Only a burst landing between that check and
    // libnats' own can still trip it. libnats also writes into the request it is given (Batch,
    // Expires), so each call gets a fresh copy.
    jsFetchRequest now;
    jsFetchRequest_Init(&now);
    now.Batch = o.fetch_batch;
    now.NoWait = true;
    now.Expires = std::chrono::nanoseconds(o.fetch_expiry).count();
    jsFetchRequest wait;
    jsFetchRequest_Init(&wait);
    wait.Batch = 1;
    wait.Expires = std::chrono::nanoseconds(o.fetch_expiry).count();
    wait.Heartbeat = std::chrono::nanoseconds(o.fetch_heartbeat).count();
    bool poll = false;
    while (lane.run.load(std::memory_order_relaxed)) {
      natsMsgList list{};
      jsFetchRequest req = poll ? wait : now;  // a fresh copy: libnats writes into it
      if (int queued = 0;
          natsSubscription_GetPending(lane.sub, &queued, nullptr) == NATS_OK && queued > 0) {
        req = now;
        req.Batch = 1;  // take a queued one, send no request (see above)
      }
      const natsStatus s = natsSubscription_FetchRequest(&list, lane.sub, &req);
      const int got = list.Count;
      for (int k = 0; k < got; ++k) {
        handle(lane, list.Msgs[k]);
        list.Msgs[k] = nullptr;  // ownership moved
      }
      natsMsgList_Destroy(&list);
      poll = got == 0 && !poll;  // nothing there: wait for one; after the wait: take the rest
      if (s == NATS_OK || s == NATS_TIMEOUT || s == NATS_NOT_FOUND) continue;
      poll = false;
      fetch_errors.fetch_add(1, std::memory_order_relaxed);
      conn.report(Status::Kind::fetch_error,
                  "partition " + std::to_string(lane.partition) + ": " +
                      detail::error_text("natsSubscription_FetchRequest", s));
      // Disconnected or the consumer is gone for a moment (leader change): pause, bounded.
      for (int k = 0; k < 10 && lane.run.load(std::memory_order_relaxed); ++k) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }

  natsSubscription* bind(std::uint32_t p) {
    jsCtx* js = detail::js_of(conn);
    const std::string name = durable(p);
    const std::string filt = filter(p);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = name.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = std::chrono::nanoseconds(o.ack_wait).count();
    cc.MaxDeliver = max_deliver;
    cc.MaxAckPending = o.max_ack_pending;
    cc.FilterSubject = filt.c_str();
    jsConsumerInfo* ci = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_AddConsumer(&ci, js, o.stream.c_str(), &cc, nullptr, &jerr);
    if (s != NATS_OK) {
      // It exists with other settings: bring them to ours.
      jerr = static_cast<jsErrCode>(0);
      s = js_UpdateConsumer(&ci, js, o.stream.c_str(), &cc, nullptr, &jerr);
    }
    if (ci != nullptr) jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) detail::fail("js_AddConsumer " + o.stream + "/" + name, s, jerr);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = o.stream.c_str();
    so.Consumer = name.c_str();  // bind: never creates (so never deletes) the consumer
    natsSubscription* sub = nullptr;
    jerr = static_cast<jsErrCode>(0);
    s = js_PullSubscribe(&sub, js, filt.c_str(), name.c_str(), nullptr, &so, &jerr);
    if (s != NATS_OK) detail::fail("js_PullSubscribe " + name, s, jerr);
    return sub;
  }

  // Stops lanes' fetching, waits for their messages, NAKs what is left.
  void release_lanes(std::vector<std::unique_ptr<Lane>> gone) {
    for (auto& l : gone)
      l->run.store(false, std::memory_order_relaxed);
    for (auto& l : gone) {
      if (l->thread.joinable()) l->thread.join();
    }
    const auto is_gone = [&](const Pending& p) {
      return std::any_of(gone.begin(), gone.end(),
                         [&](const auto& l) { return l->partition == p.partition; });
    };
    std::vector<natsMsg*> left;
    {
      std::unique_lock lock(mu);
      settled_cv.wait_for(lock, o.stop_timeout, [&] {
        return std::none_of(pending.begin(), pending.end(),
                            [&](const auto& kv) { return is_gone(kv.second); });
      });
      for (auto it = pending.begin(); it != pending.end();) {
        if (is_gone(it->second)) {
          left.push_back(it->second.msg);
          it = pending.erase(it);
        } else {
          ++it;
        }
      }
      // A batch the ack thread took before this may still hold messages of these partitions:
      // acking one needs its subscription, so wait until that batch is done before destroying
      // it (a later batch cannot hold them: they are no longer pending). Bounded: acks do not
      // block, a dead letter's publish waits at most the request timeout.
      const std::uint64_t batch = finished_batches;
      settled_cv.wait(lock, [&] { return finishing == 0 || finished_batches != batch; });
    }
    for (natsMsg* m : left) {
      (void)natsMsg_Nak(m, nullptr);  // the next owner gets it at once
      naked.fetch_add(1, std::memory_order_relaxed);
      natsMsg_Destroy(m);
    }
    for (auto& l : gone) {
      (void)natsSubscription_Unsubscribe(l->sub);  // bound consumer: it stays on the server
      natsSubscription_Destroy(l->sub);
    }
    (void)conn.flush(std::chrono::seconds(2));
  }
};

Source::Source(Connection& conn, Engine& engine, SourceOptions options)
    : impl_(std::make_shared<Impl>(conn, engine, std::move(options))) {
  Impl& i = *impl_;
  if (i.o.partitions == 0) throw std::invalid_argument("ringflow::nats: partitions must be > 0");
  for (const std::uint32_t p : i.o.owned) {
    if (p >= i.o.partitions) {
      throw std::invalid_argument("ringflow::nats: owned partition " + std::to_string(p) +
                                  " >= partitions " + std::to_string(i.o.partitions));
    }
  }
  if (i.o.fetch_batch <= 0 || i.o.max_ack_pending <= 0) {
    throw std::invalid_argument("ringflow::nats: fetch_batch and max_ack_pending must be > 0");
  }
  if (i.o.fetch_heartbeat * 2 >= i.o.fetch_expiry) {
    throw std::invalid_argument("ringflow::nats: fetch_heartbeat must be < fetch_expiry / 2");
  }
  i.topic = engine.topic(i.o.topic);  // throws std::out_of_range naming it
  i.topic_name = i.o.topic;
  const TopicId dlq = engine.dead_letter_topic(i.topic);
  // The dead-letter watcher: a gating subscription gave up on a sourced message.
  // Handlers keep the state alive: the engine may call them until it stops, after ~Source.
  engine.subscribe(engine.topic_name(dlq), Handler([self = impl_](const EventView& e) {
                     Impl& st = *self;
                     const DeadLetterInfo* dl = e.dead_letter();
                     if (dl == nullptr || dl->origin_topic != st.topic.value) return Outcome::ok();
                     const bool whole = dl->subscription == UINT32_MAX;
                     if (!whole && std::find(st.gating.begin(), st.gating.end(),
                                             dl->subscription) == st.gating.end()) {
                       return Outcome::ok();
                     }
                     std::string reason(to_string(dl->reason));
                     if (!dl->last_error_text().empty()) {
                       reason += ": ";
                       reason += dl->last_error_text();
                     }
                     st.post(Completion{e.correlation_id(), true, whole, std::move(reason)});
                     return Outcome::ok();
                   }));
}

Source::~Source() {
  stop();
}

std::uint32_t Source::subscribe(std::string_view pattern, Handler handler,
                                const SubscribeOptions& options) {
  Impl& i = *impl_;
  if (!options.group.empty()) {
    throw std::invalid_argument(
        "ringflow::nats: a gating subscription cannot be in a consumer group (each sourced "
        "message waits for every gating subscription)");
  }
  if (!handler) throw std::invalid_argument("ringflow::nats: empty handler");
  const std::uint32_t topic = i.topic.value;
  Handler wrapped = [self = impl_, topic, h = std::move(handler)](const EventView& e) {
    const Outcome out = h(e);  // a throw is the engine's: it dead-letters, the watcher sees it
    if (out.kind() == Outcome::Kind::ok && e.original_topic().value == topic) {
      self->post(Completion{e.correlation_id(), false, false, {}});
    }
    return out;
  };
  const std::uint32_t idx = i.engine.subscribe(pattern, std::move(wrapped), options);
  i.gating.push_back(idx);
  if (topic_matches(pattern, i.topic_name)) {
    ++i.expected;
    i.max_attempts = std::max(i.max_attempts, options.max_attempts);
  }
  return idx;
}

void Source::start() {
  Impl& i = *impl_;
  if (i.started) throw std::logic_error("ringflow::nats::Source: already started");
  if (i.expected == 0) {
    throw std::logic_error("ringflow::nats::Source: no gating subscription matches topic '" +
                           i.topic_name + "' (use Source::subscribe)");
  }
  if (i.engine.state() != Engine::State::running) {
    throw std::logic_error("ringflow::nats::Source: start the engine first");
  }
  i.max_deliver = i.o.max_deliver != 0 ? i.o.max_deliver : std::max(1U, i.max_attempts);
  ProducerOptions po;
  po.backpressure = BackpressurePolicy::fail_fast;
  i.producer = i.engine.make_producer(po);
  i.started = true;
  {
    std::lock_guard lock(i.cq_mu);
    i.acker_run = true;
  }
  i.acker = std::thread([&i] { i.ack_loop(); });
  for (const std::uint32_t p : i.o.owned)
    own(p);
}

void Source::own(std::uint32_t partition) {
  Impl& i = *impl_;
  if (partition >= i.o.partitions) {
    throw std::invalid_argument("ringflow::nats: partition " + std::to_string(partition) +
                                " >= partitions " + std::to_string(i.o.partitions));
  }
  std::lock_guard lock(i.lanes_mu);
  // Checked under the lock stop() takes its lanes with: a lane is never added after that.
  if (!i.started || i.stopped) throw std::logic_error("ringflow::nats::Source: not running");
  if (i.lanes.count(partition) != 0) return;
  auto lane = std::make_unique<Lane>();
  lane->partition = partition;
  lane->sub = i.bind(partition);
  Lane& l = *lane;
  lane->thread = std::thread([&i, &l] { i.fetch_loop(l); });
  i.lanes.emplace(partition, std::move(lane));
}

void Source::release(std::uint32_t partition) {
  Impl& i = *impl_;
  std::vector<std::unique_ptr<Lane>> gone;
  {
    std::lock_guard lock(i.lanes_mu);
    const auto it = i.lanes.find(partition);
    if (it == i.lanes.end()) return;
    gone.push_back(std::move(it->second));
    i.lanes.erase(it);
  }
  i.release_lanes(std::move(gone));
}

std::vector<std::uint32_t> Source::owned() const {
  std::lock_guard lock(impl_->lanes_mu);
  std::vector<std::uint32_t> v;
  for (const auto& kv : impl_->lanes)
    v.push_back(kv.first);
  return v;
}

void Source::stop() {
  Impl& i = *impl_;
  if (!i.started || i.stopped.exchange(true)) return;
  std::vector<std::unique_ptr<Lane>> gone;
  {
    std::lock_guard lock(i.lanes_mu);
    for (auto& kv : i.lanes)
      gone.push_back(std::move(kv.second));
    i.lanes.clear();
  }
  i.release_lanes(std::move(gone));
  {
    std::lock_guard lock(i.cq_mu);
    i.acker_run = false;
  }
  i.cq_cv.notify_one();
  if (i.acker.joinable()) i.acker.join();
  (void)i.conn.flush(std::chrono::seconds(2));
  std::lock_guard lock(i.producer_mu);
  i.producer = Producer{};
}

std::uint32_t Source::partitions() const noexcept {
  return impl_->o.partitions;
}

std::uint32_t Source::max_deliver() const {
  return impl_->max_deliver;
}

SourceStats Source::stats() const {
  Impl& i = *impl_;
  SourceStats s;
  s.fetched = i.fetched.load(std::memory_order_relaxed);
  s.redelivered = i.redelivered.load(std::memory_order_relaxed);
  s.published = i.published.load(std::memory_order_relaxed);
  s.answered_again = i.answered_again.load(std::memory_order_relaxed);
  s.acked = i.acked.load(std::memory_order_relaxed);
  s.dead_lettered = i.dead_lettered.load(std::memory_order_relaxed);
  s.naked = i.naked.load(std::memory_order_relaxed);
  s.fetch_errors = i.fetch_errors.load(std::memory_order_relaxed);
  std::lock_guard lock(i.mu);
  s.in_flight = i.pending.size();
  return s;
}

}  // namespace ringflow::nats
