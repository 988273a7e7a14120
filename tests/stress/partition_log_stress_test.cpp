// Readers replay a partition log while its writer appends and retention reuses segments under
// them. Every event a reader gets must be intact (its payload encodes its offset) and offsets
// must only move forward; eviction must be reported, never torn data. Runs under TSan in CI.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/partition_log.hpp"

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) || defined(RINGFLOW_TSAN)
constexpr std::uint64_t kEvents = 100'000;
#else
constexpr std::uint64_t kEvents = 2'000'000;
#endif

TEST(PartitionLogStress, ReadersNeverSeeTornRecordsWhileSegmentsAreReused) {
  ringflow::PartitionLog::Options o;
  o.segment_bytes = 8192;
  o.retention_bytes =
      std::size_t{3} * 8192;  // tiny: segments are reused constantly under the readers
  o.preallocate = true;
  ringflow::PartitionLog log(7, o);
  std::atomic<bool> done{false};

  struct ReaderResult {
    std::uint64_t read = 0;
    std::uint64_t evicted = 0;
    std::uint64_t bad = 0;
  };
  constexpr int kReaders = 2;
  std::vector<ReaderResult> results(kReaders);
  std::vector<std::thread> readers;
  readers.reserve(kReaders);
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      auto reader = log.reader();
      ringflow::StoredEvent e;
      std::uint64_t last = 0;
      bool any = false;
      ReaderResult& res = results[r];
      for (;;) {
        const bool finished = done.load(std::memory_order_acquire);
        const auto s = reader.next(e);
        if (s == ringflow::ReadStatus::ok) {
          std::uint64_t encoded = 0;
          std::memcpy(&encoded, e.payload.data(), sizeof encoded);
          const std::string expect_key = "key-" + std::to_string(e.offset % 97);
          if (encoded != e.offset || e.key != expect_key || e.partition != 7 ||
              e.payload.size() != 8 + e.offset % 50 || (any && e.offset <= last)) {
            ++res.bad;
          }
          last = e.offset;
          any = true;
          ++res.read;
        } else if (s == ringflow::ReadStatus::evicted) {
          ++res.evicted;
        } else if (finished) {
          break;
        }
      }
    });
  }

  std::string payload(64, 'x');
  for (std::uint64_t i = 0; i < kEvents; ++i) {
    ringflow::detail::RecordHeader h{};
    h.id = i;
    h.ingest_ns = static_cast<std::int64_t>(i);
    h.partition = 7;
    std::memcpy(payload.data(), &i, sizeof i);
    const std::string key = "key-" + std::to_string(i % 97);
    log.append(h, key, {reinterpret_cast<const std::byte*>(payload.data()), 8 + i % 50});
  }
  done.store(true, std::memory_order_release);
  for (auto& t : readers)
    t.join();

  std::uint64_t total_read = 0;
  for (const auto& res : results) {
    EXPECT_EQ(res.bad, 0U);
    total_read += res.read;
  }
  EXPECT_GT(total_read, 0U);
  EXPECT_EQ(log.end_offset(), kEvents);
  EXPECT_GT(log.evicted_segments(), 0U);
}

}  // namespace
