// Request/reply: every request ends exactly one way — replied, expired, no_subscriber,
// dead_lettered, stopped — by its deadline at the latest, under load and at every edge.
// Every wait is bounded by the request's own deadline or an explicit limit.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/ringflow.hpp"

namespace {

using namespace std::chrono_literals;
using ringflow::DeadLetterReason;
using ringflow::Engine;
using ringflow::EngineConfig;
using ringflow::EventView;
using ringflow::Outcome;
using ringflow::ReplyStatus;
using ringflow::RequestStatus;

EngineConfig config(std::uint32_t shards = 1) {
  EngineConfig c;
  c.partitions = 4;
  c.shards = shards;
  c.pin_threads = false;
  c.wait_strategy = ringflow::WaitStrategyKind::park;
  c.ring_capacity = 1024;
  c.batch_size = 64;
  c.segment_bytes = std::size_t{256} << 10;
  c.retention_bytes = std::size_t{2} << 20;
  return c;
}

std::int64_t in(std::chrono::nanoseconds d) {
  return ringflow::now_ns() + d.count();
}

std::string num(std::uint64_t i) {
  return std::string("r").append(std::to_string(i));
}

TEST(RequestReply, RepliesUnderLoadFromManyThreads) {
  Engine engine(config(2));
  const auto t = engine.add_topic("echo");
  engine.subscribe("echo", [&](const EventView& e) {
    const std::string answer = std::string(e.payload_string()).append("!");
    EXPECT_EQ(engine.reply(e, answer), ReplyStatus::ok);
  });
  engine.start();
  constexpr int kThreads = 4;
  constexpr int kEach = 2000;
  std::atomic<int> good{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kThreads; ++c) {
    callers.emplace_back([&, c] {
      auto p = engine.make_producer();
      for (int i = 0; i < kEach; ++i) {
        const std::string body = num(static_cast<std::uint64_t>(c * kEach + i));
        auto h = p.request(t, body, body, in(10s));
        if (h.wait() == RequestStatus::replied && h.reply_string() == body + "!") good.fetch_add(1);
      }
    });
  }
  for (auto& th : callers)
    th.join();
  EXPECT_EQ(good.load(), kThreads * kEach);
  EXPECT_EQ(engine.stats().late_replies, 0U);
}

TEST(RequestReply, PolledHandlesCompleteWithoutBlocking) {
  Engine engine(config());
  const auto t = engine.add_topic("echo");
  engine.subscribe("echo", [&](const EventView& e) { (void)engine.reply(e, "pong"); });
  engine.start();
  auto p = engine.make_producer();
  std::vector<ringflow::ReplyHandle> pending;
  for (int i = 0; i < 100; ++i)
    pending.push_back(p.request(t, "k", "ping", in(10s)));
  const auto until = std::chrono::steady_clock::now() + 10s;
  std::size_t done = 0;
  while (done < pending.size() && std::chrono::steady_clock::now() < until) {
    done = 0;
    for (auto& h : pending)
      done += h.done() ? 1U : 0U;
    std::this_thread::yield();
  }
  ASSERT_EQ(done, pending.size()) << "requests did not complete within 10 s";
  for (auto& h : pending) {
    EXPECT_EQ(h.poll(), RequestStatus::replied);
    EXPECT_EQ(h.reply_string(), "pong");
  }
}

TEST(RequestReply, RequestsExpireAtEveryStage) {
  Engine engine(config());
  const auto silent = engine.add_topic("silent");  // handler returns without replying
  const auto slow = engine.add_topic("slow");      // replies after the deadline
  const auto retried = engine.add_topic("retried");
  engine.subscribe("silent", [](const EventView&) {});
  std::atomic<int> slow_late{0};
  engine.subscribe("slow", [&](const EventView& e) {
    std::this_thread::sleep_for(20ms);  // the caller's deadline (5 ms) passes meanwhile
    if (engine.reply(e, "too late") == ReplyStatus::late) slow_late.fetch_add(1);
  });
  ringflow::SubscribeOptions o;
  o.max_attempts = 5;
  o.retry_backoff = 20ms;
  o.retry_backoff_max = 20ms;
  engine.subscribe("retried", ringflow::Handler([](const EventView&) { return Outcome::retry(); }),
                   o);
  engine.start();
  auto p = engine.make_producer();

  // Before ingest: published "long ago" with a deadline already past by the time a shard
  // sees it (the publish-time check uses the event's own timestamp).
  ringflow::PublishOptions old;
  old.timestamp_ns = ringflow::now_ns() - 1'000'000'000;
  auto before_ingest = p.request(silent, "k", "v", old.timestamp_ns + 1000, old);
  EXPECT_EQ(before_ingest.wait(), RequestStatus::expired);

  // At publish: the deadline has already passed.
  auto at_publish = p.request(silent, "k", "v", ringflow::now_ns() - 1);
  EXPECT_EQ(at_publish.poll(), RequestStatus::expired);
  EXPECT_EQ(at_publish.publish_status(), ringflow::PublishStatus::expired);

  // During processing: nobody replies.
  const auto t0 = std::chrono::steady_clock::now();
  auto unanswered = p.request(silent, "k", "v", in(20ms));
  EXPECT_EQ(unanswered.wait(), RequestStatus::expired);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 19ms) << "wait() returned before the deadline";

