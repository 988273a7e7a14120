#include "ringflow/config.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "ringflow/partition_log.hpp"
#include "ringflow/topology.hpp"

namespace {

using ringflow::check_config;
using ringflow::ConfigError;
using ringflow::ConfigIssue;
using ringflow::EngineConfig;
using ringflow::parse_config;
using ringflow::Topology;

// A 2-package machine with 4 cores each, so core checks do not depend on the host.
const Topology& two_socket() {
  static const Topology t = Topology::uniform(2, 1, 4, 1, "test 2x4");
  return t;
}

std::vector<ConfigIssue> parse_issues(std::string_view text) {
  try {
    (void)parse_config(text, "test.toml");
  } catch (const ConfigError& e) {
    return e.issues();
  }
  return {};
}

std::vector<ConfigIssue> check(std::string_view text, const Topology& topo = two_socket()) {
  return check_config(parse_config(text, "test.toml"), topo);
}

// Exactly one issue, on `key` at `line`, whose message contains `needle`.
void expect_one(const std::vector<ConfigIssue>& issues, std::string_view key, int line,
                std::string_view needle) {
  ASSERT_EQ(issues.size(), 1U) << (issues.empty() ? "no issue" : issues[0].to_string());
  const auto& i = issues[0];
  EXPECT_EQ(i.key, key);
  EXPECT_EQ(i.line, line) << i.to_string();
  EXPECT_EQ(i.source, "test.toml");
  EXPECT_NE(i.message.find(needle), std::string::npos) << i.to_string();
  const std::string text = i.to_string();
  EXPECT_NE(text.find("test.toml:" + std::to_string(line) + ": " + std::string(key)),
            std::string::npos)
      << text;
}

TEST(ConfigDefaults, DefaultStructIsValidOnThisMachineIfTwoCores) {
  const EngineConfig cfg;
  if (Topology::machine().cores().size() < 2) GTEST_SKIP() << "fewer than 2 cores";
  EXPECT_TRUE(check_config(cfg, Topology::machine()).empty());
  EXPECT_NO_THROW(ringflow::validate(cfg, Topology::machine()));
}

TEST(ConfigDefaults, EmptyFileGivesDefaults) {
  const EngineConfig cfg = parse_config("", "empty.toml");
  const EngineConfig def;
  EXPECT_EQ(cfg.partitions, def.partitions);
  EXPECT_EQ(cfg.ring_capacity, def.ring_capacity);
  EXPECT_EQ(cfg.source, "empty.toml");
  EXPECT_TRUE(check_config(cfg, two_socket()).empty());
}

TEST(ConfigParse, EveryKeyIsRead) {
  const EngineConfig c = parse_config(R"(
[engine]
partitions = 16
max_producers = 4
max_payload_bytes = 100
max_topics = 10
[shards]
count = 2
cores = [1, 5]
exclusive_cores = true
[graph]
workers_per_shard = 1
cores = [2, 6]
[rings]
capacity = 1024
batch_size = 64
wait_strategy = "park"
urgent_ratio = 4
[backpressure]
policy = "spin"
timeout_us = 500
[memory]
numa = "on"
allocator = "system"
[log]
segment_bytes = 65536
retention_bytes = 1048576
retention_age_ms = 60000
[affinity]
pin_threads = false
[metrics]
latency_sample_every = 16
)",
                                      "full.toml");
  EXPECT_EQ(c.partitions, 16U);
  EXPECT_EQ(c.max_producers, 4U);
  EXPECT_EQ(c.max_payload_bytes, 100U);
  EXPECT_EQ(c.max_topics, 10U);
  EXPECT_EQ(c.shards, 2U);
  EXPECT_EQ(c.shard_cores, (std::vector<int>{1, 5}));
  EXPECT_TRUE(c.exclusive_cores);
  EXPECT_EQ(c.graph_workers_per_shard, 1U);
  EXPECT_EQ(c.graph_cores, (std::vector<int>{2, 6}));
  EXPECT_EQ(c.ring_capacity, 1024U);
  EXPECT_EQ(c.batch_size, 64U);
  EXPECT_EQ(c.wait_strategy, ringflow::WaitStrategyKind::park);
  EXPECT_EQ(c.urgent_ratio, 4U);
  EXPECT_EQ(c.backpressure, ringflow::BackpressurePolicy::spin);
  EXPECT_EQ(c.backpressure_timeout.count(), 500);
  EXPECT_EQ(c.numa, ringflow::NumaBinding::on);
  EXPECT_EQ(c.allocator, ringflow::AllocatorKind::system);
  EXPECT_EQ(c.segment_bytes, 65536U);
  EXPECT_EQ(c.retention_bytes, 1048576U);
  EXPECT_EQ(c.retention_age.count(), 60000);
  EXPECT_FALSE(c.pin_threads);
  EXPECT_EQ(c.metrics_latency_sample_every, 16U);
  EXPECT_EQ(c.line_of("rings.capacity"), 15);
  EXPECT_EQ(c.line_of("shards"), 7);
  EXPECT_TRUE(check_config(c, two_socket()).empty())
      << check_config(c, two_socket()).front().to_string();
  EXPECT_EQ(ringflow::known_config_keys().size(), 34U);
}

