#pragma once
// Pipeline: the user's stages, run on every event after it is appended to its partition log
// and before subscribers see it. Built once (before Engine::start()); each shard turns it into
// its own oneTBB flow::graph, run in the shard's task arena.
//
//   engine.pipeline()
//       .filter("valid", [](const EventView& e) { return e.payload().size() == 64; })
//       .map("enrich", [](Event& e) { e.mutable_payload()[0] = std::byte{1}; })
//       .route("by_amount", [&](const EventView& e) { return amount(e) > 100 ? big : small; });
//
// Stage kinds:
//   filter(name, bool(const EventView&))    false drops the event (counted as filtered)
//   map(name, void(Event&))                 rewrites the payload (copy-on-write) or the topic
//   route(name, TopicId(const EventView&))  re-targets the event at a topic; subscriptions of
//                                           that topic receive it (route by predicate/topic)
// Fan-out and sinks are subscriptions: every subscription whose pattern matches the event's
// (final) topic receives it; with graph workers they run in parallel, one serial node each.
//
// Events move through the graph in batches (one message per shard batch, not per event): a
// TBB message costs 100-700 ns, which a batch of 256 turns into ~1-3 ns per event. Within a
// shard, stages and each subscription see a partition's events in offset order.
//
// A stage that throws does not kill the worker: the event is dropped from the rest of the
// pipeline and counted as a stage failure (Engine::stats()).

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ringflow/event.hpp"

namespace ringflow {

class Pipeline {
 public:
  enum class Kind : std::uint8_t { filter, map, route };
  struct Stage {
    Kind kind;
    std::string name;
    std::function<bool(const EventView&)> filter;
    std::function<void(Event&)> map;
    std::function<TopicId(const EventView&)> route;
  };

  Pipeline& filter(std::string name, std::function<bool(const EventView&)> f) {
    return add({Kind::filter, std::move(name), std::move(f), {}, {}});
  }
  Pipeline& map(std::string name, std::function<void(Event&)> f) {
    return add({Kind::map, std::move(name), {}, std::move(f), {}});
  }
  Pipeline& route(std::string name, std::function<TopicId(const EventView&)> f) {
    return add({Kind::route, std::move(name), {}, {}, std::move(f)});
  }

  [[nodiscard]] const std::vector<Stage>& stages() const noexcept { return stages_; }
  [[nodiscard]] bool empty() const noexcept { return stages_.empty(); }

 private:
  Pipeline& add(Stage s);
  std::vector<Stage> stages_;
  bool frozen_ = false;
  friend class Engine;
};

}  // namespace ringflow
