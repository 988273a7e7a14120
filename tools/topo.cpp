// ringflow-topo: the machine's topology as a compact tree and, given a config, where every
// engine thread and its memory would go.
//
//   ringflow-topo                                  this machine
//   ringflow-topo --config configs/default.toml    + the placement plan
//   ringflow-topo --synthetic "pack:2 numa:1 core:8 pu:2" --config configs/example-2socket.toml
//   ringflow-topo --xml server.xml --config my.toml     (XML from `lstopo-no-graphics --of xml`)

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "ringflow/config.hpp"
#include "ringflow/numa_memory.hpp"
#include "ringflow/plan.hpp"
#include "ringflow/topology.hpp"
#include "ringflow/version.hpp"
#include "topology_choice.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Print the machine topology and, given a config, the thread placement plan"};
  app.set_version_flag("--version", "ringflow-topo " + std::string(ringflow::version()));
  std::string config_file;
  std::string synthetic;
  std::string xml;
  app.add_option("--config,-c", config_file, "engine config (TOML) to plan");
  auto* syn =
      app.add_option("--synthetic", synthetic,
                     "plan on an hwloc synthetic topology, e.g. \"pack:2 numa:1 core:4 pu:2\"");
  app.add_option("--xml", xml, "plan on an hwloc XML topology (lstopo-no-graphics --of xml)")
      ->check(CLI::ExistingFile)
      ->excludes(syn);
  CLI11_PARSE(app, argc, argv);

  std::optional<ringflow::Topology> other;
  if (!ringflow::tools::load_topology("ringflow-topo", synthetic, xml, other)) return 2;
  const ringflow::Topology& topo = other ? *other : ringflow::Topology::machine();
  std::cout << topo.tree();
  if (config_file.empty()) return 0;

  try {
    const ringflow::EngineConfig cfg = ringflow::load_config(config_file);
    const ringflow::Plan plan = ringflow::plan(cfg, topo);
    std::cout << "\nPlacement for " << config_file << ":\n" << plan.table();
    if (!topo.is_synthetic()) {
      for (std::size_t s = 0; s < plan.shard_memory_node.size(); ++s) {
        std::cout << "memory: shard " << s << ": "
                  << ringflow::memory_backend(plan.shard_memory_node[s], cfg.allocator) << "\n";
      }
      for (const auto& n : ringflow::memory_notes())
        std::cout << "note: " << n << "\n";
    }
  } catch (const ringflow::ConfigError& e) {
    std::cerr << "ringflow-topo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