TEST(ConfigParse, WalKeysAreReadAndChecked) {
  const EngineConfig c = parse_config(R"(
[wal]
mode = "interval"
dir = "/var/lib/orders/wal"
segment_bytes = 8388608
interval_ms = 25
key_env = "ORDERS_WAL_KEY"
retention_bytes = 1073741824
retention_age_ms = 604800000
)",
                                      "wal.toml");
  EXPECT_EQ(c.wal_mode, ringflow::WalMode::interval);
  EXPECT_EQ(c.wal_dir, "/var/lib/orders/wal");
  EXPECT_EQ(c.wal_segment_bytes, 8388608U);
  EXPECT_EQ(c.wal_interval.count(), 25);
  EXPECT_EQ(c.wal_key_env, "ORDERS_WAL_KEY");
  EXPECT_EQ(c.wal_retention_bytes, 1073741824U);
  EXPECT_EQ(c.wal_retention_age.count(), 604800000);
  EXPECT_TRUE(check_config(c, two_socket()).empty());

  const auto problems = [](std::string_view toml) {
    std::string all;
    for (const auto& i : check_config(parse_config(toml, "bad.toml"), two_socket()))
      all += i.to_string() + "\n";
    return all;
  };
  EXPECT_NE(problems("[wal]\nmode = \"sync\"\n").find("needs wal.dir"), std::string::npos);
  EXPECT_NE(problems("[wal]\nmode = \"os\"\ndir = \"d\"\ninterval_ms = 0\n").find("interval_ms"),
            std::string::npos);
  EXPECT_NE(problems("[wal]\nmode = \"os\"\ndir = \"d\"\nkey_file = \"k\"\nkey_env = \"K\"\n")
                .find("not both"),
            std::string::npos);
  // Retention: 0 keeps everything; otherwise at least two segment files.
  EXPECT_TRUE(problems("[wal]\nmode = \"os\"\ndir = \"d\"\nretention_bytes = 0\n").empty());
  EXPECT_NE(problems("[wal]\nmode = \"os\"\ndir = \"d\"\nsegment_bytes = 1048576\n"
                     "retention_bytes = 2097151\n")
                .find("fewer than two segment files"),
            std::string::npos);
  EXPECT_TRUE(problems("[wal]\nmode = \"os\"\ndir = \"d\"\nsegment_bytes = 1048576\n"
                       "retention_bytes = 2097152\n")
                  .empty());
  EXPECT_THROW((void)parse_config("[wal]\nretention_age_ms = -1\n", "bad.toml"),
               ringflow::ConfigError);
  EngineConfig negative = parse_config("[wal]\nmode = \"os\"\ndir = \"d\"\n", "ok.toml");
  negative.wal_retention_age = std::chrono::milliseconds(-1);  // built in code, not parsed
  bool reported = false;
  for (const auto& i : check_config(negative, two_socket()))
    reported = reported || i.to_string().find("wal.retention_age_ms") != std::string::npos;
  EXPECT_TRUE(reported);
  EXPECT_NE(problems("[wal]\nkey_env = \"K\"\n").find("wal.mode is \"off\""), std::string::npos);
  EXPECT_THROW((void)parse_config("[wal]\nmode = \"fast\"\n", "bad.toml"), ringflow::ConfigError);
  EXPECT_THROW((void)parse_config("[wal]\ndir = 5\n", "bad.toml"), ringflow::ConfigError);
}

