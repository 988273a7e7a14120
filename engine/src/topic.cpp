#include "ringflow/topic.hpp"

namespace ringflow {

namespace {

bool segment_char_ok(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// `s` for an error message: bytes outside printable ASCII as \xNN, so that a name holding a
// NUL or control byte neither cuts what() short nor garbles a terminal.
std::string printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

std::string check(std::string_view s, bool pattern, std::size_t max_bytes) {
  const char* what = pattern ? "pattern" : "topic name";
  if (s.empty()) return std::string(what) + " is empty";
  if (s.size() > max_bytes) {
    return std::string(what) + " '" + printable(s.substr(0, 32)) + "...' is " +
           std::to_string(s.size()) + " bytes long; the limit is " + std::to_string(max_bytes);
  }
  std::size_t start = 0;
  std::size_t seg_no = 1;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    const std::string_view seg =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    const std::string where = " in " + std::string(what) + " '" + printable(s) + "' (segment " +
                              std::to_string(seg_no) + ")";
    if (seg.empty()) return "empty segment" + where + ": use '.' only between segments";
    if (seg.size() > kMaxTopicSegmentBytes) {
      return "segment longer than " + std::to_string(kMaxTopicSegmentBytes) + " bytes" + where;
    }
    const bool last = dot == std::string_view::npos;
    if (pattern && seg == "*") {
      // one-segment wildcard: fine anywhere
    } else if (pattern && seg == ">") {
      if (!last) return "'>' must be the last segment" + where;
    } else {
      for (const char c : seg) {
        if (!segment_char_ok(c)) {
          std::string msg = "character '" + printable(std::string_view(&c, 1)) + "' not allowed" +
                            where + ": use letters, digits, '_' and '-'";
          if (!pattern && (c == '*' || c == '>')) msg += " (wildcards only in subscriptions)";
          return msg;
        }
      }
    }
    if (last) return {};
    start = dot + 1;
    ++seg_no;
  }
}

}  // namespace

std::string check_topic_name(std::string_view name) {
  return check(name, false, kMaxTopicNameBytes);
}
std::string check_dead_letter_topic_name(std::string_view name) {
  return check(name, false, kMaxDeadLetterTopicNameBytes);
}
std::string check_topic_pattern(std::string_view pattern) {
  return check(pattern, true, kMaxDeadLetterTopicNameBytes);
}

bool topic_matches(std::string_view pattern, std::string_view name) noexcept {
  std::size_t p = 0;
  std::size_t n = 0;
  for (;;) {
    const std::size_t pd = pattern.find('.', p);
    const std::string_view pseg = pattern.substr(p, pd == std::string_view::npos ? pd : pd - p);
    if (pseg == ">") return n < name.size();  // one or more segments left
    const std::size_t nd = name.find('.', n);
    const std::string_view nseg = name.substr(n, nd == std::string_view::npos ? nd : nd - n);
    if (pseg != "*" && pseg != nseg) return false;
    const bool plast = pd == std::string_view::npos;
    const bool nlast = nd == std::string_view::npos;
    if (plast || nlast) return plast && nlast;
    p = pd + 1;
    n = nd + 1;
  }
}

bool pattern_covers(std::string_view grant, std::string_view pattern) noexcept {
  std::size_t g = 0;
  std::size_t p = 0;
  for (;;) {
    const std::size_t gd = grant.find('.', g);
    const std::size_t pd = pattern.find('.', p);
    const std::string_view gseg = grant.substr(g, gd == std::string_view::npos ? gd : gd - g);
    const std::string_view pseg = pattern.substr(p, pd == std::string_view::npos ? pd : pd - p);
    if (gseg == ">") return true;   // covers one or more remaining segments, whatever they are
    if (pseg == ">") return false;  // the pattern reaches further than a single-segment grant
    if (gseg != "*" && gseg != pseg) return false;  // '*' covers any one segment (and '*')
    const bool glast = gd == std::string_view::npos;
    const bool plast = pd == std::string_view::npos;
    if (glast || plast) return glast && plast;
    g = gd + 1;
    p = pd + 1;
  }
}

}  // namespace ringflow
