#include "harness/meta.hpp"

#include <oneapi/tbb/version.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "harness/affinity.hpp"

#ifndef RINGFLOW_BENCH_CXX_FLAGS
#define RINGFLOW_BENCH_CXX_FLAGS "unknown"
#endif
#ifndef RINGFLOW_BENCH_BUILD_TYPE
#define RINGFLOW_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef RINGFLOW_SOURCE_DIR
#define RINGFLOW_SOURCE_DIR "."
#endif

namespace ringflow::bench {
namespace {

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_-./=:,+") == std::string::npos) {
    return s;
  }
  std::string q = "'";
  for (const char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  q += '\'';
  return q;
}

/// stdout of `cmd`, trailing newlines and spaces removed; "" when it cannot run.
std::string run_command(const std::string& cmd) {
  std::string out;
  std::FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr)
    out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

std::string git(const std::string& args) {
  return run_command("git -C " + shell_quote(RINGFLOW_SOURCE_DIR) + " " + args + " 2>/dev/null");
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string command_text(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) {
    if (!cmd.empty()) cmd += ' ';
    cmd += shell_quote(a);
  }
  return cmd;
}

std::string git_revision() {
  return git("rev-parse HEAD");
}

bool git_dirty() {
  return !git("status --porcelain --untracked-files=no | head -1").empty();
}

std::string cores_text(const std::vector<int>& cores) {
  std::string s;
  for (std::size_t i = 0; i < cores.size(); ++i) {
    if (i != 0) s += ',';
    s += std::to_string(cores[i]);
  }
  return s;
}

Json build_and_machine() {
  const std::string rev = git_revision();
  Json j;
  j["git_revision"] = rev.empty() ? Json(nullptr) : Json(rev);
  j["git_dirty"] = rev.empty() ? Json(nullptr) : Json(git_dirty());
  j["compiler"] = compiler();
  j["cxx_flags"] = RINGFLOW_BENCH_CXX_FLAGS;
  j["build_type"] = RINGFLOW_BENCH_BUILD_TYPE;
  j["tbb_version"] = TBB_VERSION_STRING;
  j["cpu_model"] = cpu_model();
  j["cores_online"] = std::thread::hardware_concurrency();
  j["cores_usable"] = usable_cores();
  return j;
}

void write_json(const std::filesystem::path& path, const Json& j) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  // Invalid UTF-8 (a scenario file in another encoding) is replaced, not a reason to lose a run.
  out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  if (!out) throw std::runtime_error("cannot write '" + path.string() + "'");
}

}  // namespace ringflow::bench