TEST(ConfigParse, MetricsSectionSetsLatencySampling) {
  EXPECT_EQ(EngineConfig{}.metrics_latency_sample_every, 64U);
  for (const std::uint32_t v : {0U, 1U, 64U, 1U << 24}) {
    const EngineConfig c =
        parse_config("[metrics]\nlatency_sample_every = " + std::to_string(v) + "\n", "m.toml");
    EXPECT_EQ(c.metrics_latency_sample_every, v);
    EXPECT_TRUE(check_config(c, two_socket()).empty()) << v;
  }
  expect_one(parse_issues("[metrics]\nlatency_sample_every = -1\n"), "metrics.latency_sample_every",
             2, "out of range: -1 (allowed 0..16777216)");
  expect_one(parse_issues("[metrics]\nlatency_sample_every = \"64\"\n"),
             "metrics.latency_sample_every", 2, "expected a non-negative integer, got a string");
  expect_one(parse_issues("[metrics]\nlatency_sample_every = 1.5\n"),
             "metrics.latency_sample_every", 2, "got a float");
  expect_one(parse_issues("[metrics]\nlatency_sample_every = 4294967296\n"),
             "metrics.latency_sample_every", 2, "out of range: 4294967296 (allowed 0..16777216)");
  expect_one(check("[metrics]\nlatency_sample_every = 16777217\n"), "metrics.latency_sample_every",
             2, "out of range: 16777217 (allowed 0..16777216)");
  expect_one(parse_issues("[metrics]\nlatency_sample = 64\n"), "metrics.latency_sample", 2,
             "did you mean 'metrics.latency_sample_every'?");
}

TEST(ConfigParse, SyntaxErrorNamesLine) {
  const auto issues = parse_issues("[rings]\ncapacity = 1024\nbatch_size = = 3\n");
  ASSERT_EQ(issues.size(), 1U);
  EXPECT_EQ(issues[0].line, 3);
  EXPECT_NE(issues[0].message.find("syntax"), std::string::npos) << issues[0].to_string();
}

TEST(ConfigParse, UnknownKeySuggestsNearest) {
  expect_one(parse_issues("[rings]\ncapasity = 1024\n"), "rings.capasity", 2,
             "did you mean 'rings.capacity'?");
}

TEST(ConfigParse, UnknownSectionSuggestsNearest) {
  expect_one(parse_issues("\n[ring]\ncapacity = 1024\n"), "ring", 2, "did you mean 'rings'?");
}

TEST(ConfigParse, TopLevelKeySuggestsDottedKey) {
  expect_one(parse_issues("capacity = 1024\n"), "capacity", 1, "did you mean 'rings.capacity'?");
}

TEST(ConfigParse, WrongTypes) {
  expect_one(parse_issues("[rings]\ncapacity = \"1024\"\n"), "rings.capacity", 2,
             "expected a non-negative integer, got a string");
  expect_one(parse_issues("[affinity]\npin_threads = \"yes\"\n"), "affinity.pin_threads", 2,
             "expected true or false");
  expect_one(parse_issues("[shards]\ncores = 3\n"), "shards.cores", 2, "expected an array");
  expect_one(parse_issues("[shards]\ncores = [1, \"x\"]\n"), "shards.cores", 2,
             "element [1]: expected an integer core index, got a string");
  expect_one(parse_issues("[rings]\ncapacity = 10.5\n"), "rings.capacity", 2, "got a float");
  expect_one(parse_issues("rings = 3\n"), "rings", 1, "must be a section");
}

