#include "ringflow/topology.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

namespace {

using ringflow::Topology;

TEST(TopologyMachine, DiscoversAtLeastOneCoreAndNode) {
  const Topology& m = Topology::machine();
  EXPECT_FALSE(m.is_synthetic());
  ASSERT_FALSE(m.cores().empty());
  ASSERT_FALSE(m.numa_nodes().empty());
  ASSERT_FALSE(m.packages().empty());
  EXPECT_GE(m.pus().size(), m.cores().size());
  // Every PU belongs to exactly one core; every core to an existing node and package.
  std::set<int> pus;
  for (const auto& c : m.cores()) {
    EXPECT_FALSE(c.pu_os_indexes.empty()) << "core " << c.index;
    EXPECT_GE(c.numa_node, 0);
    EXPECT_LT(static_cast<std::size_t>(c.numa_node), m.numa_nodes().size());
    EXPECT_LT(static_cast<std::size_t>(c.package), m.packages().size());
    for (int pu : c.pu_os_indexes) {
      EXPECT_TRUE(pus.insert(pu).second) << "PU " << pu << " in two cores";
      EXPECT_EQ(m.core_of_pu(pu), c.index);
    }
  }
  EXPECT_EQ(pus.size(), m.pus().size());
  std::size_t node_cores = 0;
  for (const auto& n : m.numa_nodes())
    node_cores += n.cores.size();
  EXPECT_EQ(node_cores, m.cores().size());
  EXPECT_EQ(m.core_of_pu(1 << 20), -1);
}

TEST(TopologyMachine, DiscoveredOnceAndSameFromManyThreads) {
  const Topology* seen[4] = {};
  std::vector<std::thread> ts;
  for (auto& s : seen)
    ts.emplace_back([&s] { s = &Topology::machine(); });
  for (auto& t : ts)
    t.join();
  for (const auto* s : seen)
    EXPECT_EQ(s, &Topology::machine());
}

TEST(TopologyMachine, TreeNamesEveryCore) {
  const Topology& m = Topology::machine();
  const std::string tree = m.tree();
  EXPECT_NE(tree.find("Package 0"), std::string::npos) << tree;
  EXPECT_NE(tree.find("NUMA node 0"), std::string::npos) << tree;
  for (const auto& c : m.cores()) {
    EXPECT_NE(tree.find("Core " + std::to_string(c.index) + ":"), std::string::npos) << tree;
  }
}

#if defined(RINGFLOW_HAVE_HWLOC)
TEST(TopologySynthetic, TwoPackagesTwoNodesWithSmt) {
  const Topology t = Topology::from_synthetic("pack:2 numa:1 core:4 pu:2");
  EXPECT_TRUE(t.is_synthetic());
  EXPECT_EQ(t.packages().size(), 2U);
  EXPECT_EQ(t.numa_nodes().size(), 2U);
  EXPECT_EQ(t.cores().size(), 8U);
  EXPECT_EQ(t.pus().size(), 16U);
  EXPECT_TRUE(t.has_smt());
  for (const auto& c : t.cores()) {
    EXPECT_EQ(c.pu_os_indexes.size(), 2U);
    EXPECT_EQ(c.package, c.index / 4);
    EXPECT_EQ(c.numa_node, c.index / 4);
  }
  EXPECT_EQ(t.numa_nodes()[1].cores, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(t.packages()[1].numa_nodes, (std::vector<int>{1}));
}

TEST(TopologySynthetic, FourNodesOnTwoPackages) {
  const Topology t = Topology::from_synthetic("pack:2 numa:2 core:3 pu:1");
  EXPECT_EQ(t.packages().size(), 2U);
  ASSERT_EQ(t.numa_nodes().size(), 4U);
  EXPECT_EQ(t.cores().size(), 12U);
  EXPECT_FALSE(t.has_smt());
  EXPECT_EQ(t.packages()[0].numa_nodes, (std::vector<int>{0, 1}));
  EXPECT_EQ(t.packages()[1].numa_nodes, (std::vector<int>{2, 3}));
  for (const auto& n : t.numa_nodes())
    EXPECT_EQ(n.cores.size(), 3U);
  EXPECT_EQ(t.cores()[7].numa_node, 2);
  EXPECT_EQ(t.cores()[7].package, 1);
}

TEST(TopologySynthetic, BadDescriptionThrowsNamingIt) {
  try {
    (void)Topology::from_synthetic("pack:two");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("pack:two"), std::string::npos) << e.what();
  }
}

TEST(TopologyXml, MissingFileThrows) {
  EXPECT_THROW((void)Topology::from_xml("/nonexistent/topo.xml"), std::invalid_argument);
}
#endif

TEST(TopologyUniform, MatchesLinuxPuNumbering) {
  const Topology t = Topology::uniform(2, 1, 2, 2);
  ASSERT_EQ(t.cores().size(), 4U);
  EXPECT_EQ(t.cores()[1].pu_os_indexes, (std::vector<int>{1, 5}));
  EXPECT_EQ(t.core_of_pu(6), 2);
}

TEST(TopologyPinning, PinToEachPuThenRunsThere) {
  const Topology& m = Topology::machine();
  for (const auto& pu : m.pus()) {
    std::thread th([&] {
      const auto r = ringflow::pin_current_thread_to_pu(pu.os_index);
      if (!r) GTEST_SKIP() << "machine forbids pinning to PU " << pu.os_index << ": " << r.reason;
      EXPECT_EQ(ringflow::current_cpu(), pu.os_index);
    });
    th.join();
  }
}

TEST(TopologyPinning, PinToCoreRunsOnOneOfItsPus) {
  const Topology& m = Topology::machine();
  const auto& core = m.cores().back();
  std::thread th([&] {
    const auto r = ringflow::pin_current_thread_to_core(core.index);
    if (!r) GTEST_SKIP() << "machine forbids pinning: " << r.reason;
    const int cpu = ringflow::current_cpu();
    EXPECT_NE(std::find(core.pu_os_indexes.begin(), core.pu_os_indexes.end(), cpu),
              core.pu_os_indexes.end());
  });
  th.join();
}

TEST(TopologyPinning, MissingPuOrCoreSaysWhy) {
  const auto r = ringflow::pin_current_thread_to_pu(100000);
  EXPECT_FALSE(r);
  EXPECT_NE(r.reason.find("100000"), std::string::npos) << r.reason;
  const auto c = ringflow::pin_current_thread_to_core(-1);
  EXPECT_FALSE(c);
  EXPECT_NE(c.reason.find("does not exist"), std::string::npos) << c.reason;
}

}  // namespace
