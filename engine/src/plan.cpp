#include "ringflow/plan.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

#include "ringflow/topology.hpp"

namespace ringflow {

namespace {

// Node order that spreads consecutive shards over packages first, then over a package's nodes.
std::vector<int> spread_node_order(const Topology& topo) {
  std::vector<int> order;
  std::size_t rank = 0;
  bool any = true;
  while (any) {
    any = false;
    for (const auto& pkg : topo.packages()) {
      if (rank < pkg.numa_nodes.size()) {
        any = true;
        const int n = pkg.numa_nodes[rank];
        if (!topo.numa_nodes()[static_cast<std::size_t>(n)].cores.empty()) order.push_back(n);
      }
    }
    ++rank;
  }
  if (order.empty()) order.push_back(0);
  return order;
}

class Placer {
 public:
  Placer(const Topology& topo, std::size_t roles) : topo_(topo), load_(topo.cores().size(), 0) {
    // Leave core 0 to the OS and the application when every role still gets its own core.
    skip_core0_ = topo.cores().size() > roles;
    holders_.resize(topo.cores().size());
  }

  // Lowest-ranked core: stay in the package (free on the node, free in the package, shared on
  // the node, shared in the package), then the same order elsewhere; among shared cores the
  // least loaded, preferring one that does not run a shard.
  int choose(int node, int package) const {
    int best = -1;
    std::tuple<int, int, int, int, int, int> best_key{};
    for (const auto& c : topo_.cores()) {
      if (skip_core0_ && c.index == 0) continue;
      const auto i = static_cast<std::size_t>(c.index);
      const int load = load_[i];
      const std::tuple<int, int, int, int, int, int> key{
          c.package == package ? 0 : 1, load > 0 ? 1 : 0, c.numa_node == node ? 0 : 1, load,
          has_shard_[i] ? 1 : 0,        c.index};
      if (best < 0 || key < best_key) {
        best = c.index;
        best_key = key;
      }
    }
    return best;
  }

  ThreadPlacement place(std::string role, std::uint32_t index, int core, std::string label) {
    const auto& info = topo_.cores()[static_cast<std::size_t>(core)];
    int& load = load_[static_cast<std::size_t>(core)];
    ThreadPlacement p;
    p.role = std::move(role);
    p.index = index;
    p.core = core;
    // A second role on a core takes its SMT sibling when it has one.
    p.pu_os_index =
        info.pu_os_indexes.empty()
            ? -1
            : info.pu_os_indexes[static_cast<std::size_t>(load) % info.pu_os_indexes.size()];
    p.numa_node = info.numa_node;
    ++load;
    if (p.role == "shard") has_shard_[static_cast<std::size_t>(core)] = true;
    holders_[static_cast<std::size_t>(core)].push_back(std::move(label));
    return p;
  }

  [[nodiscard]] const std::vector<std::vector<std::string>>& holders() const { return holders_; }