TEST(ConfigParse, UnrepresentableValues) {
  expect_one(parse_issues("[engine]\npartitions = -1\n"), "engine.partitions", 2,
             "out of range: -1 (allowed 1..65536)");
  expect_one(parse_issues("[engine]\npartitions = 99999999999\n"), "engine.partitions", 2,
             "out of range: 99999999999 (allowed 1..65536)");
  expect_one(parse_issues("[shards]\ncores = [-2]\n"), "shards.cores", 2, "out of range");
  expect_one(parse_issues("[backpressure]\ntimeout_us = -5\n"), "backpressure.timeout_us", 2,
             "out of range: -5 (allowed 0..60000000)");
  expect_one(parse_issues("[log]\nretention_age_ms = -5\n"), "log.retention_age_ms", 2,
             "must not be negative");
}

// A value the field cannot hold names the documented range, the same words check_config() uses
// for a value the field can hold: not the storage type's limit (4294967295).
TEST(ConfigParse, TooLargeValueNamesTheDocumentedRange) {
  const auto parsed = parse_issues("[engine]\nmax_topics = 4294967296\n");
  expect_one(parsed, "engine.max_topics", 2, "out of range: 4294967296 (allowed 1..1048576)");
  EXPECT_EQ(parsed[0].message.find("4294967295"), std::string::npos) << parsed[0].to_string();
  expect_one(check("[engine]\nmax_topics = 2000000\n"), "engine.max_topics", 2,
             "out of range: 2000000 (allowed 1..1048576)");
  expect_one(check("[rings]\ncapacity = 2199023255552\n"), "rings.capacity", 2,
             "(allowed 2..16777216)");
  expect_one(check("[log]\nretention_bytes = 9223372036854775807\n"), "log.retention_bytes", 2,
             "(allowed 0..1125899906842624)");
}

// TOML integers are 64-bit: a longer one is a syntax error, which names the key and its line.
TEST(ConfigParse, IntegerOverflowNamesTheKey) {
  const auto issues =
      parse_issues("# engine\n[engine]\nmax_topics = 16\npartitions = 99999999999999999999\n");
  ASSERT_EQ(issues.size(), 1U);
  EXPECT_EQ(issues[0].key, "engine.partitions") << issues[0].to_string();
  EXPECT_EQ(issues[0].line, 4) << issues[0].to_string();
  EXPECT_NE(issues[0].to_string().find("test.toml:4: engine.partitions: "), std::string::npos)
      << issues[0].to_string();
  // A syntax error that is not on a `key = value` line has no key.
  const auto header = parse_issues("[engine\n");
  ASSERT_EQ(header.size(), 1U);
  EXPECT_EQ(header[0].key, "") << header[0].to_string();
}

TEST(ConfigParse, EveryBadArrayElementIsReported) {
  const auto issues = parse_issues("[shards]\ncores = [1, \"two\", -3, 4.5, 5]\n");
  ASSERT_EQ(issues.size(), 3U);
  const char* expected[] = {"element [1]: expected an integer core index, got a string",
                            "element [2]: core index -3 is out of range",
                            "element [3]: expected an integer core index, got a float"};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(issues[i].key, "shards.cores");
    EXPECT_EQ(issues[i].line, 2);
    EXPECT_NE(issues[i].message.find(expected[i]), std::string::npos) << issues[i].to_string();
  }
  // Written over several lines, each element names its own line.
  const auto multi = parse_issues("[graph]\ncores = [\n  1,\n  -1,\n  2,\n  \"x\",\n]\n");
  ASSERT_EQ(multi.size(), 2U);
  EXPECT_EQ(multi[0].line, 4) << multi[0].to_string();
  EXPECT_EQ(multi[1].line, 6) << multi[1].to_string();
}

