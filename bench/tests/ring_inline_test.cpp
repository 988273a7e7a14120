// ring_inline (the hand-written SpscRing pipeline control): every accepted event runs the same
// three stages exactly once, refusals are counted, shapes it does not have are reported
// unsupported, and ringflow-bench's runner writes its rows into summary.json. Behaviour only, no
// timing assertions.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/affinity.hpp"
#include "harness/baselines.hpp"
#include "harness/runner.hpp"
#include "harness/stages.hpp"

namespace ringflow::bench {
namespace {

std::unique_ptr<System> make_ring_inline() {
  std::string why;
  auto sys = make_system("ring_inline", why);
  EXPECT_NE(sys, nullptr) << why;
  return sys;
}

TEST(RingInline, IsAKnownSystem) {
  const auto known = known_systems();
  EXPECT_NE(std::find(known.begin(), known.end(), "ring_inline"), known.end());
  EXPECT_EQ(make_ring_inline()->name(), "ring_inline");
}

TEST(RingInline, ReportsShapesItDoesNotHaveAsUnsupported) {
  auto sys = make_ring_inline();
  RunSpec spec;
  EXPECT_EQ(sys->unsupported(spec), "");
  spec.producers = 2;
  EXPECT_NE(sys->unsupported(spec), "");
  spec = RunSpec{};
  spec.subscribers = 2;
  EXPECT_NE(sys->unsupported(spec), "");
  spec = RunSpec{};
  spec.partitions = 2;
  EXPECT_NE(sys->unsupported(spec), "");
}

TEST(RingInline, SinksComputeTheSameWorkAsTheStagesDirectly) {
  auto sys = make_ring_inline();
  RunSpec spec;
  spec.capacity = 64;  // small: the sender meets a full ring and retries
  sys->start(spec);
  auto sender = sys->make_sender(0);
  std::uint64_t refused = 0;
  for (std::uint64_t i = 0; i < 5'000; ++i) {
    while (!sender->send(make_event(i, 0, 0)))
      ++refused;
  }
  sys->drain();
  const SinkTotals t = sys->stop();
  EXPECT_EQ(t.sinks.processed, 5'000u);
  EXPECT_EQ(t.filtered, 0u);
  SinkState direct;
  for (std::uint64_t i = 0; i < 5'000; ++i)
    run_stages(direct, make_event(i, 0, 0).bytes.data());
  EXPECT_EQ(t.sinks.routed, direct.routed);
  (void)refused;  // any number is fine: it depends on the consumer's speed
}

TEST(RingInline, CorruptEventsAreFilteredAndAccounted) {
  auto sys = make_ring_inline();
  sys->start(RunSpec{});
  auto sender = sys->make_sender(0);
  BenchEvent bad = make_event(1, 0, 0);
  bad.bytes[30] ^= std::byte{0xFF};
  ASSERT_TRUE(sender->send(bad));
  ASSERT_TRUE(sender->send(make_event(2, 0, 0)));
  sys->drain();
  const SinkTotals t = sys->stop();
  EXPECT_EQ(t.filtered, 1u);
  EXPECT_EQ(t.sinks.processed, 1u);
}

TEST(RingInline, ThroughputTrialDeliversEveryEventOnce) {
  auto sys = make_ring_inline();
  RunSpec spec;
  spec.mode = RunMode::max_throughput;
  spec.capacity = 256;
  const auto r = run_throughput_trial(*sys, spec, 200'000, 10'000);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.events, 200'000u);
  EXPECT_GT(r.achieved_eps, 0.0);
}

TEST(RingInline, LatencyTrialRecordsOneSamplePerMeasuredEvent) {
  auto sys = make_ring_inline();
  RunSpec spec;
  spec.mode = RunMode::latency;
  spec.capacity = 1 << 16;
  const auto r = run_latency_trial(*sys, spec, 50'000, 0.1, 0.02);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.events + r.lost, 5'000u);
  EXPECT_EQ(r.latency.count(), r.events);
  EXPECT_LE(r.latency.value_at_percentile(50), r.latency.max());
}

/// ringflow-bench's runner on a tiny scenario file: ring_inline gets a max_throughput row and a
/// latency_at_rate row in summary.json, with the fields every other system's rows have.
TEST(RingInline, RunnerWritesItsRowsIntoSummaryJson) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ring_inline_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto cores = usable_cores();
  ASSERT_FALSE(cores.empty());
  {
    // capacity > every event the latency trial sends (12.5 k): nothing can be refused there,
    // however little CPU the consumer gets on a loaded machine; throughput trials retry refusals.
    std::ofstream f(dir / "s.toml");
    f << "[run]\nsystems = [\"ring_inline\", \"mutex_queue\"]\nrepeats = 1\ncapacity = 65536\n"
      << "[[scenario]]\nname = \"max_throughput\"\nkind = \"max_throughput\"\n"
      << "events = 100_000\nwarmup_events = 10_000\n"
      << "[[scenario]]\nname = \"latency_at_rate\"\nkind = \"latency_at_rate\"\n"
      << "rates = [50_000]\nduration_s = 0.2\nwarmup_s = 0.05\ncontrol = true\n";
  }
  RunnerOptions o;
  o.scenarios_file = dir / "s.toml";
  o.out_dir = dir / "out";
  o.progress = false;
  o.command_line = {"ringflow-bench", "--scenarios", o.scenarios_file.string()};
  EXPECT_EQ(run_benchmarks(o), 0);

  std::ifstream in(o.out_dir / "summary.json");
  ASSERT_TRUE(in.good());
  const auto rows = nlohmann::json::parse(in);
  ASSERT_TRUE(rows.is_array());
  int max_rows = 0;
  int latency_rows = 0;
  for (const auto& row : rows) {
    if (row.at("system") != "ring_inline") continue;
    EXPECT_EQ(row.at("lost"), 0u);
    EXPECT_GT(row.at("achieved_eps").get<double>(), 0.0);
    EXPECT_EQ(row.at("note").get<std::string>().find("ERROR"), std::string::npos);
    if (row.at("scenario") == "max_throughput") {
      ++max_rows;
      EXPECT_EQ(row.at("events"), 100'000u);
      EXPECT_TRUE(row.at("p50_ns").is_null());
    } else if (row.at("scenario") == "latency_at_rate") {
      ++latency_rows;
      EXPECT_EQ(row.at("offered_eps").get<double>(), 50'000.0);
      EXPECT_GT(row.at("events").get<std::uint64_t>(), 0u);
      EXPECT_LE(row.at("p50_ns").get<std::uint64_t>(), row.at("p99_ns").get<std::uint64_t>());
      EXPECT_LE(row.at("p99_ns").get<std::uint64_t>(), row.at("max_ns").get<std::uint64_t>());
      EXPECT_TRUE(row.at("histogram_csv").is_string());
    }
  }
  EXPECT_EQ(max_rows, 1);
  EXPECT_EQ(latency_rows, 1);
  std::ifstream meta_in(o.out_dir / "meta.json");
  const auto meta = nlohmann::json::parse(meta_in);
  bool placed = false;
  for (const auto& p : meta.at("pinning"))
    placed = placed || p.at("systems").contains("ring_inline");
  EXPECT_TRUE(placed);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ringflow::bench
