#pragma once
// Shared by the command-line tools: the topology to plan or check on.

#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "ringflow/topology.hpp"

namespace ringflow::tools {

/// Loads the topology named by --synthetic or --xml (at most one is set) into `out`; leaves it
/// empty when neither is (meaning: this machine). On a bad description prints "<tool>: reason"
/// to stderr and returns false.
inline bool load_topology(const char* tool, const std::string& synthetic, const std::string& xml,
                          std::optional<Topology>& out) {
  try {
    if (!synthetic.empty()) out = Topology::from_synthetic(synthetic);
    if (!xml.empty()) out = Topology::from_xml(xml);
  } catch (const std::exception& e) {
    std::cerr << tool << ": " << e.what() << "\n";
    return false;
  }
  return true;
}

}  // namespace ringflow::tools
