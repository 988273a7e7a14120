#pragma once
// Internal: the hwloc handle of the running machine, shared by topology.cpp (pinning),
// numa_memory.cpp (binding) and pinned_arena.cpp. Never exposed in a public header.

#if defined(RINGFLOW_HAVE_HWLOC)
#include <hwloc.h>

namespace ringflow::detail {

/// The loaded hwloc topology of this machine, or nullptr when discovery failed. Loaded once;
/// read-only afterwards, so concurrent hwloc_set_cpubind()/membind calls on it are safe.
hwloc_topology_t machine_hwloc() noexcept;

}  // namespace ringflow::detail
#endif