TEST(ConfigParse, UnknownEnumWordListsChoices) {
  expect_one(parse_issues("[rings]\nwait_strategy = \"spin\"\n"), "rings.wait_strategy", 2,
             "\"busy_spin\", \"spin_yield\", \"park\"");
  expect_one(parse_issues("[memory]\nnuma = \"yes\"\n"), "memory.numa", 2,
             "\"off\", \"on\", \"auto\"");
  expect_one(parse_issues("[memory]\nallocator = \"tcmalloc\"\n"), "memory.allocator", 2,
             "\"system\", \"jemalloc\"");
  expect_one(parse_issues("[backpressure]\npolicy = \"drop\"\n"), "backpressure.policy", 2,
             "\"fail_fast\"");
}

TEST(ConfigParse, ReportsAllProblemsNotJustTheFirst) {
  const auto issues = parse_issues(
      "[rings]\ncapasity = 1\nbatch_size = \"x\"\n[memory]\nnuma = \"maybe\"\n[bogus]\na = 1\n");
  ASSERT_EQ(issues.size(), 4U);
  EXPECT_EQ(issues[0].line, 2);
  EXPECT_EQ(issues[1].line, 3);
  EXPECT_EQ(issues[2].line, 5);
  EXPECT_EQ(issues[3].line, 6);
  try {
    (void)parse_config(
        "[rings]\ncapasity = 1\nbatch_size = \"x\"\n[memory]\nnuma = \"maybe\"\n[bogus]\na = 1\n",
        "test.toml");
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("4 problems"), std::string::npos) << what;
    EXPECT_NE(what.find("test.toml:5: memory.numa"), std::string::npos) << what;
  }
}

TEST(ConfigCheck, RingCapacityNotPowerOfTwoNamesTheFix) {
  expect_one(check("[rings]\ncapacity = 1000\nbatch_size = 100\n"), "rings.capacity", 2,
             "not a power of two; use 1024");
}

TEST(ConfigCheck, OutOfRangeValues) {
  expect_one(check("[engine]\npartitions = 0\n"), "engine.partitions", 2, "out of range");
  expect_one(check("[shards]\ncount = 0\n"), "shards.count", 2, "out of range");
  expect_one(check("[rings]\ncapacity = 1\nbatch_size = 1\n"), "rings.capacity", 2, "out of range");
  expect_one(check("[rings]\nurgent_ratio = 0\n"), "rings.urgent_ratio", 2, "out of range");
  expect_one(check("[graph]\nworkers_per_shard = 1000\n"), "graph.workers_per_shard", 2,
             "out of range");
  expect_one(check("[log]\nsegment_bytes = 100\n"), "log.segment_bytes", 2, "out of range");
  expect_one(check("[engine]\nmax_payload_bytes = 4096\n"), "engine.max_payload_bytes", 2,
             "inline");
}

TEST(ConfigCheck, CoreThatDoesNotExist) {
  expect_one(check("[shards]\ncount = 1\ncores = [12]\n"), "shards.cores", 3,
             "core 12 does not exist");
  expect_one(check("[graph]\nworkers_per_shard = 1\ncores = [8]\n"), "graph.cores", 3,
             "core 8 does not exist");
}

TEST(ConfigCheck, ShardCoresCountMustMatchShards) {
  expect_one(check("[shards]\ncount = 2\ncores = [1]\n"), "shards.cores", 3,
             "lists 1 core(s) but shards.count = 2");
  expect_one(check("[graph]\nworkers_per_shard = 2\ncores = [1]\n"), "graph.cores", 3,
             "lists 1 core(s)");
}

TEST(ConfigCheck, TwoPinnedRolesOnOneExclusiveCore) {
  expect_one(check("[shards]\ncount = 2\ncores = [3, 3]\nexclusive_cores = true\n"), "shards.cores",
             3, "core 3 is given to both shard 0 and shard 1");
  expect_one(check("[shards]\ncores = [2]\nexclusive_cores = true\n[graph]\n"
                   "workers_per_shard = 1\ncores = [2]\n"),
             "graph.cores", 6, "core 2 is given to both shard 0 and graph worker 0.0");
  // Sharing is fine without exclusive_cores, and exclusivity is moot with pinning off.
  EXPECT_TRUE(check("[shards]\ncount = 2\ncores = [3, 3]\n").empty());
  EXPECT_TRUE(check("[shards]\ncount = 2\ncores = [3, 3]\nexclusive_cores = true\n"
                    "[affinity]\npin_threads = false\n")
                  .empty());
}

