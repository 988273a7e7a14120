#pragma once
// A plain HTTP/1.0 GET over a TCP socket and a parser for the Prometheus text format: what
// ringflow-top and the endpoint's tests use to read /metrics without any other dependency.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringflow::prom {

struct HttpResponse {
  int status = 0;
  std::string body;
};

/// GET http://host:port/path with a bounded wait for connect, send and receive. On failure
/// returns nullopt and says why in `error` (if given).
std::optional<HttpResponse> http_get(const std::string& host, std::uint16_t port,
                                     const std::string& path, std::chrono::milliseconds timeout,
                                     std::string* error = nullptr);

struct Sample {
  std::string name;  ///< with its _bucket/_count/_sum suffix
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// The samples of a text-format scrape (comments skipped). Throws std::invalid_argument
/// naming the line for a malformed one.
std::vector<Sample> parse_text(std::string_view text);

/// Splits "host:port" (port required).
bool split_host_port(std::string_view address, std::string& host, std::uint16_t& port);

/// Helpers over a parsed scrape.
class Scrape {
 public:
  Scrape() = default;
  explicit Scrape(std::vector<Sample> s) : samples_(std::move(s)) {}
  /// The value of `name` whose labels include every pair of `match`; nullopt if none.
  [[nodiscard]] std::optional<double> get(
      std::string_view name, const std::map<std::string, std::string>& match = {}) const;
  /// Sum over every sample of `name` whose labels include `match`.
  [[nodiscard]] double sum(std::string_view name,
                           const std::map<std::string, std::string>& match = {}) const;
  /// The distinct values of `label` among samples of `name`, sorted.
  [[nodiscard]] std::vector<std::string> label_values(std::string_view name,
                                                      const std::string& label) const;
  /// Cumulative (le, count) buckets of histogram `base` (samples base_bucket matching `match`,
  /// summed over other labels), sorted by le.
  [[nodiscard]] std::vector<std::pair<double, double>> buckets(
      std::string_view base, const std::map<std::string, std::string>& match = {}) const;
  [[nodiscard]] const std::vector<Sample>& samples() const noexcept { return samples_; }

 private:
  std::vector<Sample> samples_;
};

/// The q-quantile from cumulative buckets (linear inside a bucket); nullopt when empty.
std::optional<double> quantile(const std::vector<std::pair<double, double>>& cumulative, double q);

}  // namespace ringflow::prom
