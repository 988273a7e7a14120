#include "ringflow/plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "ringflow/topology.hpp"

namespace {

using ringflow::ConfigError;
using ringflow::EngineConfig;
using ringflow::Plan;
using ringflow::Topology;

Topology synthetic(const char* desc, int packages, int nodes_per_pkg, int cores, int pus) {
#if defined(RINGFLOW_HAVE_HWLOC)
  (void)packages, (void)nodes_per_pkg, (void)cores, (void)pus;
  return Topology::from_synthetic(desc);
#else
  return Topology::uniform(packages, nodes_per_pkg, cores, pus, desc);
#endif
}

const Topology& two_node() {
  static const Topology t = synthetic("pack:2 numa:1 core:4 pu:2", 2, 1, 4, 2);
  return t;
}
const Topology& four_node() {
  static const Topology t = synthetic("pack:2 numa:2 core:2 pu:1", 2, 2, 2, 1);
  return t;
}

bool has_note(const Plan& p, std::string_view needle) {
  return std::any_of(p.notes.begin(), p.notes.end(),
                     [&](const std::string& n) { return n.find(needle) != std::string::npos; });
}

EngineConfig shards(std::uint32_t n, std::uint32_t workers = 0) {
  EngineConfig c;
  c.partitions = 64;
  c.shards = n;
  c.graph_workers_per_shard = workers;
  return c;
}

TEST(PlanDeterminism, SameInputSamePlan) {
  const auto cfg = shards(3, 1);
  const Plan a = ringflow::plan(cfg, four_node());
  const Plan b = ringflow::plan(cfg, four_node());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.table(), b.table());
}

TEST(PlanPlacement, ShardsSpreadOverTwoNodes) {
  auto cfg = shards(2, 1);
  const Plan p = ringflow::plan(cfg, two_node());
  ASSERT_EQ(p.shards.size(), 2U);
  EXPECT_EQ(p.shards[0].numa_node, 0);
  EXPECT_EQ(p.shards[1].numa_node, 1);
  EXPECT_EQ(p.shards[0].core, 1) << "core 0 is left to the OS when cores are spare";
  EXPECT_EQ(p.shards[1].core, 4);
  // Each shard's graph worker is on the shard's node.
  for (std::size_t s = 0; s < 2; ++s) {
    ASSERT_EQ(p.graph_workers[s].size(), 1U);
    EXPECT_EQ(p.graph_workers[s][0].numa_node, p.shards[s].numa_node);
    EXPECT_NE(p.graph_workers[s][0].core, p.shards[s].core);
  }
  EXPECT_EQ(p.shard_memory_node, (std::vector<int>{0, 1}));
  // First role on a core takes its first PU (Linux numbering: core c -> PU c, c + 8).
  EXPECT_EQ(p.shards[1].pu_os_index, two_node().cores()[4].pu_os_indexes[0]);
  EXPECT_TRUE(p.pinning);
  EXPECT_FALSE(has_note(p, "shared"));
}

TEST(PlanPlacement, ShardsSpreadOverFourNodesAlternatingPackages) {
  const Plan p = ringflow::plan(shards(4), four_node());
  ASSERT_EQ(p.shards.size(), 4U);
  // Node order: pkg0/node0, pkg1/node2, pkg0/node1, pkg1/node3.
  EXPECT_EQ(p.shards[0].numa_node, 0);
  EXPECT_EQ(p.shards[1].numa_node, 2);
  EXPECT_EQ(p.shards[2].numa_node, 1);
  EXPECT_EQ(p.shards[3].numa_node, 3);
  std::set<int> cores;
  for (const auto& s : p.shards)
    cores.insert(s.core);
  EXPECT_EQ(cores.size(), 4U);
  EXPECT_EQ(cores.count(0), 0U);
}

TEST(PlanPlacement, ExplicitCoresAreUsedAsGiven) {
  auto cfg = shards(2, 1);
  cfg.shard_cores = {7, 2};
  cfg.graph_cores = {6, 3};
  const Plan p = ringflow::plan(cfg, two_node());
  EXPECT_EQ(p.shards[0].core, 7);
  EXPECT_EQ(p.shards[0].numa_node, 1);
  EXPECT_EQ(p.shards[1].core, 2);
  EXPECT_EQ(p.graph_workers[0][0].core, 6);
  EXPECT_EQ(p.graph_workers[1][0].core, 3);
  EXPECT_EQ(p.graph_worker_pus(0), (std::vector<int>{two_node().cores()[6].pu_os_indexes[0]}));
}