TEST(ConfigCheck, ExclusiveNeedsEnoughCores) {
  expect_one(check("[engine]\npartitions = 16\n[shards]\ncount = 3\nexclusive_cores = true\n"
                   "[graph]\nworkers_per_shard = 2\n"),
             "shards.exclusive_cores", 5, "9 pinned threads");
}

TEST(ConfigCheck, MoreShardsThanPartitions) {
  expect_one(check("[engine]\npartitions = 2\n[shards]\ncount = 3\n"), "shards.count", 4,
             "raise engine.partitions to at least 3");
}

TEST(ConfigCheck, BatchLargerThanRing) {
  expect_one(check("[rings]\ncapacity = 64\nbatch_size = 128\n"), "rings.batch_size", 3,
             "larger than rings.capacity (64)");
}

TEST(ConfigCheck, RetentionUnderTwoSegments) {
  expect_one(check("[log]\nsegment_bytes = 1048576\nretention_bytes = 1048576\n"),
             "log.retention_bytes", 3, "fewer than two segments");
}

TEST(ConfigCheck, SegmentMustHoldABatchOfLargestRecords) {
  expect_one(check("[rings]\nbatch_size = 256\n[log]\nsegment_bytes = 16384\n"),
             "log.segment_bytes", 4, "cannot hold one batch");
}

TEST(ConfigCheck, PayloadTooLargeForSegment) {
  // The inline-payload limit keeps parsed files far below a segment; a config filled in code
  // can still get there, and then both problems are named.
  EngineConfig cfg;
  cfg.source = "test.toml";
  cfg.key_lines["engine.max_payload_bytes"] = 4;
  cfg.max_payload_bytes = 100000;
  cfg.segment_bytes = 4096;
  cfg.retention_bytes = 8192;
  cfg.batch_size = 1;
  const auto issues = check_config(cfg, two_socket());
  ASSERT_EQ(issues.size(), 2U);
  for (const auto& i : issues) {
    EXPECT_EQ(i.key, "engine.max_payload_bytes");
    EXPECT_EQ(i.line, 4);
  }
  EXPECT_NE(issues[1].message.find("does not fit in one log segment"), std::string::npos)
      << issues[1].to_string();
}

TEST(ConfigCheck, ZeroTimeoutWithWaitingPolicy) {
  expect_one(check("[backpressure]\npolicy = \"park\"\ntimeout_us = 0\n"),
             "backpressure.timeout_us", 3, "never wait");
}

TEST(ConfigCheck, AllProblemsNotJustTheFirst) {
  const auto issues = check(
      "[engine]\npartitions = 1\n[shards]\ncount = 2\ncores = [1, 99]\n"
      "[rings]\ncapacity = 100\nbatch_size = 200\n[log]\nsegment_bytes = 8192\n"
      "retention_bytes = 4096\n");
  // shards > partitions, core 99, capacity not 2^k, batch > capacity, retention under two
  // segments, segment too small for a batch.
  ASSERT_EQ(issues.size(), 6U);
  for (const auto& i : issues)
    EXPECT_GT(i.line, 0) << i.to_string();
  try {
    ringflow::validate(parse_config("[rings]\ncapacity = 100\nbatch_size = 200\n", "v.toml"),
                       two_socket());
    FAIL() << "validate should throw";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.issues().size(), 2U);
  }
}

TEST(ConfigCheck, CodeFilledConfigHasNoLine) {
  EngineConfig cfg;
  cfg.ring_capacity = 100;
  cfg.batch_size = 64;
  const auto issues = check_config(cfg, two_socket());
  ASSERT_EQ(issues.size(), 1U);
  EXPECT_EQ(issues[0].line, 0);
  EXPECT_EQ(issues[0].to_string().rfind("<code>: rings.capacity: ", 0), 0U)
      << issues[0].to_string();
}

