#pragma once
// Where each engine thread runs and where each shard's memory lives, decided once from a config
// and a topology before anything starts.
//
//   auto plan = ringflow::plan(cfg, ringflow::Topology::machine());   // throws ConfigError
//   std::cout << plan.table();
//
// Deterministic: the same config and topology give the same plan, field for field.
// Placement rules, in order:
//   1. Explicit cores (shards.cores, graph.cores) are used as given.
//   2. Otherwise shards are spread round-robin over NUMA nodes, alternating packages
//      (node order: 1st node of package 0, 1st of package 1, ..., 2nd of package 0, ...);
//      inside a node the lowest free core is taken. Core 0 is left to the OS and the
//      application's own threads whenever the machine has a core to spare for every role.
//   3. A shard's graph workers take the lowest free cores on the shard's NUMA node, then its
//      package, then anywhere.
//   4. With more roles than cores (only allowed when exclusive_cores = false) the least-loaded
//      core on the wanted node is shared, preferring an unused SMT sibling PU; a note says so.
// Memory node of a shard: the NUMA node of its core when binding applies, else -1.

#include <cstdint>
#include <string>
#include <vector>

#include "ringflow/config.hpp"

namespace ringflow {

class Topology;

struct ThreadPlacement {
  std::string role;         ///< "shard" or "graph"
  std::uint32_t index = 0;  ///< shard index, or worker index within its shard
  int core = -1;            ///< logical core index
  int pu_os_index = -1;     ///< Linux CPU number to pin to
  int numa_node = -1;       ///< logical NUMA node of `core`

  friend bool operator==(const ThreadPlacement&, const ThreadPlacement&) = default;
};

struct Plan {
  std::vector<ThreadPlacement> shards;                      ///< one per shard, by index
  std::vector<std::vector<ThreadPlacement>> graph_workers;  ///< [shard][worker]
  std::vector<int> shard_memory_node;                       ///< -1 = not bound (system default)
  bool pinning = true;                                      ///< false: placements are advisory
  std::vector<std::string> notes;  ///< e.g. "single NUMA node: memory binding is a no-op"

  /// Fixed-width table: role, thread, core, PU, NUMA node, memory node; then the notes.
  [[nodiscard]] std::string table() const;
  /// The PUs of one shard's graph workers in order (what PinnedArena takes).
  [[nodiscard]] std::vector<int> graph_worker_pus(std::size_t shard) const;

  friend bool operator==(const Plan&, const Plan&) = default;
};

/// validate()s `cfg` on `topo` (throws ConfigError with every problem), then places threads.
Plan plan(const EngineConfig& cfg, const Topology& topo);

}  // namespace ringflow
