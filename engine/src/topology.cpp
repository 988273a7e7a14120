#include "ringflow/topology.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "topo_hwloc.hpp"

namespace ringflow {

// Fills a Topology's private vectors; the one place that knows how they relate.
struct TopologyBuilder {
  static Topology empty() { return Topology{}; }

  // Derives packages_/nodes_ core lists and pus_ from cores_ (cores_ must be complete).
  static void finish(Topology& t) {
    std::sort(t.cores_.begin(), t.cores_.end(),
              [](const CoreInfo& a, const CoreInfo& b) { return a.index < b.index; });
    int max_pkg = 0;
    int max_node = static_cast<int>(t.nodes_.size()) - 1;
    for (const auto& c : t.cores_) {
      max_pkg = std::max(max_pkg, c.package);
      max_node = std::max(max_node, c.numa_node);
    }
    t.packages_.assign(static_cast<std::size_t>(max_pkg) + 1, PackageInfo{});
    for (std::size_t i = 0; i < t.packages_.size(); ++i)
      t.packages_[i].index = static_cast<int>(i);
    if (t.nodes_.size() < static_cast<std::size_t>(max_node) + 1) {
      t.nodes_.resize(static_cast<std::size_t>(max_node) + 1);
    }
    for (std::size_t i = 0; i < t.nodes_.size(); ++i) {
      t.nodes_[i].index = static_cast<int>(i);
      if (t.nodes_[i].os_index < 0) t.nodes_[i].os_index = static_cast<int>(i);
      t.nodes_[i].cores.clear();
    }
    t.pus_.clear();
    for (const auto& c : t.cores_) {
      auto& pkg = t.packages_[static_cast<std::size_t>(c.package)];
      pkg.cores.push_back(c.index);
      if (std::find(pkg.numa_nodes.begin(), pkg.numa_nodes.end(), c.numa_node) ==
          pkg.numa_nodes.end()) {
        pkg.numa_nodes.push_back(c.numa_node);
      }
      t.nodes_[static_cast<std::size_t>(c.numa_node)].cores.push_back(c.index);
      for (int pu : c.pu_os_indexes)
        t.pus_.push_back(PuInfo{pu, c.index});
    }
    std::sort(t.pus_.begin(), t.pus_.end(),
              [](const PuInfo& a, const PuInfo& b) { return a.os_index < b.os_index; });
  }

  static std::vector<CoreInfo>& cores(Topology& t) { return t.cores_; }
  static std::vector<NumaNodeInfo>& nodes(Topology& t) { return t.nodes_; }
  static CacheSizes& caches(Topology& t) { return t.caches_; }
  static void set_origin(Topology& t, bool synthetic, std::string description) {
    t.synthetic_ = synthetic;
    t.description_ = std::move(description);
  }
};

namespace {

// Caches from sysconf; glibc reads them from CPUID/sysfs. 0 when unknown.
CacheSizes sysconf_caches() {
  CacheSizes c;
  auto get = [](int name) -> std::uint64_t {
    const long v = ::sysconf(name);
    return v > 0 ? static_cast<std::uint64_t>(v) : 0;
  };
#if defined(_SC_LEVEL1_DCACHE_SIZE)
  c.l1d_bytes = get(_SC_LEVEL1_DCACHE_SIZE);
  c.l2_bytes = get(_SC_LEVEL2_CACHE_SIZE);
  c.l3_bytes = get(_SC_LEVEL3_CACHE_SIZE);
  if (const auto line = get(_SC_LEVEL1_DCACHE_LINESIZE); line != 0) {
    c.line_bytes = static_cast<std::uint32_t>(line);
  }
#endif
  return c;
}

// Without hwloc (or when it fails): one package, one node, one core per allowed CPU.
Topology fallback_machine() {
  Topology t = TopologyBuilder::empty();
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  if (cpus.empty()) {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    for (int cpu = 0; cpu < std::max(1L, n); ++cpu)
      cpus.push_back(cpu);
  }
  auto& cores = TopologyBuilder::cores(t);
  for (std::size_t i = 0; i < cpus.size(); ++i) {
    cores.push_back(CoreInfo{static_cast<int>(i), -1, 0, 0, {cpus[i]}});
  }
  auto& nodes = TopologyBuilder::nodes(t);
  nodes.resize(1);
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) {
    nodes[0].memory_bytes = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
  }
  TopologyBuilder::caches(t) = sysconf_caches();
  TopologyBuilder::finish(t);
  TopologyBuilder::set_origin(t, false, "this machine (sched_getaffinity; no hwloc)");
  return t;
}

PinResult pin_with_pthread(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) {
    if (cpu < 0 || cpu >= CPU_SETSIZE)
      return {false, "CPU " + std::to_string(cpu) + " out of range"};
    CPU_SET(cpu, &set);
  }
  const int rc = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
  if (rc != 0) return {false, std::string("pthread_setaffinity_np: ") + std::strerror(rc)};
  return {true, {}};
}

