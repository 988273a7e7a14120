// Sink: async JetStream publishes with a bounded window; a full window is Outcome::retry.
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nats_common.hpp"
#include "ringflow/key_hash.hpp"

namespace ringflow::nats {

struct Sink::Impl {
  Connection& conn;
  SinkOptions o;
  jsCtx* js = nullptr;
  // Counters: independent statistics, read by stats() only (relaxed).
  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> stored{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> back_pressure{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> timed_out{0};
  std::atomic<std::uint64_t> republished{0};
  // Publishes the server refused after they were queued (no leader, no stream, ...) or did not
  // answer within publish_timeout, kept with their headers (Nats-Msg-Id) for flush() to queue
  // again.
  std::mutex refused_mu;
  std::vector<natsMsg*> refused;

  Impl(Connection& c, SinkOptions opt) : conn(c), o(std::move(opt)) {}
  ~Impl() {
    if (js != nullptr) jsCtx_Destroy(js);
    for (natsMsg* m : refused)
      natsMsg_Destroy(m);
  }

  // Runs on a libnats thread for every queued publish; we own `msg`. libnats counts the publish
  // as pending until this returns, so a refused one is in `refused` before flush() can see the
  // window empty. A publish with no answer within its MaxWait (publish_timeout) comes here too,
  // with NATS_TIMEOUT, from libnats' timer: it has left the window, and an answer arriving later
  // is dropped by libnats.
  static void on_ack(jsCtx* /*js*/, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* self) {
    Impl& i = *static_cast<Impl*>(self);
    if (pae != nullptr) {
      const bool timeout = pae->Err == NATS_TIMEOUT;
      (timeout ? i.timed_out : i.failed).fetch_add(1, std::memory_order_relaxed);
      std::string what = natsMsg_GetSubject(msg);
      what += ": ";
      if (timeout) {
        what += "no answer within publish_timeout (";
        what += std::to_string(i.o.publish_timeout.count());
        what += " ms); kept for flush()";
      } else {
        what += natsStatus_GetText(pae->Err);
      }
      if (!timeout && pae->ErrText != nullptr) {
        what += ": ";
        what += pae->ErrText;
      }
      i.conn.report(Status::Kind::publish_error, std::move(what));
      std::lock_guard lock(i.refused_mu);
      i.refused.push_back(msg);
      return;
    }
    i.stored.fetch_add(1, std::memory_order_relaxed);
    if (pa != nullptr && pa->Duplicate) i.duplicates.fetch_add(1, std::memory_order_relaxed);
    natsMsg_Destroy(msg);
  }

  [[nodiscard]] std::string subject(const EventView& e) const {
    if (o.subject) return o.subject(e);
    std::string s = o.subject_prefix;
    s += '.';
    s += std::to_string(partition_of(e.key(), o.partitions));
    s += '.';
    s += e.key();
    if (e.dead_letter() != nullptr) s += ".dlq";
    return s;
  }
};

Sink::Sink(Connection& conn, SinkOptions options)
    : impl_(std::make_unique<Impl>(conn, std::move(options))) {
  Impl& i = *impl_;
  if (i.o.max_pending <= 0) throw std::invalid_argument("ringflow::nats: max_pending must be > 0");
  if (i.o.partitions == 0) throw std::invalid_argument("ringflow::nats: partitions must be > 0");
  if (i.o.publish_timeout.count() <= 0) {
    throw std::invalid_argument("ringflow::nats: publish_timeout must be > 0");
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = conn.options().request_timeout.count();
  jo.PublishAsync.MaxPending = i.o.max_pending;
  jo.PublishAsync.StallWait = std::max<std::int64_t>(1, i.o.stall_wait.count());
  jo.PublishAsync.AckHandler = &Impl::on_ack;
  jo.PublishAsync.AckHandlerClosure = &i;
  const natsStatus s = natsConnection_JetStream(&i.js, detail::nc_of(conn), &jo);
  if (s != NATS_OK) detail::fail("natsConnection_JetStream (sink)", s);
}

Sink::~Sink() {
  Impl& i = *impl_;
  if (flush(std::chrono::seconds(5))) return;
  // Publishes still in flight name `i` as their ack handler's closure. Each ends within its
  // publish_timeout (an answer, or a timeout through on_ack), so wait that long for them:
  // none may land on a freed Impl. What they leave in `refused` goes with the Impl.
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = i.o.publish_timeout.count() + 1000;
  (void)js_PublishAsyncComplete(i.js, &po);
}

Outcome Sink::publish(const EventView& e) {
  Impl& i = *impl_;
  const std::string subj = i.subject(e);
  natsMsg* m = nullptr;
  const std::string_view data = e.payload_string();
  natsStatus s =
      natsMsg_Create(&m, subj.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
  if (s != NATS_OK) return Outcome::retry(i.o.retry_delay);
  std::string id;
  if (!i.o.msg_id_prefix.empty()) {
    id = i.o.msg_id_prefix;
    id += '-';
    id += std::to_string(e.correlation_id());
    if (e.dead_letter() != nullptr) id += "-dlq";
  }
  if (const DeadLetterInfo* dl = e.dead_letter(); dl != nullptr) {
    (void)natsMsgHeader_Set(m, "Ringflow-Reason", std::string(to_string(dl->reason)).c_str());
    (void)natsMsgHeader_Set(m, "Ringflow-Attempts", std::to_string(dl->attempts).c_str());
    (void)natsMsgHeader_Set(m, "Ringflow-Error", std::string(dl->last_error_text()).c_str());
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  if (!id.empty()) po.MsgId = id.c_str();
  po.MaxWait = i.o.publish_timeout.count();  // bounded: no answer in time is a timeout (on_ack)
  s = js_PublishMsgAsync(i.js, &m, &po);
  if (s != NATS_OK) {
    // The window stayed full for stall_wait (NATS_TIMEOUT), or the connection refuses
    // (reconnect buffer full, closed): back-pressure, tried again by the engine's retry wheel.
    if (m != nullptr) natsMsg_Destroy(m);
    i.back_pressure.fetch_add(1, std::memory_order_relaxed);
    return Outcome::retry(i.o.retry_delay);
  }
  i.published.fetch_add(1, std::memory_order_relaxed);
  return Outcome::ok();
}

bool Sink::flush(std::chrono::milliseconds timeout) {
  Impl& i = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = std::max<std::int64_t>(1, left.count());
    const bool complete = js_PublishAsyncComplete(i.js, &po) == NATS_OK;
    std::vector<natsMsg*> again;
    {
      std::lock_guard lock(i.refused_mu);
      again.swap(i.refused);
    }
    if (again.empty()) return complete;
    // Refused or unanswered after being queued: queue them again (same Nats-Msg-Id: stored
    // once), so that flush() == true still means every output is stored.
    std::vector<natsMsg*> kept;
    jsPubOptions again_po;  // the message keeps its headers (Nats-Msg-Id)
    jsPubOptions_Init(&again_po);
    again_po.MaxWait = i.o.publish_timeout.count();
    for (natsMsg* m : again) {
      natsMsg* msg = m;
      if (js_PublishMsgAsync(i.js, &msg, &again_po) == NATS_OK) {
        i.republished.fetch_add(1, std::memory_order_relaxed);
      } else {
        kept.push_back(msg);
      }
    }
    if (!kept.empty()) {
      std::lock_guard lock(i.refused_mu);
      i.refused.insert(i.refused.end(), kept.begin(), kept.end());
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    // Not at once again if the server keeps refusing: a short pause, bounded by the deadline.
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(
        std::chrono::milliseconds(5), deadline - std::chrono::steady_clock::now()));
  }
}

SinkStats Sink::stats() const {
  const Impl& i = *impl_;
  SinkStats s;
  s.published = i.published.load(std::memory_order_relaxed);
  s.stored = i.stored.load(std::memory_order_relaxed);
  s.duplicates = i.duplicates.load(std::memory_order_relaxed);
  s.back_pressure = i.back_pressure.load(std::memory_order_relaxed);
  s.failed = i.failed.load(std::memory_order_relaxed);
  s.timed_out = i.timed_out.load(std::memory_order_relaxed);
  s.republished = i.republished.load(std::memory_order_relaxed);
  return s;
}

}  // namespace ringflow::nats
