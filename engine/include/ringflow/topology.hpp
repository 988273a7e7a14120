#pragma once
// The machine's processing units as ringflow places threads on them.
//
// A Topology is a plain value: packages, NUMA nodes, cores and PUs (hardware threads) with the
// indexes the affinity config uses. It is discovered once from the running machine
// (Topology::machine(), hwloc when built with RINGFLOW_WITH_HWLOC, else sched_getaffinity and
// sysconf), or built from an hwloc synthetic description / XML export for planning on a machine
// you do not have ("pack:2 numa:1 core:8 pu:2").
//
// Index conventions (the ones `ringflow-topo` prints and configs use):
//   - core index: 0..cores()-1, the hwloc logical index (depth-first order: package 0's cores
//     first). Not the Linux CPU number.
//   - PU os index: the Linux CPU number (what sched_getcpu() and taskset use).
//   - NUMA node index: 0..numa_nodes()-1, logical; os_index is the kernel's node number.
//
// Thread safety: a Topology is immutable after construction; machine() discovers once
// (thread-safe static init). Nothing here is meant for the hot path.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace ringflow {

struct PuInfo {
  int os_index = -1;  ///< Linux CPU number
  int core = -1;      ///< index of the core it belongs to
};

struct CoreInfo {
  int index = -1;                  ///< logical core index (what configs name)
  int os_index = -1;               ///< kernel core id, -1 when unknown
  int numa_node = 0;               ///< logical NUMA node index
  int package = 0;                 ///< logical package (socket) index
  std::vector<int> pu_os_indexes;  ///< its hardware threads; more than one = SMT siblings
};

struct NumaNodeInfo {
  int index = -1;                  ///< logical NUMA node index
  int os_index = -1;               ///< kernel node number (what mbind(2) takes)
  std::uint64_t memory_bytes = 0;  ///< local memory; 0 when unknown
  std::vector<int> cores;          ///< logical core indexes local to this node
};

struct PackageInfo {
  int index = -1;
  std::vector<int> cores;       ///< logical core indexes
  std::vector<int> numa_nodes;  ///< logical NUMA node indexes whose cores are in this package
};

struct CacheSizes {
  std::uint64_t l1d_bytes = 0;  ///< per core; 0 when unknown
  std::uint64_t l2_bytes = 0;
  std::uint64_t l3_bytes = 0;  ///< per L3 instance (usually per package)
  std::uint32_t line_bytes = 64;
};

class Topology {
 public:
  /// The running machine, discovered on first call (thread-safe). Never throws: when
  /// discovery fails it falls back to a single-node view of the CPUs this process may use.
  static const Topology& machine();
  /// From an hwloc synthetic description, e.g. "pack:2 numa:1 core:4 pu:2". Throws
  /// std::invalid_argument naming the description when it does not parse.
  static Topology from_synthetic(std::string_view hwloc_synthetic_desc);
  /// From an XML file written by `lstopo-no-graphics --of xml`. Throws std::invalid_argument.
  static Topology from_xml(const std::filesystem::path& file);

  [[nodiscard]] const std::vector<PackageInfo>& packages() const noexcept { return packages_; }
  [[nodiscard]] const std::vector<NumaNodeInfo>& numa_nodes() const noexcept { return nodes_; }
  [[nodiscard]] const std::vector<CoreInfo>& cores() const noexcept { return cores_; }
  [[nodiscard]] const std::vector<PuInfo>& pus() const noexcept { return pus_; }
  [[nodiscard]] const CacheSizes& caches() const noexcept { return caches_; }

  [[nodiscard]] bool has_core(int core_index) const noexcept {
    return core_index >= 0 && static_cast<std::size_t>(core_index) < cores_.size();
  }
  /// Logical core index of a PU (Linux CPU number), or -1.
  [[nodiscard]] int core_of_pu(int pu_os_index) const noexcept;
  /// True when more than one PU shares a core anywhere on the machine.
  [[nodiscard]] bool has_smt() const noexcept;

  /// True for from_synthetic()/from_xml(): good for planning, not for pinning or binding.
  [[nodiscard]] bool is_synthetic() const noexcept { return synthetic_; }
  /// "this machine (hwloc)", "synthetic 'pack:2 ...'", "xml 'file.xml'", ...
  [[nodiscard]] const std::string& description() const noexcept { return description_; }
  /// Compact text tree: Package > NUMA node > Core: PUs, with memory and cache sizes.
  [[nodiscard]] std::string tree() const;

  /// Built by hand (tests, or the no-hwloc fallback): `cores_per_node` cores per NUMA node,
  /// `pus_per_core` PUs per core, nodes split evenly over `packages`; PU os indexes dense.
  static Topology uniform(int packages, int nodes_per_package, int cores_per_node, int pus_per_core,
                          std::string description = "uniform");

 private:
  friend struct TopologyBuilder;
  Topology() = default;

  std::vector<PackageInfo> packages_;
  std::vector<NumaNodeInfo> nodes_;
  std::vector<CoreInfo> cores_;
  std::vector<PuInfo> pus_;
  CacheSizes caches_;
  bool synthetic_ = false;
  std::string description_;
};

/// Why pinning did or did not happen. Converts to true on success.
struct PinResult {
  bool ok = false;
  std::string reason;  ///< empty when ok; else e.g. "PU 7 is not in this process's cpuset"
  explicit operator bool() const noexcept { return ok; }
};

/// Pins the calling thread to one PU (Linux CPU number) of the running machine.
PinResult pin_current_thread_to_pu(int pu_os_index);
/// Pins the calling thread to all PUs of a core (logical core index) of the running machine.
PinResult pin_current_thread_to_core(int core_index);
/// The CPU the calling thread runs on now (sched_getcpu()), -1 when unknown.
int current_cpu() noexcept;

}  // namespace ringflow