  // A reply after the deadline is dropped and counted.
  auto late = p.request(slow, "k", "v", in(5ms));
  EXPECT_EQ(late.wait(), RequestStatus::expired);
  engine.drain();
  EXPECT_EQ(slow_late.load(), 1);
  EXPECT_EQ(late.reply().size(), 0U);
  EXPECT_EQ(engine.stats().late_replies, 1U);

  // Before a retry: the deadline passes while it waits on the wheel.
  auto before_retry = p.request(retried, "k", "v", in(10ms));
  EXPECT_EQ(before_retry.wait(), RequestStatus::expired);
}

TEST(RequestReply, RepliesRacingTheDeadlineEndExactlyOneWay) {
  Engine engine(config(2));
  const auto t = engine.add_topic("race");
  std::atomic<int> ok{0};
  std::atomic<int> late{0};
  engine.subscribe("race", [&](const EventView& e) {
    (engine.reply(e, "x") == ReplyStatus::ok ? ok : late).fetch_add(1);
  });
  engine.start();
  auto p = engine.make_producer();
  int replied = 0;
  int expired = 0;
  int refused = 0;
  constexpr int kRequests = 3000;
  for (int i = 0; i < kRequests; ++i) {
    auto h = p.request(t, num(static_cast<std::uint64_t>(i)), "v",
                       in(std::chrono::nanoseconds(500 + (i % 40) * 500)));
    const RequestStatus s = h.wait();
    if (s == RequestStatus::replied) {
      ++replied;
      EXPECT_EQ(h.reply_string(), "x");
    } else if (s == RequestStatus::not_accepted) {
      // The caller was descheduled past its own microsecond deadline before request() ran:
      // refused at publish as expired, never reaching the handler.
      EXPECT_EQ(h.publish_status(), ringflow::PublishStatus::expired);
      ++refused;
    } else {
      EXPECT_EQ(s, RequestStatus::expired);
      ++expired;
    }
  }
  engine.drain();
  EXPECT_EQ(replied + expired + refused, kRequests);
  EXPECT_EQ(ok.load(), replied) << "a reply counted ok reached its caller, and only then";
  EXPECT_EQ(static_cast<std::uint64_t>(late.load()), engine.stats().late_replies);
  EXPECT_LE(ok.load() + late.load(), kRequests) << "no request reached the handler twice";
}