std::string bytes_text(std::uint64_t b) {
  constexpr std::uint64_t kKi = 1024;
  std::ostringstream o;
  if (b >= kKi * kKi * kKi && b % (kKi * kKi * kKi / 10) == 0) {
    o << static_cast<double>(b) / static_cast<double>(kKi * kKi * kKi) << " GiB";
  } else if (b >= kKi * kKi * kKi) {
    o << b / (kKi * kKi * kKi) << " GiB";
  } else if (b >= kKi * kKi) {
    o << b / (kKi * kKi) << " MiB";
  } else if (b >= kKi) {
    o << b / kKi << " KiB";
  } else {
    o << b << " B";
  }
  return o.str();
}

#if defined(RINGFLOW_HAVE_HWLOC)

struct HwlocTopology {
  hwloc_topology_t topo = nullptr;
  HwlocTopology() = default;
  HwlocTopology(const HwlocTopology&) = delete;
  HwlocTopology& operator=(const HwlocTopology&) = delete;
  ~HwlocTopology() {
    if (topo != nullptr) hwloc_topology_destroy(topo);
  }
};

std::uint64_t first_cache_size(hwloc_topology_t topo, hwloc_obj_type_t type) {
  const hwloc_obj_t obj = hwloc_get_obj_by_type(topo, type, 0);
  return obj != nullptr && obj->attr != nullptr ? obj->attr->cache.size : 0;
}

