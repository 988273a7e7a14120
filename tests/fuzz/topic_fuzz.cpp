// Fuzz target: topic names and subscription patterns.
//
// The input is split at '\n' into up to three strings (a, b, c). The checkers must never throw
// (beyond allocation failure) and the matchers must obey these laws for valid inputs:
//   - a valid name is a valid pattern that matches itself and covers itself;
//   - a valid pattern covers itself; ">" covers every pattern;
//   - for a name n (a pattern without wildcards): topic_matches(p, n) == pattern_covers(p, n);
//   - covering is sound: pattern_covers(g, p) && topic_matches(p, n) => topic_matches(g, n);
//   - "<first k segments of p>.>" covers p when p has more than k segments;
//   - the name made from p by replacing each '*' with "x" and '>' with "x.y" matches p;
//   - a refusal's reason is printable ASCII (the input's bytes are escaped).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "ringflow/topic.hpp"

namespace {

using ringflow::check_dead_letter_topic_name;
using ringflow::check_topic_name;
using ringflow::check_topic_pattern;
using ringflow::pattern_covers;
using ringflow::topic_matches;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = s.find(sep, start);
    if (at == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, at - start));
    start = at + 1;
  }
}

std::string join(const std::vector<std::string_view>& segs, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) out += '.';
    out += segs[i];
  }
  return out;
}

/// A refusal's reason is printable ASCII: a NUL or control byte of the input must not cut
/// what() short or reach a terminal raw.
void check_reason(const std::string& why) {
  for (const char c : why) {
    RINGFLOW_FUZZ_CHECK(c >= 0x20 && c < 0x7f, "a reason holds a non-printable byte");
  }
}

void check_name(std::string_view n) {
  check_reason(check_topic_name(n));
  check_reason(check_dead_letter_topic_name(n));
  check_reason(check_topic_pattern(n));
  const bool valid = check_topic_name(n).empty();
  const bool valid_dlq = check_dead_letter_topic_name(n).empty();
  if (valid) {
    RINGFLOW_FUZZ_CHECK(n.size() <= ringflow::kMaxTopicNameBytes, "over-long name accepted");
    RINGFLOW_FUZZ_CHECK(valid_dlq, "a valid name is not a valid dead-letter topic name");
    RINGFLOW_FUZZ_CHECK(check_topic_pattern(n).empty(), "a valid name is not a valid pattern");
    RINGFLOW_FUZZ_CHECK(topic_matches(n, n), "a valid name does not match itself");
    RINGFLOW_FUZZ_CHECK(pattern_covers(n, n), "a valid name does not cover itself");
    RINGFLOW_FUZZ_CHECK(topic_matches(">", n), "'>' does not match a valid name");
    // Its dead-letter topic is always a valid dead-letter topic name.
    RINGFLOW_FUZZ_CHECK(check_dead_letter_topic_name(std::string(n) + ".dlq").empty(),
                        "a valid name has no valid dead-letter topic");
  }
  if (valid_dlq) {
    RINGFLOW_FUZZ_CHECK(n.size() <= ringflow::kMaxDeadLetterTopicNameBytes,
                        "over-long dead-letter topic name accepted");
  }
}

void check_pattern(std::string_view p) {
  if (!check_topic_pattern(p).empty()) return;
  RINGFLOW_FUZZ_CHECK(p.size() <= ringflow::kMaxDeadLetterTopicNameBytes,
                      "over-long pattern accepted");
  RINGFLOW_FUZZ_CHECK(pattern_covers(p, p), "a valid pattern does not cover itself");
  RINGFLOW_FUZZ_CHECK(pattern_covers(">", p), "'>' does not cover a valid pattern");

  const auto segs = split(p, '.');
  // Every shorter prefix followed by '>' covers the pattern.
  for (std::size_t k = 1; k < segs.size(); ++k) {
    if (segs[k - 1] == ">") break;
    const std::string grant = join(segs, k) + ".>";
    if (!check_topic_pattern(grant).empty()) continue;
    RINGFLOW_FUZZ_CHECK(pattern_covers(grant, p), "'<prefix>.>' does not cover the pattern");
  }

  // A concrete name made from the pattern matches it (when it is short enough to be valid).
  std::string name;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    if (i != 0) name += '.';
    if (segs[i] == "*") {
      name += 'x';
    } else if (segs[i] == ">") {
      name += "x.y";
    } else {
      name += segs[i];
    }
  }
  if (check_topic_name(name).empty()) {
    RINGFLOW_FUZZ_CHECK(topic_matches(p, name), "a pattern does not match its own instance");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto parts = split(in, '\n');
  parts.resize(3);  // missing parts are empty (an invalid name and pattern)
  const std::string_view a = parts[0];
  const std::string_view b = parts[1];
  const std::string_view c = parts[2];

  for (const auto s : {a, b, c}) {
    check_name(s);
    check_pattern(s);
  }

  const bool a_pat = check_topic_pattern(a).empty();
  const bool b_pat = check_topic_pattern(b).empty();
  const bool b_name = check_topic_name(b).empty();
  const bool c_name = check_topic_name(c).empty();

  if (a_pat && b_name) {
    RINGFLOW_FUZZ_CHECK(topic_matches(a, b) == pattern_covers(a, b),
                        "matching a name and covering it as a literal pattern disagree");
  }
  if (a_pat && b_pat && c_name && pattern_covers(a, b) && topic_matches(b, c)) {
    RINGFLOW_FUZZ_CHECK(topic_matches(a, c), "a covering grant does not match what it covers");
  }
  return 0;
}
