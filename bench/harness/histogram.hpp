#pragma once
// Log-linear latency histogram (HdrHistogram layout), values in nanoseconds.
//
// Layout: values below 2^kSubBucketBits (256 ns) get one exact bucket each; every power-of-two
// range [2^k, 2^(k+1)) above that is split into 128 equal buckets. A bucket's width is at most
// 1/128 of its lowest value, so any reported value is within 0.79 % of the true one (the 1 %
// promise), from 1 ns up to kMaxTrackableNs (~68.7 s; larger values are clamped and counted in
// overflow_count()). 3,840 counters, ~30 KiB, allocated once at construction.
//
// Threads: not synchronised. Give each recording thread its own Histogram and merge() them after
// the threads are joined (or otherwise synchronised with).
//
// record() is O(1), noexcept and allocation-free: a count-leading-zeros, a shift and an add.

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>

namespace ringflow::bench {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 8;  ///< 256 exact values
  static constexpr std::uint64_t kSubBucketCount = 1u << kSubBucketBits;
  static constexpr std::uint64_t kSubBucketHalf = kSubBucketCount / 2;  ///< buckets per octave
  static constexpr int kMaxExponent = 36;                               ///< 2^36 ns ~ 68.7 s
  static constexpr std::uint64_t kMaxTrackableNs = (std::uint64_t{1} << kMaxExponent) - 1;
  static constexpr std::size_t kBucketCount =
      kSubBucketCount + (kMaxExponent - kSubBucketBits) * kSubBucketHalf;

  Histogram() noexcept { reset(); }

  /// Records one value. Values above kMaxTrackableNs land in the top bucket (and are counted in
  /// overflow_count()); min()/max() stay exact whatever the value.
  void record(std::uint64_t value_ns) noexcept { record_n(value_ns, 1); }

  void record_n(std::uint64_t value_ns, std::uint64_t n) noexcept {
    if (value_ns > kMaxTrackableNs) [[unlikely]] {
      overflow_ += n;
    }
    counts_[bucket_of(value_ns)] += n;
    count_ += n;
    sum_ += static_cast<double>(value_ns) * static_cast<double>(n);
    if (value_ns < min_) min_ = value_ns;
    if (value_ns > max_) max_ = value_ns;
  }

  /// Adds every sample of `other`.
  void merge(const Histogram& other) noexcept;
  void reset() noexcept;

  /// The value at percentile `pct` (0..100): the smallest recorded value v such that at least
  /// pct % of samples are <= v, reported as the highest value of v's bucket clamped to
  /// [min(), max()]. pct = 100 gives max(). 0 when empty.
  [[nodiscard]] std::uint64_t value_at_percentile(double pct) const noexcept;
  /// Share (0..1) of samples whose bucket lies at or below `value_ns`'s bucket.
  [[nodiscard]] double percentile_below(std::uint64_t value_ns) const noexcept;

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  [[nodiscard]] double mean() const noexcept {
    return count_ ? sum_ / static_cast<double>(count_) : 0.0;
  }
  [[nodiscard]] std::uint64_t overflow_count() const noexcept { return overflow_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }

  /// Writes the percentile distribution as CSV, like HdrHistogram's outputPercentileDistribution
  /// (5 ticks per half-distance to 100 %): `value_ns,percentile,count,inverse` where percentile
  /// is 0..1, count the samples at or below value and inverse = 1/(1-percentile) (the x axis of
  /// an HDR plot; "inf" on the final 100 % row). Throws std::runtime_error naming the path when
  /// the file cannot be written.
  void write_percentile_csv(const std::filesystem::path& path, int ticks_per_half = 5) const;

  // Bucket arithmetic, public for tests and for iterating.
  [[nodiscard]] static constexpr std::size_t bucket_of(std::uint64_t v) noexcept {
    if (v > kMaxTrackableNs) v = kMaxTrackableNs;
    if (v < kSubBucketCount) return static_cast<std::size_t>(v);
    const int k =
        static_cast<int>(std::bit_width(v)) - 1;  // v in [2^k, 2^(k+1)), k >= kSubBucketBits
    const int shift = k - (kSubBucketBits - 1);
    const std::uint64_t sub = (v >> shift) - kSubBucketHalf;  // 0..127
    return static_cast<std::size_t>(
        kSubBucketCount + static_cast<std::uint64_t>(k - kSubBucketBits) * kSubBucketHalf + sub);
  }
  [[nodiscard]] static constexpr std::uint64_t bucket_lowest(std::size_t b) noexcept {
    if (b < kSubBucketCount) return b;
    const std::uint64_t octave = (b - kSubBucketCount) / kSubBucketHalf;  // k - kSubBucketBits
    const std::uint64_t sub = (b - kSubBucketCount) % kSubBucketHalf;
    const auto shift = static_cast<int>(octave + 1);
    return (kSubBucketHalf + sub) << shift;
  }
  [[nodiscard]] static constexpr std::uint64_t bucket_highest(std::size_t b) noexcept {
    return b + 1 < kBucketCount ? bucket_lowest(b + 1) - 1 : kMaxTrackableNs;
  }
  [[nodiscard]] std::uint64_t count_in_bucket(std::size_t b) const noexcept { return counts_[b]; }

 private:
  std::array<std::uint64_t, kBucketCount> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t overflow_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
  double sum_ = 0.0;
};

static_assert(Histogram::bucket_of(255) == 255);
static_assert(Histogram::bucket_of(256) == 256);
static_assert(Histogram::bucket_lowest(Histogram::bucket_of(1000)) <= 1000);
static_assert(Histogram::bucket_highest(Histogram::bucket_of(1000)) >= 1000);
static_assert(Histogram::bucket_of(Histogram::kMaxTrackableNs) == Histogram::kBucketCount - 1);

}  // namespace ringflow::bench