TEST(RequestReply, FailuresRetriesAndThrowsEndTheRequestWithTheirReason) {
  Engine engine(config());
  const auto failing = engine.add_topic("failing");
  const auto throwing = engine.add_topic("throwing");
  const auto flaky = engine.add_topic("flaky");
  const auto stubborn = engine.add_topic("stubborn");
  ringflow::SubscribeOptions o;
  o.max_attempts = 3;
  o.retry_backoff = 100us;
  o.retry_backoff_max = 1ms;
  engine.subscribe(
      "failing", ringflow::Handler([](const EventView&) { return Outcome::fail("no stock"); }), o);
  engine.subscribe(
      "throwing",
      ringflow::Handler([](const EventView&) -> Outcome { throw std::runtime_error("boom"); }), o);
  engine.subscribe("flaky", ringflow::Handler([&](const EventView& e) {
                     if (e.attempt() < 2) return Outcome::retry();
                     (void)engine.reply(e, "second time lucky");
                     return Outcome::ok();
                   }),
                   o);
  engine.subscribe("stubborn", ringflow::Handler([](const EventView&) { return Outcome::retry(); }),
                   o);
  std::atomic<int> dlq_requests{0};
  engine.subscribe("failing.dlq", [&](const EventView& e) {
    if (e.is_request()) dlq_requests.fetch_add(1);  // a dead letter is no request itself
  });
  engine.start();
  auto p = engine.make_producer();
  auto a = p.request(failing, "k", "v", in(10s));
  auto b = p.request(throwing, "k", "v", in(10s));
  auto c = p.request(flaky, "k", "v", in(10s));
  auto d = p.request(stubborn, "k", "v", in(10s));
  EXPECT_EQ(a.wait(), RequestStatus::dead_lettered);
  EXPECT_EQ(a.dead_letter_reason(), DeadLetterReason::failed);
  EXPECT_EQ(b.wait(), RequestStatus::dead_lettered);
  EXPECT_EQ(b.dead_letter_reason(), DeadLetterReason::failed);
  EXPECT_EQ(c.wait(), RequestStatus::replied);
  EXPECT_EQ(c.reply_string(), "second time lucky");
  EXPECT_EQ(d.wait(), RequestStatus::dead_lettered);
  EXPECT_EQ(d.dead_letter_reason(), DeadLetterReason::retries_exhausted);
  engine.drain();
  EXPECT_EQ(dlq_requests.load(), 0);
}

