// ringflow-bench --tune: the config writer (EngineConfig -> TOML -> parse_config() gives the
// same config, every key written) and the sweep's candidate generation and ranking.
// Deterministic: nothing here measures anything.

#include <gtest/gtest.h>
#include <ringflow/config.hpp>
#include <ringflow/topology.hpp>

#include <toml++/toml.h>
#include <set>
#include <string>

#include "harness/tune.hpp"

#ifndef RINGFLOW_SOURCE_DIR
#define RINGFLOW_SOURCE_DIR "."
#endif

namespace ringflow::bench {
namespace {

using ringflow::EngineConfig;

/// Field by field, independent of the writer's own comparison.
void expect_same(const EngineConfig& a, const EngineConfig& b) {
  EXPECT_EQ(a.partitions, b.partitions);
  EXPECT_EQ(a.max_producers, b.max_producers);
  EXPECT_EQ(a.max_payload_bytes, b.max_payload_bytes);
  EXPECT_EQ(a.max_topics, b.max_topics);
  EXPECT_EQ(a.shards, b.shards);
  EXPECT_EQ(a.shard_cores, b.shard_cores);
  EXPECT_EQ(a.exclusive_cores, b.exclusive_cores);
  EXPECT_EQ(a.graph_workers_per_shard, b.graph_workers_per_shard);
  EXPECT_EQ(a.graph_cores, b.graph_cores);
  EXPECT_EQ(a.ring_capacity, b.ring_capacity);
  EXPECT_EQ(a.batch_size, b.batch_size);
  EXPECT_EQ(a.wait_strategy, b.wait_strategy);
  EXPECT_EQ(a.urgent_ratio, b.urgent_ratio);
  EXPECT_EQ(a.backpressure, b.backpressure);
  EXPECT_EQ(a.backpressure_timeout, b.backpressure_timeout);
  EXPECT_EQ(a.numa, b.numa);
  EXPECT_EQ(a.allocator, b.allocator);
  EXPECT_EQ(a.segment_bytes, b.segment_bytes);
  EXPECT_EQ(a.retention_bytes, b.retention_bytes);
  EXPECT_EQ(a.retention_age, b.retention_age);
  EXPECT_EQ(a.idempotency_window, b.idempotency_window);
  EXPECT_EQ(a.idempotency_window_age, b.idempotency_window_age);
  EXPECT_EQ(a.retry_capacity, b.retry_capacity);
  EXPECT_EQ(a.wal_mode, b.wal_mode);
  EXPECT_EQ(a.wal_dir, b.wal_dir);
  EXPECT_EQ(a.wal_segment_bytes, b.wal_segment_bytes);
  EXPECT_EQ(a.wal_interval, b.wal_interval);
  EXPECT_EQ(a.wal_key_file, b.wal_key_file);
  EXPECT_EQ(a.wal_key_env, b.wal_key_env);
  EXPECT_EQ(a.wal_retention_bytes, b.wal_retention_bytes);
  EXPECT_EQ(a.wal_retention_age, b.wal_retention_age);
  EXPECT_EQ(a.handler_watchdog, b.handler_watchdog);
  EXPECT_EQ(a.pin_threads, b.pin_threads);
  EXPECT_EQ(a.metrics_latency_sample_every, b.metrics_latency_sample_every);
}

EngineConfig every_field_changed() {
  EngineConfig c;
  c.partitions = 12;
  c.max_producers = 3;
  c.max_payload_bytes = 100;
  c.max_topics = 77;
  c.shards = 2;
  c.shard_cores = {1, 0};
  c.exclusive_cores = true;
  c.graph_workers_per_shard = 1;
  c.graph_cores = {0, 1};
  c.ring_capacity = 16384;
  c.batch_size = 32;
  c.wait_strategy = ringflow::WaitStrategyKind::park;
  c.urgent_ratio = 3;
  c.backpressure = ringflow::BackpressurePolicy::park;
  c.backpressure_timeout = std::chrono::microseconds{250};
  c.numa = ringflow::NumaBinding::off;
  c.allocator = ringflow::AllocatorKind::system;
  c.segment_bytes = 65536;
  c.retention_bytes = 262144;
  c.retention_age = std::chrono::milliseconds{1500};
  c.idempotency_window = 0;
  c.idempotency_window_age = std::chrono::milliseconds{250};
  c.retry_capacity = 512;
  c.wal_mode = ringflow::WalMode::interval;
  c.wal_dir = "/var/lib/a \"quoted\" \\ dir";  // the writer escapes quotes and backslashes
  c.wal_segment_bytes = std::size_t{8} << 20;
  c.wal_interval = std::chrono::milliseconds{25};
  c.wal_key_env = "ORDERS_WAL_KEY";
  c.wal_retention_bytes = std::uint64_t{1} << 30;
  c.wal_retention_age = std::chrono::milliseconds{86'400'000};
  c.handler_watchdog = std::chrono::milliseconds{750};
  c.pin_threads = false;
  c.metrics_latency_sample_every = 8;
  return c;
}

TEST(ConfigWriter, DefaultsRoundTrip) {
  const EngineConfig d;
  const EngineConfig back = ringflow::parse_config(config_to_toml(d));
  expect_same(back, d);
  EXPECT_TRUE(configs_equal(back, d));
}

TEST(ConfigWriter, EveryFieldRoundTrips) {
  const EngineConfig c = every_field_changed();
  const std::string text = config_to_toml(c, "# a header\n# two lines\n");
  const EngineConfig back = ringflow::parse_config(text);
  expect_same(back, c);
  EXPECT_TRUE(configs_equal(back, c));
  EXPECT_FALSE(configs_equal(back, EngineConfig{}));
  EXPECT_EQ(text.rfind("# a header\n# two lines\n", 0), 0u);
}

TEST(ConfigWriter, WritesEveryKnownKeyAndNothingElse) {
  const toml::table t = toml::parse(config_to_toml(EngineConfig{}));
  std::set<std::string> written;
  for (const auto& [sec, node] : t) {
    ASSERT_TRUE(node.is_table()) << sec.str();
    for (const auto& [key, value] : *node.as_table())
      written.insert(std::string(sec.str()) + "." + std::string(key.str()));
  }
  std::set<std::string> known;
  for (const auto k : ringflow::known_config_keys())
    known.emplace(k);
  EXPECT_EQ(written, known);
}

TEST(ConfigWriter, TheShippedDefaultConfigRoundTrips) {
  const EngineConfig shipped =
      ringflow::load_config(std::string(RINGFLOW_SOURCE_DIR) + "/configs/default.toml");
  expect_same(ringflow::parse_config(config_to_toml(shipped)), shipped);
}

TEST(ConfigWriter, DiffNamesTheChangedKeys) {
  EngineConfig b;
  b.batch_size = 64;
  b.wait_strategy = ringflow::WaitStrategyKind::busy_spin;
  EXPECT_EQ(config_diff(EngineConfig{}, b),
            "rings.batch_size: 256 -> 64\nrings.wait_strategy: \"spin_yield\" -> \"busy_spin\"\n");
  EXPECT_EQ(config_diff(b, b), "");
}

TEST(TuneCandidates, PlacementsOnTwoCoresShareTheProducersCoreAndSaySo) {
  const auto p = tune_placements(2, 0);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].shards, 1u);
  EXPECT_EQ(p[0].shard_cores, (std::vector<int>{1}));
  EXPECT_EQ(p[0].workers_per_shard, 0u);
  EXPECT_EQ(p[1].shards, 2u);
  EXPECT_EQ(p[1].shard_cores, (std::vector<int>{1, 0}));
  EXPECT_NE(p[1].label.find("producer"), std::string::npos);
  EXPECT_EQ(p[2].workers_per_shard, 1u);
  EXPECT_EQ(p[2].graph_cores, (std::vector<int>{0}));
}