TEST(ConfigLoad, MissingFileIsAConfigError) {
  try {
    (void)ringflow::load_config("/nonexistent/ringflow.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos) << e.what();
  }
}

TEST(ConfigLoad, ShippedDefaultParsesAndValidatesOnThisMachine) {
  const auto cfg =
      ringflow::load_config(std::filesystem::path(RINGFLOW_SOURCE_DIR) / "configs/default.toml");
  EXPECT_GE(cfg.key_lines.size(), 24U) << "default.toml should set every key";
  if (Topology::machine().cores().size() < 2) GTEST_SKIP() << "needs >= 2 cores";
  const auto issues = check_config(cfg, Topology::machine());
  EXPECT_TRUE(issues.empty()) << issues.front().to_string();
}

TEST(ConfigLoad, ShippedTwoSocketExampleValidatesOnSynthetic2Package) {
  const auto cfg = ringflow::load_config(std::filesystem::path(RINGFLOW_SOURCE_DIR) /
                                         "configs/example-2socket.toml");
#if defined(RINGFLOW_HAVE_HWLOC)
  const Topology topo = Topology::from_synthetic("pack:2 numa:1 core:8 pu:2");
#else
  const Topology topo = Topology::uniform(2, 1, 8, 2);
#endif
  const auto issues = check_config(cfg, topo);
  EXPECT_TRUE(issues.empty()) << issues.front().to_string();
  EXPECT_TRUE(cfg.exclusive_cores);
}

// A scratch directory for one test, removed after it.
class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ringflow_config_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The message of the ConfigError that load_config(path) throws ("" and a failure if none).
  static std::string load_error(const std::filesystem::path& path) {
    try {
      (void)ringflow::load_config(path);
      ADD_FAILURE() << "load_config(" << path << ") did not throw";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.issues().size(), 1U);
      EXPECT_EQ(e.issues().front().source, path.string());
      return e.what();
    }
    return {};
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigFileTest, DirectoryIsRefusedNotReadAsDefaults) {
  const std::string what = load_error(dir_);
  EXPECT_NE(what.find("is a directory, not a regular file"), std::string::npos) << what;
}

// Opening a FIFO for reading blocks until a writer comes: load_config must refuse it without
// opening it. Bounded: should it block, the test opens the FIFO for writing to release it.
TEST_F(ConfigFileTest, FifoIsRefusedWithoutBlocking) {
  const std::filesystem::path fifo = dir_ / "config.toml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  auto result = std::async(std::launch::async, [&] { return load_error(fifo); });
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "load_config blocked on a FIFO for 10 s";
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // lets the reader see EOF
    if (fd >= 0) ::close(fd);
  }
  const std::string what = result.get();
  EXPECT_NE(what.find("is a FIFO, not a regular file"), std::string::npos) << what;
}

// Devices never end: refused before any byte is read (not std::bad_alloc after gigabytes).
TEST_F(ConfigFileTest, DevicesAreRefused) {
  for (const char* dev : {"/dev/zero", "/dev/urandom", "/dev/null"}) {
    if (!std::filesystem::exists(dev)) continue;
    const std::string what = load_error(dev);
    EXPECT_NE(what.find("is a character device, not a regular file"), std::string::npos) << what;
  }
}

