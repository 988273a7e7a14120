#pragma once
// Request/reply: Producer::request() publishes an event and returns a ReplyHandle; a handler
// answers with Engine::reply(event, payload). Every request ends exactly one way (see
// RequestStatus) by its deadline at the latest; stop() ends every pending one with `stopped`.
//
//   auto h = producer.request(reserve, order_id, bytes, ringflow::now_ns() + 2'000'000);
//   if (h.wait() == ringflow::RequestStatus::replied) use(h.reply());
//
//   engine.subscribe("stock.reserve", [&](const ringflow::EventView& e) {
//     engine.reply(e, reserve(e.payload()) ? "ok" : "out of stock");
//   });
//
// The handle is polled (poll(): never blocks, marks the request expired once its deadline
// passed) or waited on (wait(): spins, yields, then parks on a futex until a completion or the
// deadline). It belongs to one thread at a time; destroying it gives its slot back (a reply
// that comes later is dropped and counted). No lock, allocation or system call on the
// request/reply path beyond publish()'s own, and a futex wake when a waiter is parked.
// Handles may outlive their Producer; once the producer is gone, replies to its pending
// requests may no longer reach them (counted as late): such handles end at their deadline, or
// at stop().

#include <cstdint>
#include <span>
#include <string_view>

#include "ringflow/detail/request_table.hpp"
#include "ringflow/request_status.hpp"
#include "ringflow/status.hpp"

namespace ringflow {

class ReplyHandle {
 public:
  ReplyHandle() noexcept = default;  ///< ended: not_accepted (stopped)
  ReplyHandle(ReplyHandle&& o) noexcept
      : table_(o.table_), slot_(o.slot_), status_(o.status_), publish_(o.publish_) {
    o.table_ = nullptr;
  }
  ReplyHandle& operator=(ReplyHandle&& o) noexcept {
    if (this != &o) {
      reset();
      table_ = o.table_;
      slot_ = o.slot_;
      status_ = o.status_;
      publish_ = o.publish_;
      o.table_ = nullptr;
    }
    return *this;
  }
  ReplyHandle(const ReplyHandle&) = delete;
  ReplyHandle& operator=(const ReplyHandle&) = delete;
  ~ReplyHandle() { reset(); }

  /// The status now: pending, or how the request ended. Never blocks.
  [[nodiscard]] RequestStatus poll() noexcept {
    if (table_ != nullptr && status_ == RequestStatus::pending) status_ = table_->poll(slot_);
    return status_;
  }
  /// Blocks until the request ends, at the latest at its deadline.
  RequestStatus wait() noexcept {
    if (table_ != nullptr && status_ == RequestStatus::pending) status_ = table_->wait(slot_);
    return status_;
  }
  [[nodiscard]] bool done() noexcept { return poll() != RequestStatus::pending; }

  /// The reply's payload (when replied; empty otherwise). Valid while this handle lives.
  [[nodiscard]] std::span<const std::byte> reply() const noexcept {
    if (table_ == nullptr || status_ != RequestStatus::replied) return {};
    const auto& s = table_->slot(slot_);
    return {s.reply, s.reply_len};
  }
  [[nodiscard]] std::string_view reply_string() const noexcept {
    const auto r = reply();
    return {reinterpret_cast<const char*>(r.data()), r.size()};
  }
  /// Why it was dead-lettered (when dead_lettered).
  [[nodiscard]] DeadLetterReason dead_letter_reason() const noexcept {
    return table_ != nullptr && status_ == RequestStatus::dead_lettered ? table_->slot(slot_).reason
                                                                        : DeadLetterReason::failed;
  }
  /// What publish() returned (ok unless not_accepted / too_many_pending).
  [[nodiscard]] PublishStatus publish_status() const noexcept { return publish_; }

 private:
  friend class Producer;
  ReplyHandle(detail::RequestTable* t, std::uint32_t slot) noexcept
      : table_(t), slot_(slot), status_(RequestStatus::pending), publish_(PublishStatus::ok) {}
  ReplyHandle(RequestStatus ended, PublishStatus why) noexcept : status_(ended), publish_(why) {}

  void reset() noexcept {
    if (table_ != nullptr) table_->release(slot_);
    table_ = nullptr;
  }

  detail::RequestTable* table_ = nullptr;
  std::uint32_t slot_ = 0;
  RequestStatus status_ = RequestStatus::not_accepted;
  PublishStatus publish_ = PublishStatus::stopped;
};

}  // namespace ringflow