// Reads the loaded hwloc topology into a Topology value.
Topology extract(hwloc_topology_t topo, bool synthetic, std::string description) {
  Topology t = TopologyBuilder::empty();
  const int n_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  auto& nodes = TopologyBuilder::nodes(t);
  std::vector<hwloc_obj_t> node_objs;
  for (int i = 0; i < n_nodes; ++i) {
    const hwloc_obj_t n = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
    if (n == nullptr) continue;
    node_objs.push_back(n);
    NumaNodeInfo info;
    info.index = static_cast<int>(nodes.size());
    info.os_index = static_cast<int>(n->os_index);
    info.memory_bytes = n->attr != nullptr ? n->attr->numanode.local_memory : 0;
    nodes.push_back(info);
  }

  // Cores; a machine (or VM) that reports no Core objects gets one core per PU.
  hwloc_obj_type_t core_type = HWLOC_OBJ_CORE;
  if (hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) <= 0) core_type = HWLOC_OBJ_PU;
  const int n_cores = hwloc_get_nbobjs_by_type(topo, core_type);
  auto& cores = TopologyBuilder::cores(t);
  for (int i = 0; i < n_cores; ++i) {
    const hwloc_obj_t c = hwloc_get_obj_by_type(topo, core_type, static_cast<unsigned>(i));
    if (c == nullptr || c->cpuset == nullptr || hwloc_bitmap_iszero(c->cpuset)) continue;
    CoreInfo info;
    info.index = static_cast<int>(cores.size());
    info.os_index = c->os_index == HWLOC_UNKNOWN_INDEX ? -1 : static_cast<int>(c->os_index);
    const hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, c);
    info.package = pkg != nullptr ? static_cast<int>(pkg->logical_index) : 0;
    info.numa_node = 0;
    for (std::size_t n = 0; n < node_objs.size(); ++n) {
      if (node_objs[n]->cpuset != nullptr &&
          hwloc_bitmap_isincluded(c->cpuset, node_objs[n]->cpuset)) {
        info.numa_node = static_cast<int>(n);
        break;
      }
    }
    hwloc_obj_t pu = nullptr;
    while ((pu = hwloc_get_next_obj_inside_cpuset_by_type(topo, c->cpuset, HWLOC_OBJ_PU, pu)) !=
           nullptr) {
      info.pu_os_indexes.push_back(static_cast<int>(pu->os_index));
    }
    cores.push_back(std::move(info));
  }
  if (nodes.empty()) nodes.push_back(NumaNodeInfo{0, 0, 0, {}});

  auto& caches = TopologyBuilder::caches(t);
  caches.l1d_bytes = first_cache_size(topo, HWLOC_OBJ_L1CACHE);
  caches.l2_bytes = first_cache_size(topo, HWLOC_OBJ_L2CACHE);
  caches.l3_bytes = first_cache_size(topo, HWLOC_OBJ_L3CACHE);
  if (const hwloc_obj_t l1 = hwloc_get_obj_by_type(topo, HWLOC_OBJ_L1CACHE, 0);
      l1 != nullptr && l1->attr != nullptr && l1->attr->cache.linesize != 0) {
    caches.line_bytes = l1->attr->cache.linesize;
  }
  if (!synthetic && caches.l1d_bytes == 0) caches = sysconf_caches();
  TopologyBuilder::finish(t);
  TopologyBuilder::set_origin(t, synthetic, std::move(description));
  return t;
}

// The machine's hwloc topology lives for the whole process: pinning and memory binding use it.
struct MachineHwloc {
  hwloc_topology_t topo = nullptr;
  MachineHwloc() {
    hwloc_topology_t t = nullptr;
    if (hwloc_topology_init(&t) != 0) return;
    if (hwloc_topology_load(t) != 0) {
      hwloc_topology_destroy(t);
      return;
    }
    topo = t;
  }
  MachineHwloc(const MachineHwloc&) = delete;
  MachineHwloc& operator=(const MachineHwloc&) = delete;
  ~MachineHwloc() {
    if (topo != nullptr) hwloc_topology_destroy(topo);
  }
};

const MachineHwloc& machine_hwloc_holder() {
  static const MachineHwloc holder;  // thread-safe init (C++11 magic statics)
  return holder;
}

PinResult pin_to_cpuset(hwloc_const_cpuset_t set, const std::string& what) {
  const hwloc_topology_t topo = detail::machine_hwloc();
  if (topo == nullptr) return {false, "hwloc topology unavailable"};
  if (!hwloc_bitmap_isincluded(set, hwloc_topology_get_allowed_cpuset(topo))) {
    return {false, what + " is not in this process's allowed cpuset"};
  }
  if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_THREAD) != 0) {
    return {false, "hwloc_set_cpubind(" + what + "): " + std::strerror(errno)};
  }
  return {true, {}};
}

#endif  // RINGFLOW_HAVE_HWLOC

}  // namespace

#if defined(RINGFLOW_HAVE_HWLOC)
hwloc_topology_t detail::machine_hwloc() noexcept {
  return machine_hwloc_holder().topo;
}
#endif

const Topology& Topology::machine() {
  static const Topology machine_topology = []() {
#if defined(RINGFLOW_HAVE_HWLOC)
    if (const hwloc_topology_t topo = detail::machine_hwloc(); topo != nullptr) {
      Topology t = extract(topo, false, "this machine (hwloc)");
      if (!t.cores().empty()) return t;
    }
#endif
    return fallback_machine();
  }();
  return machine_topology;
}