TEST_F(ConfigFileTest, FileOverTheSizeLimitIsRefused) {
  const std::string comment_line = "#" + std::string(62, 'x') + "\n";  // 64 bytes
  auto write = [&](const std::filesystem::path& p, std::size_t bytes) {
    std::ofstream out(p, std::ios::binary);
    out << "[engine]\npartitions = 4\n";
    std::size_t n = 24;
    while (n + comment_line.size() <= bytes) {
      out << comment_line;
      n += comment_line.size();
    }
    out << std::string(bytes - n, '\n');
  };
  const std::filesystem::path at_limit = dir_ / "at_limit.toml";
  write(at_limit, ringflow::kMaxConfigFileBytes);
  ASSERT_EQ(std::filesystem::file_size(at_limit), ringflow::kMaxConfigFileBytes);
  EXPECT_EQ(ringflow::load_config(at_limit).partitions, 4U);

  const std::filesystem::path over = dir_ / "over.toml";
  write(over, ringflow::kMaxConfigFileBytes + 1);
  const std::string what = load_error(over);
  EXPECT_NE(what.find("may be at most 1 MiB (1048576 bytes)"), std::string::npos) << what;
}

TEST_F(ConfigFileTest, SymlinkToARegularFileIsRead) {
  const std::filesystem::path real = dir_ / "real.toml";
  std::ofstream(real) << "[shards]\ncount = 1\n";
  std::filesystem::create_symlink(real, dir_ / "link.toml");
  EXPECT_EQ(ringflow::load_config(dir_ / "link.toml").shards, 1U);
}

// docs/configuration.md states the bound check_config() enforces between log.segment_bytes and
// rings.batch_size: the same record size in both.
TEST(ConfigDocs, SegmentBatchBoundMatchesTheMessage) {
  const std::string record = std::to_string(ringflow::PartitionLog::kMaxRecordBytes);
  EngineConfig cfg;
  cfg.segment_bytes = 4096;
  cfg.retention_bytes = 8192;
  cfg.max_payload_bytes = 64;
  cfg.batch_size = 256;
  std::string message;
  for (const auto& i : check_config(cfg, two_socket())) {
    if (i.key == "log.segment_bytes") message = i.message;
  }
  EXPECT_NE(message.find("rings.batch_size 256 x " + record), std::string::npos) << message;

  std::ifstream doc(std::filesystem::path(RINGFLOW_SOURCE_DIR) / "docs/configuration.md");
  ASSERT_TRUE(doc) << "docs/configuration.md";
  std::string line;
  std::string row;
  bool size_limit_documented = false;
  while (std::getline(doc, line)) {
    if (line.rfind("| `log.segment_bytes`", 0) == 0) row = line;
    if (line.find("at most 1 MiB") != std::string::npos) size_limit_documented = true;
  }
  EXPECT_NE(row.find("`rings.batch_size` x " + record + " bytes"), std::string::npos) << row;
  EXPECT_TRUE(size_limit_documented) << "docs/configuration.md states the config file size limit";
}

TEST(ConfigLoad, EveryShippedConfigParses) {
  for (const auto& e : std::filesystem::directory_iterator(
           std::filesystem::path(RINGFLOW_SOURCE_DIR) / "configs")) {
    if (e.path().extension() != ".toml") continue;
    EXPECT_NO_THROW((void)ringflow::load_config(e.path())) << e.path();
  }
}

}  // namespace

namespace {

TEST(ConfigParse, PartialParseKeepsWhatParsedSoEveryProblemCanBeReported) {
  std::vector<ringflow::ConfigIssue> issues;
  const auto cfg = ringflow::parse_config_partial(
      "[rings]\ncapasity = 1000\nbatch_size = 99999\n[shards]\ncount = 3\n", "p.toml", issues);
  ASSERT_EQ(issues.size(), 1U);  // the unknown key
  EXPECT_EQ(issues[0].key, "rings.capasity");
  EXPECT_EQ(cfg.batch_size, 99999U);  // the rest parsed, so check_config can judge it
  EXPECT_EQ(cfg.shards, 3U);
  const auto more = ringflow::check_config(cfg, ringflow::Topology::uniform(1, 1, 2, 1));
  EXPECT_FALSE(more.empty());
  std::vector<ringflow::ConfigIssue> syntax;
  (void)ringflow::parse_config_partial("[rings\n", "s.toml", syntax);
  ASSERT_EQ(syntax.size(), 1U);
  EXPECT_NE(syntax[0].message.find("syntax"), std::string::npos);
}

}  // namespace
