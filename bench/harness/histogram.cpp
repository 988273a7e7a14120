#include "harness/histogram.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

namespace ringflow::bench {

void Histogram::merge(const Histogram& other) noexcept {
  for (std::size_t b = 0; b < kBucketCount; ++b)
    counts_[b] += other.counts_[b];
  count_ += other.count_;
  overflow_ += other.overflow_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::reset() noexcept {
  counts_.fill(0);
  count_ = 0;
  overflow_ = 0;
  sum_ = 0.0;
  min_ = std::numeric_limits<std::uint64_t>::max();
  max_ = 0;
}

std::uint64_t Histogram::value_at_percentile(double pct) const noexcept {
  if (count_ == 0) return 0;
  pct = std::clamp(pct, 0.0, 100.0);
  // Rank of the sample asked for (1-based), as for exact sorted data: ceil(pct/100 * n), >= 1.
  auto rank = static_cast<std::uint64_t>(std::ceil(pct / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  if (rank == count_) return max_;  // exact, also for values clamped into the top bucket
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < kBucketCount; ++b) {
    cumulative += counts_[b];
    if (cumulative >= rank) return std::clamp(bucket_highest(b), min(), max_);
  }
  return max_;
}

double Histogram::percentile_below(std::uint64_t value_ns) const noexcept {
  if (count_ == 0) return 0.0;
  const std::size_t last = bucket_of(value_ns);
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b <= last; ++b)
    cumulative += counts_[b];
  return static_cast<double>(cumulative) / static_cast<double>(count_);
}

void Histogram::write_percentile_csv(const std::filesystem::path& path, int ticks_per_half) const {
  struct FileCloser {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, FileCloser> out(std::fopen(path.c_str(), "w"));
  if (!out) throw std::runtime_error("cannot write histogram CSV '" + path.string() + "'");
  std::fputs("value_ns,percentile,count,inverse\n", out.get());
  if (count_ == 0) return;
  ticks_per_half = std::max(ticks_per_half, 1);

  // Percentile levels as HdrHistogram iterates them: `ticks_per_half` equal steps between
  // 1 - 2^-h and 1 - 2^-(h+1), for h = 0, 1, 2, ... until the steps are finer than one sample.
  const double n = static_cast<double>(count_);
  double last_pct = -1.0;
  for (int half = 0; half < 62; ++half) {
    const double lo = 1.0 - std::ldexp(1.0, -half);
    const double hi = 1.0 - std::ldexp(1.0, -(half + 1));
    if ((1.0 - lo) * n < 1.0) break;  // beyond the resolution of this many samples
    for (int t = 0; t < ticks_per_half; ++t) {
      const double p = lo + (hi - lo) * t / ticks_per_half;
      const std::uint64_t v = value_at_percentile(p * 100.0);
      if (p <= last_pct) continue;
      const std::uint64_t at_or_below =
          static_cast<std::uint64_t>(std::llround(percentile_below(v) * n));
      std::fprintf(out.get(), "%llu,%.12f,%llu,%.6f\n", static_cast<unsigned long long>(v), p,
                   static_cast<unsigned long long>(at_or_below), 1.0 / (1.0 - p));
      last_pct = p;
    }
  }
  std::fprintf(out.get(), "%llu,1.000000000000,%llu,inf\n", static_cast<unsigned long long>(max_),
               static_cast<unsigned long long>(count_));
  if (std::ferror(out.get()) != 0) {
    throw std::runtime_error("error writing histogram CSV '" + path.string() + "'");
  }
}

}  // namespace ringflow::bench
