// Request/reply across instances: NATS core request/reply in front of the engine's own.
//
// Wire format. Request: subject "<prefix>.<topic>", data = the payload, headers
// Ringflow-Key (the key) and Ringflow-Timeout-Ns (time left at send: clocks of two machines
// are not compared). Response: data = the reply (when replied), header Ringflow-Status (a
// RequestStatus name) and, for dead letters, Ringflow-Reason.

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "nats_common.hpp"
#include "ringflow/clock.hpp"

namespace ringflow::nats {

namespace {

constexpr const char* kStatus = "Ringflow-Status";
constexpr const char* kReason = "Ringflow-Reason";
constexpr const char* kKey = "Ringflow-Key";
constexpr const char* kTimeout = "Ringflow-Timeout-Ns";

std::string header(natsMsg* m, const char* name) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, name, &v) != NATS_OK || v == nullptr) return {};
  return v;
}

RequestStatus status_named(std::string_view s) {
  for (auto st : {RequestStatus::replied, RequestStatus::expired, RequestStatus::no_subscriber,
                  RequestStatus::dead_lettered, RequestStatus::stopped, RequestStatus::not_accepted,
                  RequestStatus::too_many_pending}) {
    if (to_string(st) == s) return st;
  }
  return RequestStatus::not_accepted;  // an answer this version cannot read
}

}  // namespace

struct Responder::Impl {
  Connection& conn;
  Engine& engine;
  ResponderOptions opts;
  natsSubscription* sub = nullptr;
  std::thread worker;
  std::mutex mu;  // the queue between the NATS delivery thread and the worker (off the engine)
  std::condition_variable cv;
  std::deque<natsMsg*> queue;
  bool stopping = false;
  std::atomic<std::uint64_t> received{0};  // statistics (relaxed)
  std::atomic<std::uint64_t> answered{0};
  std::atomic<std::uint64_t> replied{0};

  struct Pending {
    ReplyHandle handle;
    std::string reply_to;
  };

  Impl(Connection& c, Engine& e, ResponderOptions o) : conn(c), engine(e), opts(std::move(o)) {}

  static void on_msg(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsMsg* m, void* self) {
    auto* me = static_cast<Impl*>(self);
    {
      std::lock_guard lock(me->mu);
      if (me->stopping) {
        natsMsg_Destroy(m);
        return;
      }
      me->queue.push_back(m);
    }
    me->cv.notify_one();
  }

  void respond(const std::string& reply_to, RequestStatus st, std::span<const std::byte> data,
               std::string_view reason = {}) {
    if (reply_to.empty()) return;  // a plain publish, not a request: nobody to answer
    natsMsg* r = nullptr;
    if (natsMsg_Create(&r, reply_to.c_str(), nullptr, reinterpret_cast<const char*>(data.data()),
                       static_cast<int>(data.size())) != NATS_OK) {
      conn.report(Status::Kind::publish_error, "rpc response to " + reply_to);
      return;
    }
    (void)natsMsgHeader_Set(r, kStatus, std::string(to_string(st)).c_str());
    if (!reason.empty()) (void)natsMsgHeader_Set(r, kReason, std::string(reason).c_str());
    if (natsConnection_PublishMsg(detail::nc_of(conn), r) != NATS_OK) {
      conn.report(Status::Kind::publish_error, "rpc response to " + reply_to);
    }
    natsMsg_Destroy(r);
    answered.fetch_add(1, std::memory_order_relaxed);
    if (st == RequestStatus::replied) replied.fetch_add(1, std::memory_order_relaxed);
  }

  void take(Producer& producer, natsMsg* m, std::vector<Pending>& pending) {
    received.fetch_add(1, std::memory_order_relaxed);
    const std::string reply_to = natsMsg_GetReply(m) != nullptr ? natsMsg_GetReply(m) : "";
    const std::string subject = natsMsg_GetSubject(m);
    const std::string topic_name =
        subject.substr(std::min(subject.size(), opts.subject_prefix.size() + 1));
    const std::string key = header(m, kKey);
    std::int64_t left = 0;
    try {
      left = std::stoll(header(m, kTimeout));
    } catch (...) {
      left = 0;
    }
    const auto topic = engine.find_topic(topic_name);
    if (!topic) {
      respond(reply_to, RequestStatus::no_subscriber, {});
    } else if (left <= 0) {
      respond(reply_to, RequestStatus::expired, {});
    } else {
      ReplyHandle h = producer.request(
          *topic, key,
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(natsMsg_GetData(m)),
                                     static_cast<std::size_t>(natsMsg_GetDataLength(m))),
          ringflow::now_ns() + left);
      if (h.poll() == RequestStatus::pending) {
        pending.push_back({std::move(h), reply_to});
      } else {
        finish(h, reply_to);
      }
    }
    natsMsg_Destroy(m);
  }

  void finish(ReplyHandle& h, const std::string& reply_to) {
    const RequestStatus st = h.poll();
    respond(reply_to, st, h.reply(),
            st == RequestStatus::dead_lettered  ? to_string(h.dead_letter_reason())
            : st == RequestStatus::not_accepted ? to_string(h.publish_status())
                                                : std::string_view{});
  }

  void run() {
    ProducerOptions po;
    po.max_pending_requests = opts.max_pending;
    Producer producer = engine.make_producer(po);
    std::vector<Pending> pending;
    std::vector<natsMsg*> batch;
    for (;;) {
      {
        std::unique_lock lock(mu);
        if (pending.empty() && queue.empty() && !stopping) {
          cv.wait_for(lock, std::chrono::milliseconds(100));
        }
        batch.assign(queue.begin(), queue.end());
        queue.clear();
        if (stopping && batch.empty() && pending.empty()) break;
      }
      for (natsMsg* m : batch)
        take(producer, m, pending);
      std::size_t kept = 0;
      for (std::size_t i = 0; i < pending.size(); ++i) {
        if (pending[i].handle.poll() != RequestStatus::pending) {
          finish(pending[i].handle, pending[i].reply_to);
        } else if (kept++ != i) {
          pending[kept - 1] = std::move(pending[i]);  // never onto itself (a self-moved string
                                                      // may end up empty)
        }
      }
      pending.resize(kept);
      if (!pending.empty() && batch.empty()) std::this_thread::yield();
    }
  }
};