 private:
  const Topology& topo_;
  std::vector<int> load_;
  std::vector<bool> has_shard_ = std::vector<bool>(topo_.cores().size(), false);
  std::vector<std::vector<std::string>> holders_;
  bool skip_core0_ = false;
};

}  // namespace

Plan plan(const EngineConfig& cfg, const Topology& topo) {
  validate(cfg, topo);

  Plan out;
  out.pinning = cfg.pin_threads;
  const std::uint32_t n_shards = cfg.shards;
  const std::uint32_t n_workers = cfg.graph_workers_per_shard;
  const std::size_t roles = std::size_t{n_shards} * (1 + std::size_t{n_workers});
  Placer placer(topo, roles);
  const std::vector<int> node_order = spread_node_order(topo);

  out.shards.reserve(n_shards);
  for (std::uint32_t s = 0; s < n_shards; ++s) {
    int core = -1;
    if (!cfg.shard_cores.empty()) {
      core = cfg.shard_cores[s];
    } else {
      const int node = node_order[s % node_order.size()];
      const auto& cores = topo.numa_nodes()[static_cast<std::size_t>(node)].cores;
      const int pkg = cores.empty() ? 0 : topo.cores()[static_cast<std::size_t>(cores[0])].package;
      core = placer.choose(node, pkg);
    }
    out.shards.push_back(placer.place("shard", s, core, "shard " + std::to_string(s)));
  }

  out.graph_workers.resize(n_shards);
  for (std::uint32_t s = 0; s < n_shards; ++s) {
    const auto& shard = out.shards[s];
    const int pkg = topo.cores()[static_cast<std::size_t>(shard.core)].package;
    for (std::uint32_t w = 0; w < n_workers; ++w) {
      const int core = !cfg.graph_cores.empty() ? cfg.graph_cores[std::size_t{s} * n_workers + w]
                                                : placer.choose(shard.numa_node, pkg);
      out.graph_workers[s].push_back(
          placer.place("graph", w, core, "graph " + std::to_string(s) + "." + std::to_string(w)));
    }
  }

  // Memory nodes.
  const bool single_node = topo.numa_nodes().size() <= 1;
  const bool bind = cfg.numa == NumaBinding::on ||
                    (cfg.numa == NumaBinding::automatic && !single_node && cfg.pin_threads);
  for (const auto& s : out.shards)
    out.shard_memory_node.push_back(bind ? s.numa_node : -1);

  // Notes, in a fixed order.
  if (!cfg.pin_threads) {
    out.notes.emplace_back(
        "affinity off (affinity.pin_threads = false): threads are not pinned; the placement "
        "below is advisory");
  }
  if (topo.is_synthetic()) {
    out.notes.push_back("planned on " + topo.description() +
                        ": pinning and memory binding apply only on the real machine");
  }
  if (cfg.numa == NumaBinding::off) {
    out.notes.emplace_back("memory.numa = off: shard memory is not bound to a NUMA node");
  } else if (single_node) {
    out.notes.emplace_back("single NUMA node: memory binding is a no-op");
  } else if (!bind) {
    out.notes.emplace_back(
        "memory.numa = auto with affinity off: shard memory is not bound (threads may run "
        "on any node)");
  }
  for (std::size_t c = 0; c < placer.holders().size(); ++c) {
    const auto& h = placer.holders()[c];
    if (h.size() < 2) continue;
    std::string who;
    for (const auto& r : h)
      who += (who.empty() ? "" : ", ") + r;
    out.notes.push_back("core " + std::to_string(c) + " shared by " + who + " (" +
                        std::to_string(roles) + " threads on " +
                        std::to_string(topo.cores().size()) + " cores; exclusive_cores = false)");
  }
  if (n_workers == 0) {
    out.notes.emplace_back(
        "graph.workers_per_shard = 0: each shard runs its flow graph on its own thread");
  }
  return out;
}

std::vector<int> Plan::graph_worker_pus(std::size_t shard) const {
  std::vector<int> pus;
  if (shard >= graph_workers.size()) return pus;
  for (const auto& w : graph_workers[shard])
    pus.push_back(w.pu_os_index);
  return pus;
}

std::string Plan::table() const {
  std::ostringstream o;
  char line[128];
  std::snprintf(line, sizeof line, "%-6s %-8s %5s %5s %5s %9s\n", "role", "thread", "core", "PU",
                "NUMA", "mem node");
  o << line;
  auto row = [&](const ThreadPlacement& p, const std::string& thread, int mem) {
    const std::string mem_text = mem < 0 ? "-" : std::to_string(mem);
    std::snprintf(line, sizeof line, "%-6s %-8s %5d %5d %5d %9s\n", p.role.c_str(), thread.c_str(),
                  p.core, p.pu_os_index, p.numa_node, mem_text.c_str());
    o << line;
  };
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const int mem = s < shard_memory_node.size() ? shard_memory_node[s] : -1;
    row(shards[s], std::to_string(s), mem);
    if (s < graph_workers.size()) {
      for (const auto& w : graph_workers[s]) {
        row(w, std::to_string(s) + "." + std::to_string(w.index), mem);
      }
    }
  }
  o << "pinning: " << (pinning ? "on" : "off") << "\n";
  for (const auto& n : notes)
    o << "note: " << n << "\n";
  return o.str();
}

}  // namespace ringflow
