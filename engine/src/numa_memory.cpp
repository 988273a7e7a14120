#include "ringflow/numa_memory.hpp"

#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <utility>

#include "ringflow/topology.hpp"
#include "topo_hwloc.hpp"

#if defined(RINGFLOW_HAVE_JEMALLOC) && __has_include(<jemalloc/jemalloc.h>)
#include <jemalloc/jemalloc.h>
#define RINGFLOW_JEMALLOC_HEADER 1
#endif

namespace ringflow {

namespace {

// ---- notes: each distinct line once --------------------------------------------------------

struct Notes {
  std::mutex mu;
  std::vector<std::string> lines;  // guarded by mu
};
Notes& notes() {
  static auto* n = new Notes;  // process lifetime: resources may note from static destructors
  return *n;
}
void note_once(const std::string& line) {
  Notes& n = notes();
  const std::lock_guard lock(n.mu);
  if (std::find(n.lines.begin(), n.lines.end(), line) == n.lines.end()) n.lines.push_back(line);
}

std::size_t effective_alignment(std::size_t alignment) {
  return std::max(alignment, kMinMemoryAlignment);
}

// A resource with a name for memory_backend().
class NamedResource : public std::pmr::memory_resource {
 public:
  explicit NamedResource(std::string name) : name_(std::move(name)) {}
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
  std::string name_;
};

// ---- system: aligned operator new ----------------------------------------------------------

class SystemResource final : public NamedResource {
 public:
  SystemResource() : NamedResource("system (aligned operator new)") {}

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    return ::operator new (bytes, std::align_val_t{effective_alignment(alignment)});
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    ::operator delete (p, bytes, std::align_val_t{effective_alignment(alignment)});
  }
};

SystemResource& system_resource() {
  static auto* r = new SystemResource;
  return *r;
}

// ---- jemalloc, only when already in the process --------------------------------------------

#if defined(RINGFLOW_JEMALLOC_HEADER)

struct JemallocApi {
  void* (*mallocx)(std::size_t, int) = nullptr;
  void (*dallocx)(void*, int) = nullptr;
  int (*mallctl)(const char*, void*, std::size_t*, void*, std::size_t) = nullptr;
  [[nodiscard]] bool ok() const noexcept {
    return mallocx != nullptr && dallocx != nullptr && mallctl != nullptr;
  }
};

const JemallocApi& jemalloc_api() {
  static const JemallocApi api = [] {
    JemallocApi a;
    // RTLD_NOLOAD: only a jemalloc that is already loaded. Loading a private copy is not an
    // option with Debian's build (initial-exec TLS: dlopen fails), and linking it would replace
    // the host's malloc.
    void* h = ::dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
    if (h == nullptr) return a;
    a.mallocx = reinterpret_cast<void* (*)(std::size_t, int)>(::dlsym(h, "mallocx"));
    a.dallocx = reinterpret_cast<void (*)(void*, int)>(::dlsym(h, "dallocx"));
    a.mallctl = reinterpret_cast<int (*)(const char*, void*, std::size_t*, void*, std::size_t)>(
        ::dlsym(h, "mallctl"));
    return a;
  }();
  return api;
}

int lg_align(std::size_t alignment) {
  return MALLOCX_ALIGN(effective_alignment(alignment));  // alignment is a power of two
}

// Extent hooks of one node's arena: jemalloc's defaults, with `alloc` wrapped to bind each new
// extent to the node with mbind(2) (a precomputed mask: no allocation inside the hook).
struct NodeExtentHooks {
  extent_hooks_t hooks{};  // first member: jemalloc passes &hooks back to us
  extent_hooks_t* defaults = nullptr;
  std::array<unsigned long, 16> mask{};  // NOLINT(google-runtime-int): mbind(2)'s type
  std::atomic<std::uint64_t> bind_failures{0};
  std::atomic<int> first_errno{0};
};

constexpr int kMpolBind = 2;               // MPOL_BIND from <linux/mempolicy.h>
constexpr unsigned kMpolMfMove = 1U << 1;  // MPOL_MF_MOVE: also move pages already touched

void* node_extent_alloc(extent_hooks_t* hooks, void* new_addr, std::size_t size,
                        std::size_t alignment, bool* zero, bool* commit, unsigned arena_ind) {
  auto* self = reinterpret_cast<NodeExtentHooks*>(hooks);
  void* p =
      self->defaults->alloc(self->defaults, new_addr, size, alignment, zero, commit, arena_ind);
  if (p != nullptr) {
    const long rc = ::syscall(SYS_mbind, p, size, kMpolBind, self->mask.data(),
                              self->mask.size() * 64 + 1, kMpolMfMove);
    if (rc != 0) {
      int expected = 0;
      // relaxed: diagnostics only, read after allocations by memory_backend()/notes.
      self->first_errno.compare_exchange_strong(expected, errno, std::memory_order_relaxed);
      self->bind_failures.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return p;
}

class JemallocResource final : public NamedResource {
 public:
  /// arena < 0: jemalloc's default arenas with its thread cache.
  JemallocResource(std::string name, int arena, NodeExtentHooks* hooks)
      : NamedResource(std::move(name)), arena_(arena), hooks_(hooks) {}

  [[nodiscard]] const NodeExtentHooks* hooks() const noexcept { return hooks_; }

 private:
  [[nodiscard]] int flags(std::size_t alignment) const {
    return lg_align(alignment) | (arena_ < 0 ? 0 : MALLOCX_ARENA(arena_) | MALLOCX_TCACHE_NONE);
  }
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = jemalloc_api().mallocx(std::max<std::size_t>(bytes, 1), flags(alignment));
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t /*bytes*/, std::size_t /*alignment*/) override {
    jemalloc_api().dallocx(p, arena_ < 0 ? 0 : MALLOCX_TCACHE_NONE);
  }

  int arena_;
  NodeExtentHooks* hooks_;
};

// nullptr when the arena cannot be made; then the caller falls back.
JemallocResource* make_jemalloc_node_resource(int node, int os_node) {
  const JemallocApi& je = jemalloc_api();
  extent_hooks_t* defaults = nullptr;
  std::size_t sz = sizeof(void*);  // mallctl reads/writes a pointer
  if (je.mallctl("arena.0.extent_hooks", &defaults, &sz, nullptr, 0) != 0 || defaults == nullptr) {
    return nullptr;
  }
  auto* hooks = new NodeExtentHooks;  // process lifetime: the arena keeps using it
  hooks->hooks = *defaults;
  hooks->hooks.alloc = &node_extent_alloc;
  hooks->defaults = defaults;
  if (os_node < 0 || static_cast<std::size_t>(os_node) >= hooks->mask.size() * 64) {
    delete hooks;
    return nullptr;
  }
  hooks->mask[static_cast<std::size_t>(os_node) / 64] |= 1UL << (os_node % 64);
  unsigned arena = 0;
  std::size_t arena_sz = sizeof arena;
  extent_hooks_t* new_hooks = &hooks->hooks;
  if (je.mallctl("arenas.create", &arena, &arena_sz, &new_hooks, sizeof(void*)) != 0) {
    delete hooks;
    return nullptr;
  }
  return new JemallocResource(
      "jemalloc arena " + std::to_string(arena) + " bound to NUMA node " + std::to_string(node),
      static_cast<int>(arena), hooks);
}

#endif  // RINGFLOW_JEMALLOC_HEADER

// ---- hwloc page pool: node-bound pages, pooled -----------------------------------------------

#if defined(RINGFLOW_HAVE_HWLOC)

// Whole pages bound to one node: mmap (over-sized and trimmed for alignments above a page,
// which the pool asks for its large chunks), then hwloc_set_area_membind before first touch.
class NodePagesResource final : public std::pmr::memory_resource {
 public:
  explicit NodePagesResource(hwloc_obj_t node) : node_(node) {}

 private:
  static std::size_t page() {
    static const auto p = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return p;
  }
  static std::size_t round_up(std::size_t v, std::size_t to) { return (v + to - 1) / to * to; }

  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    const std::size_t len = round_up(std::max<std::size_t>(bytes, 1), page());
    const std::size_t align = std::max(alignment, page());
    const std::size_t span = len + align - page();
    void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    // Pointer arithmetic on the mapping (no int-to-pointer casts): trim head and tail.
    auto* const raw_bytes = static_cast<char*>(raw);
    const std::size_t head = round_up(reinterpret_cast<std::uintptr_t>(raw), align) -
                             reinterpret_cast<std::uintptr_t>(raw);
    if (head != 0) ::munmap(raw, head);
    if (const std::size_t tail = span - head - len; tail != 0)
      ::munmap(raw_bytes + head + len, tail);
    void* p = raw_bytes + head;
    // Best effort: an unbindable area (e.g. mbind denied) still works, just not node-local.
    (void)hwloc_set_area_membind(detail::machine_hwloc(), p, len, node_->nodeset,
                                 HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_BYNODESET);
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t /*alignment*/) override {
    ::munmap(p, round_up(std::max<std::size_t>(bytes, 1), page()));
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
  hwloc_obj_t node_;
};

// Small requests from pools, large ones straight from node-bound pages; at least 64-aligned.
class NodePoolResource final : public NamedResource {
 public:
  NodePoolResource(int node, hwloc_obj_t obj)
      : NamedResource("hwloc page pool on NUMA node " + std::to_string(node)),
        pages_(obj),
        pool_(std::pmr::pool_options{0, std::size_t{64} << 10}, &pages_) {}

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    const std::size_t a = effective_alignment(alignment);
    return pool_.allocate((bytes + a - 1) / a * a, a);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    const std::size_t a = effective_alignment(alignment);
    pool_.deallocate(p, (bytes + a - 1) / a * a, a);
  }
  NodePagesResource pages_;
  std::pmr::synchronized_pool_resource pool_;
};

#endif  // RINGFLOW_HAVE_HWLOC

// ---- registry -----------------------------------------------------------------------------

struct Registry {
  std::mutex mu;
  std::map<std::pair<int, AllocatorKind>, NamedResource*> resources;  // guarded by mu
};
Registry& registry() {
  static auto* r = new Registry;  // never destroyed: resources outlive static destructors
  return *r;
}

NamedResource* make_resource(int node, AllocatorKind kind) {
  const Topology& m = Topology::machine();
  if (node >= static_cast<int>(m.numa_nodes().size())) {
    throw std::out_of_range("node_memory_resource: NUMA node " + std::to_string(node) +
                            " does not exist on this machine (" +
                            std::to_string(m.numa_nodes().size()) + " node(s))");
  }
  const bool je = jemalloc_in_process();
  if (kind == AllocatorKind::jemalloc && !je) {
    note_once(
        "jemalloc is not in this process: memory.allocator = jemalloc falls back to " +
        std::string(node >= 0 ? "a node-bound page pool" : "aligned operator new") +
        " (link with -DRINGFLOW_JEMALLOC_GLOBAL=ON or LD_PRELOAD jemalloc to use its arenas)");
  }
  if (node < 0) {
#if defined(RINGFLOW_JEMALLOC_HEADER)
    if (kind == AllocatorKind::jemalloc && je) {
      return new JemallocResource("jemalloc default arenas (not bound)", -1, nullptr);
    }
#endif
    return &system_resource();
  }
  if (m.numa_nodes().size() <= 1) note_once("single NUMA node: memory binding is a no-op");
  if (kind == AllocatorKind::system) {
    note_once(
        "memory.allocator = system: shard memory comes from operator new and is not "
        "bound to a NUMA node");
    return &system_resource();
  }
  const int os_node = m.numa_nodes()[static_cast<std::size_t>(node)].os_index;
#if defined(RINGFLOW_JEMALLOC_HEADER)
  if (je) {
    if (auto* r = make_jemalloc_node_resource(node, os_node)) return r;
    note_once("jemalloc arena creation failed; using a node-bound page pool instead");
  }
#else
  (void)os_node;
#endif
#if defined(RINGFLOW_HAVE_HWLOC)
  if (const hwloc_topology_t topo = detail::machine_hwloc(); topo != nullptr) {
    if (const hwloc_obj_t obj =
            hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(node));
        obj != nullptr) {
      return new NodePoolResource(node, obj);
    }
  }
#endif
  note_once("no NUMA binding available (built without hwloc): NUMA node " + std::to_string(node) +
            " memory comes from operator new");
  return &system_resource();
}

}  // namespace