TEST(PlanSharing, MoreRolesThanCoresSharesAndNotes) {
  // 8 cores, 2 shards x (1 + 4 workers) = 10 roles; sharing is allowed without exclusive_cores.
  const Plan p = ringflow::plan(shards(2, 4), four_node());
  EXPECT_TRUE(has_note(p, "shared by")) << p.table();
  EXPECT_TRUE(has_note(p, "10 threads on 8 cores")) << p.table();
  // Every role got a real core.
  for (const auto& s : p.graph_workers) {
    for (const auto& w : s)
      EXPECT_TRUE(four_node().has_core(w.core));
  }
}

TEST(PlanSharing, SecondRoleOnSmtCoreTakesSibling) {
  const Topology t = synthetic("pack:1 numa:1 core:1 pu:2", 1, 1, 1, 2);
  auto cfg = shards(1, 1);
  const Plan p = ringflow::plan(cfg, t);
  EXPECT_EQ(p.shards[0].core, 0);
  EXPECT_EQ(p.graph_workers[0][0].core, 0);
  EXPECT_NE(p.shards[0].pu_os_index, p.graph_workers[0][0].pu_os_index);
  EXPECT_TRUE(has_note(p, "core 0 shared by shard 0, graph 0.0"));
}

TEST(PlanValidation, ExclusiveViolationThrowsNamingKey) {
  auto cfg = shards(2);
  cfg.exclusive_cores = true;
  cfg.shard_cores = {3, 3};
  try {
    (void)ringflow::plan(cfg, two_node());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.issues().size(), 1U);
    EXPECT_EQ(e.issues()[0].key, "shards.cores");
  }
  auto many = shards(4, 3);  // 16 roles on 8 cores
  many.exclusive_cores = true;
  EXPECT_THROW((void)ringflow::plan(many, two_node()), ConfigError);
}

TEST(PlanNotes, SingleNodeAndAffinityOff) {
  const Topology t = Topology::uniform(1, 1, 4, 1, "one node");
  auto cfg = shards(1);
  cfg.pin_threads = false;
  const Plan p = ringflow::plan(cfg, t);
  EXPECT_FALSE(p.pinning);
  EXPECT_TRUE(has_note(p, "affinity off")) << p.table();
  EXPECT_TRUE(has_note(p, "single NUMA node: memory binding is a no-op")) << p.table();
  EXPECT_EQ(p.shard_memory_node, (std::vector<int>{-1}));
  const std::string table = p.table();
  EXPECT_NE(table.find("pinning: off"), std::string::npos) << table;
}

TEST(PlanNotes, NumaOffAndAutoWithoutPinningDoNotBind) {
  auto cfg = shards(2);
  cfg.numa = ringflow::NumaBinding::off;
  Plan p = ringflow::plan(cfg, two_node());
  EXPECT_EQ(p.shard_memory_node, (std::vector<int>{-1, -1}));
  EXPECT_TRUE(has_note(p, "memory.numa = off"));
  cfg.numa = ringflow::NumaBinding::automatic;
  cfg.pin_threads = false;
  p = ringflow::plan(cfg, two_node());
  EXPECT_EQ(p.shard_memory_node, (std::vector<int>{-1, -1}));
  cfg.numa = ringflow::NumaBinding::on;
  p = ringflow::plan(cfg, two_node());
  EXPECT_EQ(p.shard_memory_node, (std::vector<int>{0, 1}));
}

TEST(PlanMachine, DefaultConfigPlansOnThisMachine) {
  const Topology& m = Topology::machine();
  if (m.cores().size() < 2) GTEST_SKIP() << "needs >= 2 cores";
  const Plan p = ringflow::plan(EngineConfig{}, m);
  ASSERT_EQ(p.shards.size(), 1U);
  EXPECT_EQ(p.shards[0].core, 1);
  EXPECT_FALSE(p.table().empty());
}

}  // namespace
