#include "scrape.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>

namespace ringflow::prom {

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool fail(std::string* error, const std::string& why) {
  if (error != nullptr) *error = why;
  return false;
}

/// Waits until `fd` is ready for `events` or the deadline passes.
bool wait_fd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

}  // namespace

bool split_host_port(std::string_view address, std::string& host, std::uint16_t& port) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= address.size()) return false;
  host = std::string(address.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string p(address.substr(colon + 1));
  char* end = nullptr;
  const long v = std::strtol(p.c_str(), &end, 10);
  if (end == p.c_str() || *end != '\0' || v <= 0 || v > 65535) return false;
  port = static_cast<std::uint16_t>(v);
  return !host.empty();
}

std::optional<HttpResponse> http_get(const std::string& host, std::uint16_t port,
                                     const std::string& path, std::chrono::milliseconds timeout,
                                     std::string* error) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    fail(error, "cannot resolve " + host + ": " + ::gai_strerror(rc));
    return std::nullopt;
  }
  Fd s;
  std::string why = "no address for " + host;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    Fd c;
    c.fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (c.fd < 0) continue;
    if (::connect(c.fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      why = std::string("connect: ") + std::strerror(errno);
      continue;
    }
    if (!wait_fd(c.fd, POLLOUT, deadline)) {
      why = "connect timed out";
      continue;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      why = std::string("connect: ") + std::strerror(err);
      continue;
    }
    std::swap(s.fd, c.fd);
    break;
  }
  ::freeaddrinfo(res);
  if (s.fd < 0) {
    fail(error, why + " (" + host + ":" + service + ")");
    return std::nullopt;
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host + ":" + service +
                          "\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < req.size()) {
    if (!wait_fd(s.fd, POLLOUT, deadline)) {
      fail(error, "send timed out");
      return std::nullopt;
    }
    const ssize_t n = ::send(s.fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      fail(error, std::string("send: ") + std::strerror(errno));
      return std::nullopt;
    }
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  std::string raw;
  char buf[16384];
  for (;;) {
    if (!wait_fd(s.fd, POLLIN, deadline)) {
      fail(error, "receive timed out");
      return std::nullopt;
    }
    const ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      fail(error, std::string("recv: ") + std::strerror(errno));
      return std::nullopt;
    }
    raw.append(buf, static_cast<std::size_t>(n));
  }
  const std::size_t head_end = raw.find("\r\n\r\n");
  if (raw.compare(0, 5, "HTTP/") != 0 || head_end == std::string::npos) {
    fail(error, "not an HTTP response");
    return std::nullopt;
  }
  HttpResponse r;
  const std::size_t sp = raw.find(' ');
  r.status = std::atoi(raw.c_str() + sp + 1);
  std::string body = raw.substr(head_end + 4);
  // CivetWeb may answer HTTP/1.1 chunked even to 1.0 clients in some builds: undo it.
  std::string head = raw.substr(0, head_end);
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (head.find("transfer-encoding: chunked") != std::string::npos) {
    std::string out;
    std::size_t pos = 0;
    while (pos < body.size()) {
      const std::size_t eol = body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      const std::size_t n = std::strtoul(body.c_str() + pos, nullptr, 16);
      if (n == 0) break;
      out.append(body, eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    body = std::move(out);
  }
  r.body = std::move(body);
  return r;
}

std::vector<Sample> parse_text(std::string_view text) {
  std::vector<Sample> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
      line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto bad = [&](const char* why) {
      return std::invalid_argument("metrics line " + std::to_string(line_no) + ": " + why + ": " +
                                   std::string(line));
    };
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ')
      ++i;
    s.name = std::string(line.substr(0, i));
    if (s.name.empty()) throw bad("no metric name");
    if (i < line.size() && line[i] == '{') {
      ++i;
      for (;;) {
        while (i < line.size() && (line[i] == ',' || line[i] == ' '))
          ++i;
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        const std::size_t eq = line.find('=', i);
        if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"')
          throw bad("bad label");
        std::string key(line.substr(i, eq - i));
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value.push_back(line[j] == 'n' ? '\n' : line[j]);
          } else {
            value.push_back(line[j]);
          }
        }
        if (j >= line.size()) throw bad("unterminated label value");
        s.labels.emplace(std::move(key), std::move(value));
        i = j + 1;
      }
    }
    while (i < line.size() && line[i] == ' ')
      ++i;
    std::string_view v = line.substr(i);
    v = v.substr(0, v.find(' '));  // a timestamp may follow
    if (v == "+Inf") {
      s.value = std::numeric_limits<double>::infinity();
    } else if (v == "-Inf") {
      s.value = -std::numeric_limits<double>::infinity();
    } else {
      const std::string vs(v);
      char* end = nullptr;
      s.value = std::strtod(vs.c_str(), &end);
      if (vs.empty() || *end != '\0') throw bad("bad value");
    }
    out.push_back(std::move(s));
  }
  return out;
}

namespace {
bool matches(const Sample& s, std::string_view name, const std::map<std::string, std::string>& m) {
  if (s.name != name) return false;
  for (const auto& [k, v] : m) {
    const auto it = s.labels.find(k);
    if (it == s.labels.end() || it->second != v) return false;
  }
  return true;
}
}  // namespace

std::optional<double> Scrape::get(std::string_view name,
                                  const std::map<std::string, std::string>& match) const {
  for (const Sample& s : samples_)
    if (matches(s, name, match)) return s.value;
  return std::nullopt;
}

double Scrape::sum(std::string_view name, const std::map<std::string, std::string>& match) const {
  double total = 0;
  for (const Sample& s : samples_)
    if (matches(s, name, match)) total += s.value;
  return total;
}

std::vector<std::string> Scrape::label_values(std::string_view name,
                                              const std::string& label) const {
  std::set<std::string> out;
  for (const Sample& s : samples_) {
    if (s.name != name) continue;
    const auto it = s.labels.find(label);
    if (it != s.labels.end()) out.insert(it->second);
  }
  return {out.begin(), out.end()};
}

std::vector<std::pair<double, double>> Scrape::buckets(
    std::string_view base, const std::map<std::string, std::string>& match) const {
  const std::string name = std::string(base) + "_bucket";
  std::map<double, double> by_le;
  for (const Sample& s : samples_) {
    if (!matches(s, name, match)) continue;
    const auto it = s.labels.find("le");
    if (it == s.labels.end()) continue;
    const double le = it->second == "+Inf" ? std::numeric_limits<double>::infinity()
                                           : std::strtod(it->second.c_str(), nullptr);
    by_le[le] += s.value;
  }
  return {by_le.begin(), by_le.end()};
}

std::optional<double> quantile(const std::vector<std::pair<double, double>>& cumulative, double q) {
  if (cumulative.empty() || cumulative.back().second <= 0) return std::nullopt;
  const double rank = q * cumulative.back().second;
  double prev_le = 0;
  double prev_count = 0;
  for (const auto& [le, count] : cumulative) {
    if (count >= rank && count > prev_count) {
      if (std::isinf(le)) return prev_le;
      return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count);
    }
    prev_le = le;
    prev_count = count;
  }
  return prev_le;
}

}  // namespace ringflow::prom