TEST(TuneCandidates, PlacementsOnFourCoresAvoidTheProducersCore) {
  const auto p = tune_placements(4, 0);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[1].shard_cores, (std::vector<int>{1, 2}));
  EXPECT_EQ(p[2].shard_cores, (std::vector<int>{1}));
  EXPECT_EQ(p[2].graph_cores, (std::vector<int>{2}));
  for (const auto& x : p)
    EXPECT_EQ(x.label.find("producer"), std::string::npos) << x.label;
  EXPECT_EQ(tune_placements(1, 0).size(), 1u);
}

TEST(TuneCandidates, StagedSweep) {
  TuneSpace space;
  space.placements = tune_placements(2, 0);
  const EngineConfig base;  // the defaults: stage 1 keeps its batch size and capacity
  const auto s1 = tune_stage1(base, space, TuneGrid::staged);
  ASSERT_EQ(s1.size(), 9u);  // 3 waits x 3 placements
  std::set<std::string> labels;
  for (const auto& c : s1) {
    EXPECT_EQ(c.cfg.batch_size, base.batch_size);
    EXPECT_EQ(c.cfg.ring_capacity, base.ring_capacity);
    EXPECT_EQ(c.cfg.shard_cores.size(), c.cfg.shards);
    EXPECT_GE(c.cfg.partitions, c.cfg.shards);
    labels.insert(c.label);
  }
  EXPECT_EQ(labels.size(), s1.size());
  EXPECT_EQ(s1[0].label, "busy_spin batch 256 cap " + std::to_string(base.ring_capacity) +
                             " | 1 shard on core 1");

  const auto s2 = tune_stage2(s1[4], space);  // spin_yield, 2 shards
  ASSERT_EQ(s2.size(), 15u);                  // 5 batches x 3 capacities, all batch <= cap
  for (const auto& c : s2) {
    EXPECT_EQ(c.cfg.wait_strategy, s1[4].cfg.wait_strategy);
    EXPECT_EQ(c.cfg.shards, 2u);
    EXPECT_LE(c.cfg.batch_size, c.cfg.ring_capacity);
    EXPECT_NE(c.label.find("| 2 shards on cores 1,0"), std::string::npos) << c.label;
  }
  // Every candidate is a config the engine accepts on a 2-core machine.
  const auto topo = ringflow::Topology::uniform(1, 1, 2, 1);
  for (const auto& c : s1)
    EXPECT_TRUE(ringflow::check_config(c.cfg, topo).empty()) << c.label;
  for (const auto& c : s2)
    EXPECT_TRUE(ringflow::check_config(c.cfg, topo).empty()) << c.label;
}

