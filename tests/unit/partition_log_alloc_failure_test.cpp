// Allocation failure off the hot path: a PartitionLog whose memory resource refuses an
// allocation (a new segment's bytes or its index, at first use or when preallocating) reports
// std::bad_alloc, loses nothing it already holds, keeps working once memory is back, and leaks
// nothing.
#include <gtest/gtest.h>

#include <cstddef>
#include <memory_resource>
#include <new>
#include <string>

#include "ringflow/partition_log.hpp"

namespace {

using ringflow::PartitionLog;
using ringflow::ReadStatus;
using ringflow::StoredEvent;

/// Refuses allocation number `fail_at` (1-based; 0 = none); counts what is outstanding.
class FailingResource final : public std::pmr::memory_resource {
 public:
  int fail_at = 0;
  int calls = 0;
  long outstanding = 0;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (++calls == fail_at) throw std::bad_alloc();
    ++outstanding;
    return std::pmr::new_delete_resource()->allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    --outstanding;
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  [[nodiscard]] bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
};

PartitionLog::Options small_options(bool preallocate) {
  PartitionLog::Options o;
  o.segment_bytes = PartitionLog::kMaxRecordBytes * 2;  // a few small records per segment
  o.retention_bytes = o.segment_bytes * 3;
  o.preallocate = preallocate;
  return o;
}

void append(PartitionLog& log, int i) {
  ringflow::detail::RecordHeader h{};
  h.id = 1000 + static_cast<std::uint64_t>(i);
  h.ingest_ns = i;
  h.partition = log.partition();
  const std::string payload = std::string(100, 'p').append(std::to_string(i));
  (void)log.append(h, "key", {reinterpret_cast<const std::byte*>(payload.data()), payload.size()});
}

/// Every retained record reads back, in order, with the id it was appended with.
void expect_all_readable(const PartitionLog& log) {
  auto r = log.reader();
  (void)r.seek(log.first_offset());
  StoredEvent e;
  for (std::uint64_t o = log.first_offset(); o < log.end_offset(); ++o) {
    ASSERT_EQ(r.next(e), ReadStatus::ok) << "offset " << o;
    EXPECT_EQ(e.offset, o);
  }
  EXPECT_EQ(r.next(e), ReadStatus::end);
}

TEST(PartitionLogAllocationFailure, ANewSegmentThatCannotBeAllocatedLosesNothing) {
  // Allocations come in pairs per segment (bytes, then index): fail each of the first three
  // segments' bytes or index in turn, at first use.
  for (int fail_at = 1; fail_at <= 6; ++fail_at) {
    SCOPED_TRACE("allocation " + std::to_string(fail_at) + " fails");
    FailingResource mr;
    mr.fail_at = fail_at;
    {
      PartitionLog log(0, small_options(false), &mr);
      int appended = 0;
      bool failed = false;
      for (int i = 0; i < 40; ++i) {
        const std::uint64_t end = log.end_offset();
        try {
          append(log, i);
          ++appended;
        } catch (const std::bad_alloc&) {
          ASSERT_FALSE(failed) << "failed twice";
          failed = true;
          EXPECT_EQ(log.end_offset(), end) << "a failed append changed the log";
          expect_all_readable(log);
        }
      }
      EXPECT_TRUE(failed) << "the injected failure was never hit";
      EXPECT_EQ(log.end_offset(), static_cast<std::uint64_t>(appended));
      EXPECT_GT(log.evicted_segments(), 0U) << "the log never wrapped";
      expect_all_readable(log);
    }
    EXPECT_EQ(mr.outstanding, 0) << "memory leaked or freed twice";
  }
}

TEST(PartitionLogAllocationFailure, PreallocationFailureThrowsAndLeaksNothing) {
  for (int fail_at = 1; fail_at <= 6; ++fail_at) {
    SCOPED_TRACE("allocation " + std::to_string(fail_at) + " fails");
    FailingResource mr;
    mr.fail_at = fail_at;
    EXPECT_THROW(PartitionLog(0, small_options(true), &mr), std::bad_alloc);
    EXPECT_EQ(mr.outstanding, 0) << "a refused construction leaked segments";
  }
}

}  // namespace