Responder::Responder(Connection& conn, Engine& engine, ResponderOptions options)
    : impl_(std::make_unique<Impl>(conn, engine, std::move(options))) {
  if (impl_->opts.subject_prefix.empty()) {
    throw std::invalid_argument("ringflow::nats::Responder: subject_prefix is empty");
  }
}

Responder::~Responder() {
  stop();
}

void Responder::start() {
  Impl& m = *impl_;
  if (m.sub != nullptr) return;
  const std::string subject = m.opts.subject_prefix + ".>";
  const natsStatus s = natsConnection_QueueSubscribe(&m.sub, detail::nc_of(m.conn), subject.c_str(),
                                                     m.opts.queue_group.c_str(), &Impl::on_msg, &m);
  if (s != NATS_OK) detail::fail("natsConnection_QueueSubscribe(" + subject + ")", s);
  m.worker = std::thread([&m] { m.run(); });
}

void Responder::stop() {
  Impl& m = *impl_;
  if (m.sub != nullptr) {
    (void)natsSubscription_Unsubscribe(m.sub);
    natsSubscription_Destroy(m.sub);
    m.sub = nullptr;
  }
  {
    std::lock_guard lock(m.mu);
    m.stopping = true;
  }
  m.cv.notify_one();
  if (m.worker.joinable()) m.worker.join();
  std::lock_guard lock(m.mu);
  for (natsMsg* msg : m.queue)
    natsMsg_Destroy(msg);
  m.queue.clear();
}

ResponderStats Responder::stats() const {
  ResponderStats s;
  s.received = impl_->received.load(std::memory_order_relaxed);
  s.answered = impl_->answered.load(std::memory_order_relaxed);
  s.replied = impl_->replied.load(std::memory_order_relaxed);
  return s;
}

RemoteReply request(Connection& conn, std::string_view topic, std::string_view key,
                    std::span<const std::byte> payload, std::int64_t deadline_ns,
                    std::string_view subject_prefix) {
  RemoteReply out;
  const std::int64_t left = deadline_ns - ringflow::now_ns();
  if (left <= 0) {
    out.status = RequestStatus::expired;
    return out;
  }
  const std::string subject = std::string(subject_prefix) + "." + std::string(topic);
  natsMsg* m = nullptr;
  if (natsMsg_Create(&m, subject.c_str(), nullptr, reinterpret_cast<const char*>(payload.data()),
                     static_cast<int>(payload.size())) != NATS_OK) {
    out.status = RequestStatus::not_accepted;
    out.detail = "natsMsg_Create failed";
    return out;
  }
  (void)natsMsgHeader_Set(m, kKey, std::string(key).c_str());
  (void)natsMsgHeader_Set(m, kTimeout, std::to_string(left).c_str());
  natsMsg* resp = nullptr;
  const std::int64_t timeout_ms = std::max<std::int64_t>(1, (left + 999'999) / 1'000'000);
  const natsStatus s = natsConnection_RequestMsg(&resp, detail::nc_of(conn), m, timeout_ms);
  natsMsg_Destroy(m);
  if (s == NATS_TIMEOUT) {
    out.status = RequestStatus::expired;
  } else if (s == NATS_NO_RESPONDERS) {
    out.status = RequestStatus::no_subscriber;
    out.detail = "no instance serves '" + subject + "'";
  } else if (s != NATS_OK) {
    out.status = RequestStatus::not_accepted;
    out.detail = detail::error_text("natsConnection_RequestMsg", s);
  } else {
    out.status = status_named(header(resp, kStatus));
    out.detail = header(resp, kReason);
    if (out.status == RequestStatus::replied) {
      out.payload.assign(natsMsg_GetData(resp),
                         static_cast<std::size_t>(natsMsg_GetDataLength(resp)));
    }
  }
  if (resp != nullptr) natsMsg_Destroy(resp);
  return out;
}

}  // namespace ringflow::nats