TEST(TuneCandidates, FullGridSkipsBatchesLargerThanTheRing) {
  TuneSpace space;
  space.placements = tune_placements(2, 0);
  space.capacities = {64, 4096};
  const auto all = tune_stage1(EngineConfig{}, space, TuneGrid::full);
  // capacity 64 takes batches 32 and 64; 4096 takes all 5: 7 x 3 waits x 3 placements.
  EXPECT_EQ(all.size(), 63u);
  for (const auto& c : all)
    EXPECT_LE(c.cfg.batch_size, c.cfg.ring_capacity);
}

TEST(TuneRanking, LatencyByP999ThenP99FailuresAndLossLast) {
  auto score = [](std::uint64_t p999_value, std::uint64_t tail_value, std::uint64_t lost) {
    TuneScore s;
    s.windows = 1;
    s.lost = lost;
    s.latency.record_n(1'000, 9'980);
    s.latency.record_n(p999_value, 15);
    s.latency.record_n(tail_value, 5);
    return s;
  };
  // 10,000 samples: p99 is the 9,900th (1 µs), p99.9 the 9,990th (p999_value), max the tail.
  const TuneScore a = score(20'000, 50'000, 0);
  const TuneScore b = score(30'000, 40'000, 0);
  EXPECT_TRUE(tune_better(a, b, TuneObjective::latency));
  EXPECT_FALSE(tune_better(b, a, TuneObjective::latency));
  const TuneScore lossy = score(10'000, 10'000, 5);
  EXPECT_TRUE(tune_better(b, lossy, TuneObjective::latency));
  TuneScore failed = score(1'000, 1'000, 0);
  failed.error = "boom";
  EXPECT_TRUE(tune_better(lossy, failed, TuneObjective::latency));
  EXPECT_FALSE(tune_better(failed, lossy, TuneObjective::latency));
  EXPECT_FALSE(tune_better(a, a, TuneObjective::latency));
}

TEST(TuneRanking, ThroughputByEventsPerSecond) {
  TuneScore fast;
  fast.windows = 1;
  fast.achieved_eps = 2e7;
  TuneScore slow = fast;
  slow.achieved_eps = 1e7;
  EXPECT_TRUE(tune_better(fast, slow, TuneObjective::throughput));
  EXPECT_FALSE(tune_better(slow, fast, TuneObjective::throughput));
  slow.windows = 0;  // never measured
  EXPECT_TRUE(tune_better(fast, slow, TuneObjective::throughput));
}

}  // namespace
}  // namespace ringflow::bench