TEST(RequestReply, NoSubscriberEndsAtOnceNotAtTheDeadline) {
  Engine engine(config());
  const auto nobody = engine.add_topic("nobody.listens");
  const auto filtered = engine.add_topic("filtered");
  engine.pipeline().filter("drop_all", [](const EventView& e) { return e.key() != "drop"; });
  engine.subscribe("filtered", [](const EventView&) {});
  engine.start();
  auto p = engine.make_producer();
  const auto t0 = std::chrono::steady_clock::now();
  auto a = p.request(nobody, "k", "v", in(30s));
  auto b = p.request(filtered, "drop", "v", in(30s));
  EXPECT_EQ(a.wait(), RequestStatus::no_subscriber);
  EXPECT_EQ(b.wait(), RequestStatus::no_subscriber);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(RequestReply, StopEndsEveryPendingRequest) {
  Engine engine(config(2));
  const auto t = engine.add_topic("never");
  engine.subscribe("never", [](const EventView&) {});  // never replies
  engine.start();
  auto p = engine.make_producer();
  std::vector<ringflow::ReplyHandle> pending;
  for (int i = 0; i < 50; ++i)
    pending.push_back(p.request(t, num(static_cast<std::uint64_t>(i)), "v", in(60s)));
  std::atomic<int> waited{0};
  std::thread waiter([&] {
    if (pending[0].wait() == RequestStatus::stopped) waited.fetch_add(1);
  });
  engine.drain();
  EXPECT_EQ(pending[1].poll(), RequestStatus::pending);
  const auto t0 = std::chrono::steady_clock::now();
  engine.stop();
  waiter.join();  // woken by stop(), not by its 60 s deadline
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  EXPECT_EQ(waited.load(), 1);
  for (std::size_t i = 1; i < pending.size(); ++i)
    EXPECT_EQ(pending[i].poll(), RequestStatus::stopped);
  auto after = p.request(t, "k", "v", in(1s));
  EXPECT_EQ(after.poll(), RequestStatus::stopped);
}

TEST(RequestReply, RequestsOfOneKeyAreHandledInOrder) {
  Engine engine(config(2));
  const auto t = engine.add_topic("ordered");
  std::mutex mu;
  std::vector<std::string> seen;
  engine.subscribe("ordered", [&](const EventView& e) {
    {
      std::lock_guard lock(mu);
      seen.emplace_back(e.payload_string());
    }
    (void)engine.reply(e, "ok");
  });
  engine.start();
  auto p = engine.make_producer();
  std::vector<ringflow::ReplyHandle> hs;
  for (int i = 0; i < 200; ++i)
    hs.push_back(p.request(t, "same-key", num(static_cast<std::uint64_t>(i)), in(10s)));
  for (auto& h : hs)
    EXPECT_EQ(h.wait(), RequestStatus::replied);
  ASSERT_EQ(seen.size(), 200U);
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ(seen[static_cast<std::size_t>(i)], num(static_cast<std::uint64_t>(i)));
}

TEST(RequestReply, BadUseGetsAStatusNotAHang) {
  Engine engine(config());
  const auto t = engine.add_topic("svc");
  (void)engine.add_topic("mute");
  engine.subscribe("mute", [](const EventView&) {});
  std::atomic<int> not_request{0};
  std::atomic<int> too_large{0};
  engine.subscribe("svc", [&](const EventView& e) {
    if (engine.reply(e, std::string(engine.config().max_payload_bytes + 1, 'x')) ==
        ReplyStatus::too_large) {
      too_large.fetch_add(1);
    }
    if (!e.is_request() && engine.reply(e, "x") == ReplyStatus::not_a_request) {
      not_request.fetch_add(1);
    }
    if (e.is_request()) (void)engine.reply(e, "fine");
  });
  engine.start();
  ringflow::ProducerOptions two;
  two.max_pending_requests = 2;
  auto p = engine.make_producer(two);
  ASSERT_EQ(p.publish(t, "k", "plain"), ringflow::PublishStatus::ok);
  {
    auto a = p.request(t, "k", "a", in(10s));
    auto b = p.request(t, "k", "b", in(10s));
    auto c = p.request(t, "k", "c", in(10s));
    EXPECT_EQ(c.poll(), RequestStatus::too_many_pending);
    EXPECT_EQ(a.wait(), RequestStatus::replied);
    EXPECT_EQ(b.wait(), RequestStatus::replied);
  }
  // The handles are gone: their slots are free again. A handle dropped before its reply
  // frees its slot once the reply comes (the reply counts as late).
  for (int i = 0; i < 10; ++i) {
    {
      auto h = p.request(t, "k", "again", in(10s));
      EXPECT_NE(h.poll(), RequestStatus::too_many_pending) << i;
    }
    engine.drain();
  }
  auto last = p.request(t, "k", "last", in(10s));
  EXPECT_EQ(last.wait(), RequestStatus::replied);
  EXPECT_EQ(not_request.load(), 1);
  EXPECT_GE(too_large.load(), 1);
  // A dropped request nobody answers holds its slot only until its deadline.
  const auto mute = engine.find_topic("mute");
  ASSERT_TRUE(mute.has_value());
  for (int i = 0; i < 2; ++i)
    (void)p.request(*mute, "k", "unanswered", in(2ms));
  const std::int64_t after_deadline = in(3ms);
  while (ringflow::now_ns() < after_deadline)
    std::this_thread::yield();
  auto reclaimed = p.request(t, "k", "reclaimed", in(10s));
  EXPECT_EQ(reclaimed.wait(), RequestStatus::replied);

  ringflow::ProducerOptions none;
  none.max_pending_requests = 0;
  auto q = engine.make_producer(none);
  EXPECT_EQ(q.request(t, "k", "v", in(1s)).poll(), RequestStatus::too_many_pending);
  ringflow::ProducerOptions huge;
  huge.max_pending_requests = 70000;
  EXPECT_THROW((void)engine.make_producer(huge), std::invalid_argument);
  ringflow::ReplyHandle empty;
  EXPECT_EQ(empty.wait(), RequestStatus::not_accepted);
  EXPECT_EQ(ringflow::Producer().request(t, "k", "v", in(1s)).poll(), RequestStatus::not_accepted);
}

}  // namespace
