// Scenario files: the shipped ones parse; bad input names file, line, key and reason.

#include <gtest/gtest.h>

#include <string>

#include "harness/scenario.hpp"

namespace ringflow::bench {
namespace {

ScenarioError error_of(const std::string& text) {
  try {
    (void)parse_scenarios(text, "bad.toml");
  } catch (const ScenarioError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return ScenarioError("", 0, "", "");
}

TEST(Scenario, ShippedFilesParse) {
  for (const char* name : {"default.toml", "smoke.toml", "delivery.toml", "request_reply.toml"}) {
    const auto f = load_scenarios(std::string(RINGFLOW_SOURCE_DIR) + "/bench/scenarios/" + name);
    EXPECT_FALSE(f.scenarios.empty()) << name;
  }
}

TEST(Scenario, RequestReplyTakesRatesAndCallersOnly) {
  const auto f = parse_scenarios(R"(
[[scenario]]
kind = "request_reply"
)");
  ASSERT_EQ(f.scenarios.size(), 1u);
  EXPECT_EQ(f.scenarios[0].kind, ScenarioKind::request_reply);
  EXPECT_EQ(f.scenarios[0].rates, (std::vector<double>{10'000, 100'000}));
  EXPECT_EQ(f.scenarios[0].callers, (std::vector<unsigned>{1, 4}));
  const auto e = error_of("[[scenario]]\nkind = \"request_reply\"\nevents = 5\n");
  EXPECT_EQ(e.key(), "scenario[0].events");
  const auto c = error_of("[[scenario]]\nkind = \"max_throughput\"\ncallers = [1]\n");
  EXPECT_EQ(c.key(), "scenario[0].callers");
  const auto z = error_of("[[scenario]]\nkind = \"request_reply\"\ncallers = [0]\n");
  EXPECT_EQ(z.key(), "scenario[0].callers[0]");
}

TEST(Scenario, DefaultsCascadeFromRun) {
  const auto f = parse_scenarios(R"(
[run]
systems = ["mutex_queue"]
repeats = 2
worker_cores = [1]

[[scenario]]
kind = "latency_at_rate"
rates = [1000, 2e3]
duration_s = 1

[[scenario]]
name = "tp"
kind = "max_throughput"
repeats = 5
events = 1000
warmup_events = 10
)");
  ASSERT_EQ(f.scenarios.size(), 2u);
  const auto& a = f.scenarios[0];
  EXPECT_EQ(a.name, "latency_at_rate");
  EXPECT_EQ(a.kind, ScenarioKind::latency_at_rate);
  EXPECT_EQ(a.systems, std::vector<std::string>{"mutex_queue"});
  EXPECT_EQ(a.repeats, 2u);
  EXPECT_EQ(a.worker_cores, std::vector<int>{1});
  EXPECT_EQ(a.rates, (std::vector<double>{1000, 2000}));
  EXPECT_TRUE(a.is_latency());
  EXPECT_EQ(a.line, 7);
  EXPECT_EQ(f.scenarios[1].name, "tp");
  EXPECT_EQ(f.scenarios[1].repeats, 5u);
  EXPECT_FALSE(f.scenarios[1].is_latency());
}

TEST(Scenario, LatencyCurveExpandsGeometricRates) {
  const auto f = parse_scenarios(R"(
[[scenario]]
kind = "latency_curve"
rate_min = 1000
rate_max = 1000000
steps = 4
)");
  EXPECT_EQ(f.scenarios[0].rates, (std::vector<double>{1000, 10000, 100000, 1000000}));
}

TEST(Scenario, QuickScalesDown) {
  auto f = parse_scenarios("[[scenario]]\nkind = \"max_throughput\"\nevents = 1000000\n");
  make_quick(f);
  EXPECT_EQ(f.scenarios[0].repeats, 1u);
  EXPECT_EQ(f.scenarios[0].events, 100000u);
}

struct BadCase {
  const char* text;
  int line;
  const char* key;
  const char* reason_part;
};

TEST(Scenario, BadInputNamesFileLineKeyAndReason) {
  const BadCase cases[] = {
      {"[[scenario]]\nkind = \"max_througput\"\n", 2, "scenario[0].kind", "unknown kind"},
      {"[[scenario]]\nevents = 5\n", 1, "scenario[0].kind", "missing"},
      {"[[scenario]]\nkind = \"latency_at_rate\"\nrates = [1000, -5]\n", 3, "scenario[0].rates[1]",
       "must be > 0"},
      {"[[scenario]]\nkind = \"latency_at_rate\"\nrates = \"fast\"\n", 3, "scenario[0].rates",
       "expected an array"},
      {"[[scenario]]\nkind = \"latency_at_rate\"\n", 1, "scenario[0].rates", "missing"},
      {"[[scenario]]\nkind = \"max_throughput\"\nevnets = 10\n", 3, "scenario[0].evnets",
       "unknown key"},
      {"[[scenario]]\nkind = \"max_throughput\"\nrates = [1]\n", 3, "scenario[0].rates",
       "not used by a throughput run"},
      {"[[scenario]]\nkind = \"latency_at_rate\"\nrates = [1]\nevents = 10\n", 4,
       "scenario[0].events", "not used by a latency run"},
      {"[[scenario]]\nkind = \"max_throughput\"\nrepeats = 0\n", 3, "scenario[0].repeats",
       "between 1 and 100"},
      {"[[scenario]]\nkind = \"max_throughput\"\nrepeats = 1.5\n", 3, "scenario[0].repeats",
       "expected an integer"},
      {"[run]\nsystems = [\"kafka\"]\n[[scenario]]\nkind = \"max_throughput\"\n", 2,
       "run.systems[0]", "unknown system 'kafka'"},
      {"[run]\nsystems = [\"platform_control\"]\n[[scenario]]\nkind = \"max_throughput\"\n", 2,
       "run.systems[0]", "control = true"},
      {"[[scenario]]\nkind = \"fanout\"\nevents = 10\nwarmup_events = 1\n", 1,
       "scenario[0].subscribers", "missing"},
      {"[[scenario]]\nkind = \"latency_curve\"\nrate_min = 10\nrate_max = 5\nsteps = 3\n", 4,
       "scenario[0].rate_max", "greater than rate_min"},
      {"[[scenario]]\nkind = \"max_throughput\"\n[[scenario]]\nkind = \"max_throughput\"\n", 3,
       "scenario[1].name", "duplicate"},
      {"[[scenario]]\nkind = \"max_throughput\"\nevents = 10\nwarmup_events = 10\n", 4,
       "scenario[0].warmup_events", "smaller than events"},
      {"[[scenario]]\nkind = max_throughput\n", 2, "(syntax)", ""},
      {"[run]\nrepeats = 2\n", 1, "scenario", "nothing to run"},
      {"[runs]\nrepeats = 2\n", 1, "runs", "unknown top-level key"},
      {"[[scenario]]\nkind = \"max_throughput\"\nname = \"a/b\"\n", 3, "scenario[0].name",
       "letters, digits"},
      {"[[scenario]]\nkind = \"urgent_under_load\"\nrate = 0\n", 3, "scenario[0].rate",
       "must be > 0"},
      {"[[scenario]]\nkind = \"urgent_under_load\"\nrate = \"fast\"\n", 3, "scenario[0].rate",
       "expected a number"},
      {"[[scenario]]\nkind = \"urgent_under_load\"\nhandler_work_ns = -1\n", 3,
       "scenario[0].handler_work_ns", "between 0 and 1000000"},
      {"[[scenario]]\nkind = \"urgent_under_load\"\nhandler_work_ns = 0.5\n", 3,
       "scenario[0].handler_work_ns", "expected an integer"},
      {"[[scenario]]\nkind = \"urgent_under_load\"\nrates = [1000]\n", 3, "scenario[0].rates",
       "set rate"},
      {"[[scenario]]\nkind = \"urgent_under_load\"\nevents = 10\n", 3, "scenario[0].events",
       "not used"},
      {"[[scenario]]\nkind = \"latency_at_rate\"\nrates = [1]\nrate = 5\n", 4, "scenario[0].rate",
       "only kind urgent_under_load"},
      {"[[scenario]]\nkind = \"retry_dlq\"\nfail_share = 1.5\n", 3, "scenario[0].fail_share",
       "between 0 and 1"},
      {"[[scenario]]\nkind = \"retry_dlq\"\nretry_share = -0.1\n", 3, "scenario[0].retry_share",
       "between 0 and 1"},
      {"[[scenario]]\nkind = \"retry_dlq\"\nfail_share = \"5%\"\n", 3, "scenario[0].fail_share",
       "expected a number"},
      {"[[scenario]]\nkind = \"retry_dlq\"\nfail_share = 0.6\nretry_share = 0.6\n", 4,
       "scenario[0].retry_share", "must not exceed 1"},
      {"[[scenario]]\nkind = \"retry_dlq\"\ncontrol = true\n", 3, "scenario[0].control",
       "not used by kind retry_dlq"},
      {"[[scenario]]\nkind = \"max_throughput\"\nfail_share = 0.1\n", 3, "scenario[0].fail_share",
       "only kind retry_dlq"},
  };
  for (const auto& c : cases) {
    const ScenarioError e = error_of(c.text);
    EXPECT_EQ(e.file(), "bad.toml") << c.text;
    EXPECT_EQ(e.line(), c.line) << c.text << "\n-> " << e.what();
    EXPECT_EQ(e.key(), c.key) << c.text << "\n-> " << e.what();
    EXPECT_NE(e.reason().find(c.reason_part), std::string::npos) << c.text << "\n-> " << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("bad.toml:" + std::to_string(c.line) + ": ", 0), 0u)
        << e.what();
  }
}

TEST(Scenario, MissingFileIsAClearError) {
  try {
    (void)load_scenarios("/nonexistent/scenarios.toml");
    FAIL();
  } catch (const ScenarioError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/scenarios.toml"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
}

}  // namespace
}  // namespace ringflow::bench