Topology Topology::from_synthetic(std::string_view desc) {
#if defined(RINGFLOW_HAVE_HWLOC)
  HwlocTopology h;
  const std::string text(desc);
  if (hwloc_topology_init(&h.topo) != 0) throw std::runtime_error("hwloc_topology_init failed");
  if (hwloc_topology_set_synthetic(h.topo, text.c_str()) != 0 || hwloc_topology_load(h.topo) != 0) {
    throw std::invalid_argument("invalid hwloc synthetic topology '" + text +
                                "' (expected e.g. \"pack:2 numa:1 core:4 pu:2\")");
  }
  return extract(h.topo, true, "synthetic '" + text + "'");
#else
  // Minimal parser for "pack:N [numa:N] core:N [pu:N]" so planning tests run without hwloc.
  std::map<std::string, int> counts{{"pack", 1}, {"numa", 1}, {"core", 1}, {"pu", 1}};
  std::istringstream in{std::string(desc)};
  std::string tok;
  while (in >> tok) {
    const auto colon = tok.find(':');
    std::string type = tok.substr(0, colon);
    if (type == "package") type = "pack";
    if (type == "node") type = "numa";
    int n = 0;
    try {
      n = colon == std::string::npos ? 0 : std::stoi(tok.substr(colon + 1));
    } catch (const std::exception&) {
      n = 0;
    }
    if (!counts.contains(type) || n <= 0) {
      throw std::invalid_argument("invalid synthetic topology '" + std::string(desc) +
                                  "' (without hwloc only pack/numa/core/pu levels are understood)");
    }
    counts[type] = n;
  }
  Topology t = uniform(counts["pack"], counts["numa"], counts["core"], counts["pu"],
                       "synthetic '" + std::string(desc) + "'");
  return t;
#endif
}

Topology Topology::from_xml(const std::filesystem::path& file) {
#if defined(RINGFLOW_HAVE_HWLOC)
  HwlocTopology h;
  if (hwloc_topology_init(&h.topo) != 0) throw std::runtime_error("hwloc_topology_init failed");
  if (hwloc_topology_set_xml(h.topo, file.c_str()) != 0 || hwloc_topology_load(h.topo) != 0) {
    throw std::invalid_argument("cannot load hwloc XML topology '" + file.string() +
                                "' (write one with `lstopo-no-graphics --of xml FILE`)");
  }
  return extract(h.topo, true, "xml '" + file.string() + "'");
#else
  throw std::invalid_argument("cannot load XML topology '" + file.string() +
                              "': ringflow was built without hwloc (RINGFLOW_WITH_HWLOC=OFF)");
#endif
}

Topology Topology::uniform(int packages, int nodes_per_package, int cores_per_node,
                           int pus_per_core, std::string description) {
  if (packages < 1 || nodes_per_package < 1 || cores_per_node < 1 || pus_per_core < 1) {
    throw std::invalid_argument("Topology::uniform: every count must be >= 1");
  }
  Topology t;
  const int n_nodes = packages * nodes_per_package;
  const int n_cores = n_nodes * cores_per_node;
  t.nodes_.resize(static_cast<std::size_t>(n_nodes));
  for (int c = 0; c < n_cores; ++c) {
    CoreInfo info;
    info.index = c;
    info.os_index = c;
    info.numa_node = c / cores_per_node;
    info.package = info.numa_node / nodes_per_package;
    // Linux numbers the first PU of every core first, SMT siblings after (0..n-1, n..2n-1).
    for (int p = 0; p < pus_per_core; ++p)
      info.pu_os_indexes.push_back(c + p * n_cores);
    t.cores_.push_back(std::move(info));
  }
  TopologyBuilder::finish(t);
  t.synthetic_ = true;
  t.description_ = std::move(description);
  return t;
}