std::pmr::memory_resource* node_memory_resource(int numa_node, AllocatorKind kind) {
  if (numa_node < 0) numa_node = -1;
  Registry& reg = registry();
  const std::lock_guard lock(reg.mu);
  auto& slot = reg.resources[{numa_node, kind}];
  if (slot == nullptr) slot = make_resource(numa_node, kind);
  return slot;
}

std::string memory_backend(int numa_node, AllocatorKind kind) {
  auto* r = static_cast<NamedResource*>(node_memory_resource(numa_node, kind));
  std::string name = r->name();
#if defined(RINGFLOW_JEMALLOC_HEADER)
  if (const auto* je = dynamic_cast<const JemallocResource*>(r); je != nullptr && je->hooks()) {
    // relaxed: a diagnostic count.
    if (const auto f = je->hooks()->bind_failures.load(std::memory_order_relaxed); f != 0) {
      name += " (mbind failed " + std::to_string(f) +
              "x: " + std::strerror(je->hooks()->first_errno.load(std::memory_order_relaxed)) + ")";
    }
  }
#endif
  return name;
}

int memory_node_of(const void* p, std::size_t len) noexcept {
#if defined(RINGFLOW_HAVE_HWLOC)
  const hwloc_topology_t topo = detail::machine_hwloc();
  if (topo == nullptr || p == nullptr || len == 0) return -1;
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  if (set == nullptr) return -1;
  int result = -1;
  if (hwloc_get_area_memlocation(topo, p, len, set, HWLOC_MEMBIND_BYNODESET) == 0 &&
      hwloc_bitmap_weight(set) == 1) {
    const hwloc_obj_t node =
        hwloc_get_numanode_obj_by_os_index(topo, static_cast<unsigned>(hwloc_bitmap_first(set)));
    if (node != nullptr) result = static_cast<int>(node->logical_index);
  }
  hwloc_bitmap_free(set);
  return result;
#else
  (void)p;
  (void)len;
  return -1;
#endif
}

bool jemalloc_in_process() noexcept {
#if defined(RINGFLOW_JEMALLOC_HEADER)
  return jemalloc_api().ok();
#else
  return false;
#endif
}

std::vector<std::string> memory_notes() {
  Notes& n = notes();
  const std::lock_guard lock(n.mu);
  return n.lines;
}

}  // namespace ringflow
