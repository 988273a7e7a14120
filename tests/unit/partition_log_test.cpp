#include <gtest/gtest.h>

#include <memory_resource>
#include <stdexcept>
#include <string>
#include <vector>

#include "ringflow/partition_log.hpp"

namespace {

using ringflow::PartitionLog;
using ringflow::ReadStatus;
using ringflow::StoredEvent;

const ringflow::detail::RecordHeader* append(PartitionLog& log, std::int64_t ingest,
                                             const std::string& key, const std::string& payload) {
  ringflow::detail::RecordHeader h{};
  h.id = 1000 + log.end_offset();
  h.publish_ns = ingest - 1;
  h.ingest_ns = ingest;
  h.topic = 3;
  h.partition = log.partition();
  h.attempt = 1;
  return log.append(h, key, {reinterpret_cast<const std::byte*>(payload.data()), payload.size()});
}

std::string payload_of(const StoredEvent& e) {
  return {reinterpret_cast<const char*>(e.payload.data()), e.payload.size()};
}

// Built with append() rather than operator+: GCC 12 warns falsely (-Wrestrict) on
// "literal" + std::to_string(...) once inlined.
std::string key_of(int i) {
  return std::string("k").append(std::to_string(i % 3));
}
std::string payload_n(int i) {
  return std::string("payload-").append(std::to_string(i));
}

/// Counts allocations; serves them from new/delete.
struct CountingResource : std::pmr::memory_resource {
  std::size_t allocs = 0;
  void* do_allocate(std::size_t n, std::size_t a) override {
    ++allocs;
    return std::pmr::new_delete_resource()->allocate(n, a);
  }
  void do_deallocate(void* p, std::size_t n, std::size_t a) override {
    std::pmr::new_delete_resource()->deallocate(p, n, a);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
};

PartitionLog::Options small(std::size_t segments) {
  PartitionLog::Options o;
  o.segment_bytes = 4096;
  o.retention_bytes = segments * o.segment_bytes;
  return o;
}

TEST(PartitionLog, RejectsImpossibleSizes) {
  PartitionLog::Options o;
  o.segment_bytes = 64;  // smaller than one record
  EXPECT_THROW(PartitionLog(0, o), std::invalid_argument);
  o.segment_bytes = 4096;
  o.retention_bytes = 4096;  // one segment: nothing could be evicted safely
  EXPECT_THROW(PartitionLog(0, o), std::invalid_argument);
}

TEST(PartitionLog, OversizedRecordsAreRefusedNotWrittenPastTheBuffer) {
  PartitionLog log(0, small(4));
  EXPECT_THROW(append(log, 1, "k", std::string(ringflow::kMaxPayloadBytes + 1, 'x')),
               std::length_error);
  EXPECT_THROW(append(log, 1, std::string(ringflow::kMaxKeyBytes + 1, 'k'), "v"),
               std::length_error);
  EXPECT_EQ(log.end_offset(), 0U);
  EXPECT_NE(append(log, 1, std::string(ringflow::kMaxKeyBytes, 'k'),
                   std::string(ringflow::kMaxPayloadBytes, 'x')),
            nullptr);
}

TEST(PartitionLog, OffsetsAreDenseAndReplayReturnsWhatWasAppended) {
  PartitionLog log(5, small(4));
  EXPECT_EQ(log.end_offset(), 0U);
  for (int i = 0; i < 50; ++i) {
    const auto* rec = append(log, 100 + i, key_of(i), payload_n(i));
    EXPECT_EQ(rec->offset, static_cast<std::uint64_t>(i));
    EXPECT_EQ(rec->partition, 5U);
  }
  EXPECT_EQ(log.end_offset(), 50U);
  EXPECT_EQ(log.first_offset(), 0U);

  auto r = log.reader();
  StoredEvent e;
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(r.next(e), ReadStatus::ok);
    EXPECT_EQ(e.offset, static_cast<std::uint64_t>(i));
    EXPECT_EQ(e.id, 1000U + i);
    EXPECT_EQ(e.key, key_of(i));
    EXPECT_EQ(payload_of(e), payload_n(i));
    EXPECT_EQ(e.ingest_ns, 100 + i);
    EXPECT_EQ(e.topic.value, 3U);
  }
  EXPECT_EQ(r.next(e), ReadStatus::end);
  append(log, 1000, "late", "x");
  ASSERT_EQ(r.next(e), ReadStatus::ok);  // a reader at the end sees later appends
  EXPECT_EQ(e.key, "late");
}

TEST(PartitionLog, RetentionEvictsOldestAndReadersAreTold) {
  PartitionLog log(0, small(3));
  const std::string payload(100, 'p');
  for (int i = 0; i < 500; ++i)
    append(log, i, "key", payload);
  EXPECT_EQ(log.end_offset(), 500U);
  EXPECT_GT(log.first_offset(), 0U);
  EXPECT_GT(log.evicted_segments(), 0U);
  // Memory stays bounded: only three segments' worth is retained.
  const std::uint64_t retained = log.end_offset() - log.first_offset();
  EXPECT_LE(retained * ringflow::detail::record_size(3, 100), 3U * 4096U);

  auto r = log.reader();
  EXPECT_EQ(r.seek(0), ReadStatus::evicted);
  EXPECT_EQ(r.position(), log.first_offset());
  StoredEvent e;
  ASSERT_EQ(r.next(e), ReadStatus::ok);
  EXPECT_EQ(e.offset, log.first_offset());

  // A reader overtaken by retention is told so, then continues from the oldest retained event.
  auto slow = log.reader();
  ASSERT_EQ(slow.seek(log.first_offset()), ReadStatus::ok);
  for (int i = 0; i < 500; ++i)
    append(log, 1000 + i, "key", payload);
  EXPECT_EQ(slow.next(e), ReadStatus::evicted);
  ASSERT_EQ(slow.next(e), ReadStatus::ok);
  EXPECT_EQ(e.offset, log.first_offset());
}

TEST(PartitionLog, BytesHeldCountRecordsAndDropWithEvictedSegments) {
  PartitionLog log(0, small(4));
  EXPECT_EQ(log.bytes_held(), 0U);
  const std::string payload(160, 'p');
  const std::uint64_t rec = ringflow::detail::record_size(1, payload.size());
  for (int i = 0; i < 10; ++i)
    append(log, 100, "k", payload);
  EXPECT_EQ(log.bytes_held(), 10 * rec);
  // Fill past retention: segments are reused, what they held no longer counts.
  for (int i = 0; i < 200; ++i)
    append(log, 200, "k", payload);
  EXPECT_GT(log.evicted_segments(), 0U);
  EXPECT_EQ(log.bytes_held(), (log.end_offset() - log.first_offset()) * rec);
  EXPECT_LE(log.bytes_held(), 4U * 4096U);
  // Age retention: every segment but the one being written goes.
  for (int i = 0; i < 3; ++i)
    append(log, 5000, "k", payload);
  log.evict_older_than(1000);
  EXPECT_EQ(log.bytes_held(), (log.end_offset() - log.first_offset()) * rec);
  EXPECT_GT(log.bytes_held(), 0U);
}

TEST(PartitionLog, SeekPastEndAndSeekTime) {
  PartitionLog log(0, small(8));
  for (int i = 0; i < 100; ++i)
    append(log, 1000 + 10 * i, "k", "v");
  auto r = log.reader();
  EXPECT_EQ(r.seek(100), ReadStatus::end);
  EXPECT_EQ(r.seek(42), ReadStatus::ok);
  EXPECT_EQ(r.seek_time(1000 + 10 * 42), ReadStatus::ok);
  EXPECT_EQ(r.position(), 42U);
  EXPECT_EQ(r.seek_time(1000 + 10 * 42 - 5), ReadStatus::ok);  // between events: the next one
  EXPECT_EQ(r.position(), 42U);
  EXPECT_EQ(r.seek_time(0), ReadStatus::ok);
  EXPECT_EQ(r.position(), 0U);
  EXPECT_EQ(r.seek_time(1'000'000), ReadStatus::end);
}

TEST(PartitionLog, AgeRetentionEvictsWholeOldSegments) {
  PartitionLog log(0, small(4));
  const std::string payload(160, 'p');
  for (int i = 0; i < 30; ++i)
    append(log, 100, "k", payload);  // several segments at t=100
  for (int i = 0; i < 5; ++i)
    append(log, 5000, "k", payload);
  const std::uint64_t before = log.first_offset();
  log.evict_older_than(1000);
  EXPECT_GT(log.first_offset(), before);
  auto r = log.reader();
  StoredEvent e;
  EXPECT_EQ(r.next(e), ReadStatus::evicted);
  ASSERT_EQ(r.next(e), ReadStatus::ok);
  // Only whole segments go: the head segment (with the t=5000 events) stays.
  EXPECT_LE(log.first_offset(), 30U);
  log.evict_older_than(1'000'000);  // never evicts the segment being written
  EXPECT_LT(log.first_offset(), log.end_offset());
}

TEST(PartitionLog, AllocatesSegmentsOnlyOnFirstUse) {
  CountingResource mr;
  {
    PartitionLog log(0, small(3), &mr);
    EXPECT_EQ(mr.allocs, 0U);
    const std::string payload(100, 'p');
    for (int i = 0; i < 2000; ++i)
      append(log, i, "key", payload);
    EXPECT_EQ(mr.allocs, 6U);  // 3 segments x (bytes + index), however many events
  }
}

TEST(PartitionLog, PreallocatedLogNeverAllocatesWhileAppending) {
  CountingResource mr;
  auto opts = small(4);
  opts.preallocate = true;
  PartitionLog log(0, opts, &mr);
  EXPECT_EQ(mr.allocs, 8U);  // everything up front
  for (int i = 0; i < 5000; ++i)
    append(log, i, "key", std::string(60, 'x'));
  EXPECT_EQ(mr.allocs, 8U);
  EXPECT_GT(log.evicted_segments(), 0U);
}

}  // namespace

namespace {

TEST(PartitionLog, IngestTimeIsNonDecreasingWhateverTheCallerPasses) {
  PartitionLog log(0, small(4));
  append(log, 100, "k", "a");
  append(log, 50, "k", "b");  // an earlier clock reading: stored with the later time
  append(log, 120, "k", "c");
  ringflow::PartitionReader r = log.reader();
  ringflow::StoredEvent e;
  std::vector<std::int64_t> times;
  while (r.next(e) == ringflow::ReadStatus::ok)
    times.push_back(e.ingest_ns);
  EXPECT_EQ(times, (std::vector<std::int64_t>{100, 100, 120}));
}

}  // namespace