int Topology::core_of_pu(int pu_os_index) const noexcept {
  for (const auto& pu : pus_) {
    if (pu.os_index == pu_os_index) return pu.core;
  }
  return -1;
}

bool Topology::has_smt() const noexcept {
  return std::any_of(cores_.begin(), cores_.end(),
                     [](const CoreInfo& c) { return c.pu_os_indexes.size() > 1; });
}

std::string Topology::tree() const {
  std::ostringstream o;
  o << "Machine: " << description_ << "\n  " << packages_.size() << " package(s), " << nodes_.size()
    << " NUMA node(s), " << cores_.size() << " core(s), " << pus_.size() << " PU(s)"
    << (has_smt() ? " (SMT)" : "") << "; caches: L1d "
    << (caches_.l1d_bytes != 0 ? bytes_text(caches_.l1d_bytes) : "?") << ", L2 "
    << (caches_.l2_bytes != 0 ? bytes_text(caches_.l2_bytes) : "?") << ", L3 "
    << (caches_.l3_bytes != 0 ? bytes_text(caches_.l3_bytes) : "?") << ", line "
    << caches_.line_bytes << " B\n";
  for (const auto& pkg : packages_) {
    o << "  Package " << pkg.index << "\n";
    for (int n : pkg.numa_nodes) {
      const auto& node = nodes_[static_cast<std::size_t>(n)];
      o << "    NUMA node " << node.index << " (os " << node.os_index << ", "
        << (node.memory_bytes != 0 ? bytes_text(node.memory_bytes) : "memory ?") << ")\n";
      for (int c : node.cores) {
        const auto& core = cores_[static_cast<std::size_t>(c)];
        if (core.package != pkg.index) continue;
        o << "      Core " << core.index << ": PU";
        for (std::size_t i = 0; i < core.pu_os_indexes.size(); ++i) {
          o << (i == 0 ? " " : ",") << core.pu_os_indexes[i];
        }
        o << "\n";
      }
    }
  }
  return o.str();
}

PinResult pin_current_thread_to_pu(int pu_os_index) {
  const Topology& m = Topology::machine();
  if (m.core_of_pu(pu_os_index) < 0) {
    return {false, "PU " + std::to_string(pu_os_index) + " does not exist on this machine (" +
                       std::to_string(m.pus().size()) + " PUs)"};
  }
#if defined(RINGFLOW_HAVE_HWLOC)
  if (detail::machine_hwloc() != nullptr) {
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (set == nullptr) return {false, "hwloc_bitmap_alloc failed"};
    hwloc_bitmap_only(set, static_cast<unsigned>(pu_os_index));
    PinResult r = pin_to_cpuset(set, "PU " + std::to_string(pu_os_index));
    hwloc_bitmap_free(set);
    return r;
  }
#endif
  return pin_with_pthread({pu_os_index});
}

PinResult pin_current_thread_to_core(int core_index) {
  const Topology& m = Topology::machine();
  if (!m.has_core(core_index)) {
    return {false, "core " + std::to_string(core_index) + " does not exist on this machine (" +
                       std::to_string(m.cores().size()) + " cores)"};
  }
  const auto& pus = m.cores()[static_cast<std::size_t>(core_index)].pu_os_indexes;
#if defined(RINGFLOW_HAVE_HWLOC)
  if (detail::machine_hwloc() != nullptr) {
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (set == nullptr) return {false, "hwloc_bitmap_alloc failed"};
    for (int pu : pus)
      hwloc_bitmap_set(set, static_cast<unsigned>(pu));
    PinResult r = pin_to_cpuset(set, "core " + std::to_string(core_index));
    hwloc_bitmap_free(set);
    return r;
  }
#endif
  return pin_with_pthread(pus);
}

int current_cpu() noexcept {
  return ::sched_getcpu();
}

}  // namespace ringflow
