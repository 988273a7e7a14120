#include "ringflow/numa_memory.hpp"

#include <gtest/gtest.h>

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory_resource>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "pinned_arena.hpp"
#include "ringflow/topology.hpp"

namespace {

using ringflow::AllocatorKind;
using ringflow::node_memory_resource;
using ringflow::Topology;

bool aligned(const void* p, std::size_t a) {
  return reinterpret_cast<std::uintptr_t>(p) % a == 0;
}

class NumaMemory : public ::testing::TestWithParam<std::pair<int, AllocatorKind>> {};

TEST_P(NumaMemory, AlignmentAtLeastCacheLineAndAsAsked) {
  auto* mr = node_memory_resource(GetParam().first, GetParam().second);
  ASSERT_NE(mr, nullptr);
  for (std::size_t align : {1UL, 8UL, 16UL, 64UL, 128UL, 4096UL}) {
    for (std::size_t bytes : {1UL, 24UL, 100UL, 4096UL, 100000UL, 3UL << 20}) {
      void* p = mr->allocate(bytes, align);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(aligned(p, std::max(align, ringflow::kMinMemoryAlignment)))
          << bytes << " bytes, align " << align << " from "
          << ringflow::memory_backend(GetParam().first, GetParam().second);
      std::memset(p, 0xab, bytes);  // writable, whole size
      mr->deallocate(p, bytes, align);
    }
  }
}

TEST_P(NumaMemory, PmrContainersWork) {
  auto* mr = node_memory_resource(GetParam().first, GetParam().second);
  std::pmr::vector<std::uint64_t> v(mr);
  for (std::uint64_t i = 0; i < 100000; ++i)
    v.push_back(i);
  EXPECT_EQ(v[99999], 99999U);
  std::pmr::map<int, std::pmr::string> m(mr);
  for (int i = 0; i < 1000; ++i)
    m.emplace(i, std::pmr::string(100, 'x'));
  EXPECT_EQ(m.at(500).size(), 100U);
  EXPECT_EQ(m.get_allocator().resource(), mr);
}

TEST_P(NumaMemory, SameResourceEveryTime) {
  EXPECT_EQ(node_memory_resource(GetParam().first, GetParam().second),
            node_memory_resource(GetParam().first, GetParam().second));
  EXPECT_FALSE(ringflow::memory_backend(GetParam().first, GetParam().second).empty());
}

TEST_P(NumaMemory, PagesLandOnTheNodeWhereKnown) {
  const int node = GetParam().first;
  auto* mr = node_memory_resource(node, GetParam().second);
  constexpr std::size_t kBytes = 4U << 20;
  auto* p = static_cast<char*>(mr->allocate(kBytes, 4096));
  std::memset(p, 1, kBytes);  // touch: pages exist only once written
  const int where = ringflow::memory_node_of(p, kBytes);
  mr->deallocate(p, kBytes, 4096);
  if (where < 0) GTEST_SKIP() << "memory location unknown here (no hwloc or move_pages denied)";
  if (node >= 0 && GetParam().second == AllocatorKind::jemalloc) {
    EXPECT_EQ(where, node);
  }
  EXPECT_LT(where, static_cast<int>(Topology::machine().numa_nodes().size()));
}

INSTANTIATE_TEST_SUITE_P(Numa, NumaMemory,
                         ::testing::Values(std::pair{-1, AllocatorKind::system},
                                           std::pair{-1, AllocatorKind::jemalloc},
                                           std::pair{0, AllocatorKind::system},
                                           std::pair{0, AllocatorKind::jemalloc}),
                         [](const auto& param_info) {
                           return std::string(param_info.param.first < 0 ? "unbound_" : "node0_") +
                                  std::string(ringflow::to_string(param_info.param.second));
                         });

TEST(NumaMemoryBackend, NamesWhatServesAndNotesOnce) {
  const std::string je = ringflow::memory_backend(0, AllocatorKind::jemalloc);
  if (ringflow::jemalloc_in_process()) {
    EXPECT_NE(je.find("jemalloc arena"), std::string::npos) << je;
  } else {
    EXPECT_EQ(je.find("jemalloc"), std::string::npos) << je;
  }
  EXPECT_NE(ringflow::memory_backend(-1, AllocatorKind::system).find("system"), std::string::npos);
  const auto notes = ringflow::memory_notes();
  std::set<std::string> unique(notes.begin(), notes.end());
  EXPECT_EQ(unique.size(), notes.size()) << "each note once";
  if (Topology::machine().numa_nodes().size() == 1) {
    EXPECT_NE(std::find(notes.begin(), notes.end(), "single NUMA node: memory binding is a no-op"),
              notes.end());
  }
}

TEST(NumaMemoryBackend, MissingNodeThrows) {
  const int n = static_cast<int>(Topology::machine().numa_nodes().size());
  EXPECT_THROW((void)node_memory_resource(n + 7, AllocatorKind::jemalloc), std::out_of_range);
}

TEST(NumaMemoryLocation, UnknownForNull) {
  EXPECT_EQ(ringflow::memory_node_of(nullptr, 0), -1);
}

// PinnedArena: the workers that enter are pinned to the listed PUs.
TEST(NumaPinnedArena, WorkersRunOnTheirPu) {
  const Topology& m = Topology::machine();
  const int pu = m.pus().back().os_index;
  ringflow::detail::PinnedArena arena({pu}, true);
  std::mutex mu;
  std::set<int> worker_cpus;
  arena.execute([&] {
    tbb::parallel_for(0, 64, [&](int) {
      if (tbb::this_task_arena::current_thread_index() == 0) return;  // the caller
      volatile double x = 0;
      for (int i = 0; i < 20000; ++i)
        x = x + 1.0;
      const std::lock_guard lock(mu);
      worker_cpus.insert(ringflow::current_cpu());
    });
  });
  if (arena.pin_failures() != 0) GTEST_SKIP() << "pinning refused: " << arena.first_failure();
  for (int cpu : worker_cpus)
    EXPECT_EQ(cpu, pu);
  EXPECT_EQ(arena.worker_pus(), std::vector<int>{pu});
}

TEST(NumaPinnedArena, UnpinnedArenaRunsWork) {
  ringflow::detail::PinnedArena arena({}, false);
  EXPECT_FALSE(arena.pinning());
  int sum = 0;
  arena.execute([&] { sum = 42; });
  EXPECT_EQ(sum, 42);
  EXPECT_EQ(arena.pinned(), 0U);
}

}  // namespace
