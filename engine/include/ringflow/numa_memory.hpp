#pragma once
// Memory that lives on a chosen NUMA node, as std::pmr::memory_resource. Off the hot path:
// the engine takes segments and buffers from it at start and when a log grows.
//
//   auto* mr = ringflow::node_memory_resource(plan.shard_memory_node[s], cfg.allocator);
//   std::pmr::vector<Event> v(mr);
//
// What serves a request (memory_backend() names it):
//   numa_node = -1 (not bound)  jemalloc kind: jemalloc's default arenas when jemalloc is in the
//                               process, else aligned operator new; system kind: aligned new.
//   numa_node >= 0, jemalloc    a jemalloc arena per node whose extent hook mbind(2)s every new
//                               extent to the node, used with MALLOCX_TCACHE_NONE (a thread
//                               cache would hand out another arena's memory); when jemalloc is
//                               not in the process: a pool (std::pmr::synchronized_pool_resource)
//                               over mmap pages bound to the node (hwloc_set_area_membind).
//   numa_node >= 0, system      aligned operator new; not bound (a note says so once).
//
// jemalloc is never forced on the host: Debian's libjemalloc has no symbol prefix, so linking it
// replaces malloc for the whole process, and dlopen()ing it privately fails ("cannot allocate
// memory in static TLS block"). ringflow therefore only *uses* jemalloc when it is already in
// the process (RINGFLOW_JEMALLOC_GLOBAL=ON, LD_PRELOAD, or the host linked it), found with
// dlopen(RTLD_NOLOAD); otherwise it falls back as above and says so in memory_notes().
//
// Every allocation is aligned to at least kMinMemoryAlignment (a cache line). Resources live
// for the whole process (never destroyed), so memory may be freed from static destructors.
// Thread-safe: all functions and resources may be used from any thread.

#include <cstddef>
#include <memory_resource>
#include <string>
#include <string_view>
#include <vector>

#include "ringflow/policy.hpp"

namespace ringflow {

inline constexpr std::size_t kMinMemoryAlignment = 64;

/// The process-lifetime resource for `numa_node` (logical index on Topology::machine(), or -1
/// for "not bound"). Throws std::out_of_range for a node this machine does not have.
std::pmr::memory_resource* node_memory_resource(int numa_node, AllocatorKind kind);

/// Which backend node_memory_resource(numa_node, kind) uses, e.g.
/// "jemalloc arena 3 bound to NUMA node 0" or "hwloc page pool on NUMA node 1".
std::string memory_backend(int numa_node, AllocatorKind kind);

/// Logical NUMA node holding every page of [p, p+len), or -1 when unknown or mixed. Pages must
/// have been touched. Uses hwloc_get_area_memlocation (move_pages(2)); -1 without hwloc.
int memory_node_of(const void* p, std::size_t len) noexcept;

/// True when jemalloc's explicit API (mallocx/mallctl) was found in this process.
bool jemalloc_in_process() noexcept;

/// One-time observations about memory placement ("single NUMA node: memory binding is a
/// no-op", "jemalloc is not in this process: ..."), each reported once, in order.
std::vector<std::string> memory_notes();

}  // namespace ringflow
