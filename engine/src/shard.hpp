#pragma once
// A shard worker: one pinned thread that drains its rings (urgent lane first), appends events
// to the partition logs it owns, and runs the pipeline graph on each batch. Internal.

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "ringflow/config.hpp"
#include "ringflow/detail/cache.hpp"
#include "ringflow/detail/producer_state.hpp"
#include "ringflow/engine.hpp"
#include "ringflow/partition_log.hpp"
#include "ringflow/pipeline.hpp"

namespace ringflow::detail {

class PinnedArena;

/// One event moving through the graph: where it is stored, and what stages made of it.
struct WorkItem {
  const RecordHeader* rec;
  const std::byte* payload;
  std::uint32_t payload_len;
  std::uint32_t topic;
  bool live;  ///< false once filtered out or failed in a stage
};

/// The unit the graph passes around: one shard batch (never a single event).
struct Batch {
  WorkItem* items = nullptr;
  std::size_t size = 0;
  std::byte* scratch = nullptr;  ///< size * scratch_stride bytes for map stages
  std::size_t scratch_stride = 0;
};

/// A statistic with a single writer at a time (hand-overs are ordered by TBB or the batch
/// protocol): relaxed load + store, no locked instruction.
struct Counter {
  std::atomic<std::uint64_t> v{0};
  void add(std::uint64_t n) noexcept {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

struct ShardCounters {
  Counter appended, expired, processed, filtered, stage_failures, batches;
};
struct SubscriptionCounters {
  alignas(kCacheLine) Counter deliveries;
  Counter ok, failures;
};

struct Subscription {
  std::string pattern;
  Handler handler;
  std::string group;
  std::vector<std::uint8_t> matches;  ///< by topic id: 1 when the pattern matches
  std::uint32_t group_size = 1;       ///< members of its consumer group (1 = no group)
  std::uint32_t member = 0;  ///< its index in the group: gets partitions p % size == member
};

/// What a shard needs from its engine (owned by Engine::Impl, outlives every shard).
struct ShardEnv {
  const EngineConfig* cfg;
  PublishContext* ctx;
  const Pipeline* pipeline;
  std::vector<Subscription>* subscriptions;
  std::unique_ptr<ProducerState>* producers;  ///< max_producers slots
  std::atomic<std::uint32_t>* producer_count;
  std::vector<std::unique_ptr<PartitionLog>>* logs;  ///< by partition
};

class Shard {
 public:
  Shard(ShardEnv env, std::uint32_t id, ThreadPlacement placement,
        std::vector<int> graph_worker_pus, bool pin);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  void start();
  /// Asks the worker to exit once its rings are empty; join() waits for it.
  void request_exit() noexcept;
  void join();

  [[nodiscard]] const ShardCounters& counters() const noexcept { return counters_; }
  [[nodiscard]] const std::vector<std::unique_ptr<SubscriptionCounters>>& subscription_counters()
      const noexcept {
    return sub_counters_;
  }
  [[nodiscard]] const std::string& pin_note() const noexcept { return pin_note_; }

 private:
  void run();
  void build_graph();
  std::size_t poll_once();
  std::size_t drain_ring(ProducerState& p, std::uint32_t lane);
  void run_pipeline();
  void run_stage(const Pipeline::Stage& stage, Batch& b);
  void deliver(std::size_t sub, Batch& b);
  [[nodiscard]] bool rings_empty() const noexcept;

  ShardEnv env_;
  std::uint32_t id_;
  ThreadPlacement placement_;
  std::vector<int> graph_pus_;
  bool pin_;
  std::string pin_note_;
  std::thread thread_;

  // Batch buffers, allocated once.
  std::vector<WorkItem> items_;
  std::vector<std::byte> scratch_;
  Batch batch_;

  std::unique_ptr<PinnedArena> arena_;
  std::unique_ptr<tbb::flow::graph> graph_;
  std::vector<std::unique_ptr<tbb::flow::graph_node>> nodes_;
  tbb::flow::receiver<Batch*>* head_ = nullptr;

  ShardCounters counters_;
  std::vector<std::unique_ptr<SubscriptionCounters>> sub_counters_;
  std::int64_t next_retention_check_ns_ = 0;

  alignas(kCacheLine) std::atomic<bool> exit_{false};
};

}  // namespace ringflow::detail
