// PartitionWriter + recover_partition: round trips, rolling, batching, retention, disk full.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <string_view>

#include "store/wal/format.hpp"
#include "wal_test_util.hpp"

namespace ringflow::wal {
namespace {

using test::CountingOps;
namespace fs = std::filesystem;
using test::Got;
using test::ingest_of;
using test::make_record;
using test::records_intact;
using test::ScratchDir;

std::size_t segment_count(const fs::path& dir, std::uint32_t partition) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir / format::partition_dir_name(partition))) {
    n += e.path().extension() == ".seg" ? 1 : 0;
  }
  return n;
}

void add_range(PartitionWriter& w, std::uint64_t from, std::uint64_t to,
               std::uint32_t partition = 0) {
  for (std::uint64_t o = from; o < to; ++o) {
    const auto rec = make_record(o, partition);
    ASSERT_EQ(w.add(o, ingest_of(o), rec), Errc::ok) << "offset " << o;
  }
}

Key test_key(unsigned char seed) {
  std::array<std::byte, 32> k{};
  for (std::size_t i = 0; i < k.size(); ++i)
    k[i] = static_cast<std::byte>(seed * 7 + i);
  return Key::from_bytes(k);
}

class WalRoundTrip : public ::testing::TestWithParam<bool> {};

TEST_P(WalRoundTrip, WritesSyncsAndRecoversEveryRecord) {
  ScratchDir dir;
  const Key key = test_key(1);
  Options opt;
  opt.segment_bytes = 64 << 10;  // a few hundred records per segment: it rolls
  if (GetParam()) opt.key = &key;
  {
    PartitionWriter w(dir.path(), 3, 0, opt);
    EXPECT_EQ(w.added_end(), 0U);
    add_range(w, 0, 2000, 3);
    EXPECT_EQ(w.added_end(), 2000U);
    EXPECT_EQ(w.written_end(), 0U);
    ASSERT_EQ(w.write(), Errc::ok);
    EXPECT_EQ(w.written_end(), 2000U);
    EXPECT_EQ(w.synced_end(), 0U);
    ASSERT_EQ(w.sync(), Errc::ok);
    EXPECT_EQ(w.synced_end(), 2000U);
    EXPECT_GT(w.bytes_written(), 2000U * 72);
  }
  EXPECT_GT(segment_count(dir.path(), 3), 3U);
  EXPECT_EQ(partitions_in(dir.path()), std::vector<std::uint32_t>{3});
  std::vector<Got> got;
  const auto rep = test::recover(dir.path(), 3, opt, true, got);
  EXPECT_TRUE(rep.notes.empty()) << rep.notes.front();
  EXPECT_FALSE(rep.truncated);
  EXPECT_EQ(rep.records, 2000U);
  EXPECT_EQ(rep.first_offset, 0U);
  EXPECT_EQ(rep.end_offset, 2000U);
  EXPECT_EQ(rep.segments, segment_count(dir.path(), 3));
  ASSERT_EQ(got.size(), 2000U);
  EXPECT_TRUE(records_intact(got, 0, 3));
  for (const auto& g : got) {  // records come back 8-aligned, readable as a RecordHeader
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(g.bytes.data()) % 8, 0U);
  }

  // Continue after recovery: a new writer starts a new segment; offsets stay consecutive.
  {
    PartitionWriter w(dir.path(), 3, rep.end_offset, opt);
    add_range(w, 2000, 2100, 3);
    ASSERT_EQ(w.write(), Errc::ok);
    ASSERT_EQ(w.sync(), Errc::ok);
  }
  got.clear();
  const auto rep2 = test::recover(dir.path(), 3, opt, true, got);
  EXPECT_TRUE(rep2.notes.empty());
  ASSERT_EQ(got.size(), 2100U);
  EXPECT_TRUE(records_intact(got, 0, 3));
}

INSTANTIATE_TEST_SUITE_P(PlainAndEncrypted, WalRoundTrip, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "encrypted" : "plain";
                         });

TEST(WalWriter, EncryptedSegmentsHoldNoPlaintext) {
  ScratchDir dir;
  const Key key = test_key(2);
  Options opt;
  opt.key = &key;
  opt.segment_bytes = 16 << 10;
  {
    PartitionWriter w(dir.path(), 0, 0, opt);
    const std::string secret = "the-secret-payload-0123456789";
    std::vector<std::byte> rec(detail::record_size(0, secret.size()));
    std::memcpy(rec.data() + sizeof(detail::RecordHeader), secret.data(), secret.size());
    ASSERT_EQ(w.add(0, 1, rec), Errc::ok);
    ASSERT_EQ(w.write(), Errc::ok);
  }
  const auto path = dir.path() / "p00000" / format::segment_file_name(0);
  const auto bytes = test::read_file(path);
  const std::string_view needle = "the-secret";
  EXPECT_EQ(std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end()), bytes.end());
}

TEST(WalWriter, OneWritePerFilePerCallAndNoneOnAdd) {
  ScratchDir dir;
  CountingOps ops;
  Options opt;
  opt.ops = &ops;
  PartitionWriter w(dir.path(), 0, 0, opt);
  add_range(w, 0, 5000);
  EXPECT_EQ(ops.pwrites, 0U);  // add() only buffers
  ASSERT_EQ(w.write(), Errc::ok);
  EXPECT_EQ(ops.pwrites, 1U);  // 5000 records, one segment, one pwrite
  add_range(w, 5000, 6000);
  ASSERT_EQ(w.write(), Errc::ok);
  EXPECT_EQ(ops.pwrites, 2U);
  ASSERT_EQ(w.write(), Errc::ok);  // nothing new: no call
  EXPECT_EQ(ops.pwrites, 2U);
  ASSERT_EQ(w.sync(), Errc::ok);
  EXPECT_EQ(ops.fdatasyncs, 1U);
}

TEST(WalWriter, RejectsNonConsecutiveOffsets) {
  ScratchDir dir;
  PartitionWriter w(dir.path(), 0, 10, Options{});
  const auto rec = make_record(10);
  EXPECT_THROW((void)w.add(11, 0, rec), std::invalid_argument);
  EXPECT_THROW((void)w.add(9, 0, rec), std::invalid_argument);
  EXPECT_EQ(w.add(10, 0, rec), Errc::ok);
  EXPECT_THROW((void)w.add(10, 0, rec), std::invalid_argument);
}

TEST(WalWriter, RefusesToOverwriteSegmentsPastItsStart) {
  ScratchDir dir;
  {
    PartitionWriter w(dir.path(), 0, 0, Options{});
    add_range(w, 0, 10);
    ASSERT_EQ(w.write(), Errc::ok);
  }
  EXPECT_THROW(PartitionWriter(dir.path(), 0, 0, Options{}), WalError);
}

TEST(WalWriter, DeletesWholeSegmentsBelowAnOffset) {
  ScratchDir dir;
  Options opt;
  opt.segment_bytes = 16 << 10;
  PartitionWriter w(dir.path(), 0, 0, opt);
  add_range(w, 0, 1000);
  ASSERT_EQ(w.write(), Errc::ok);
  ASSERT_EQ(w.sync(), Errc::ok);
  const std::size_t before = segment_count(dir.path(), 0);
  ASSERT_GT(before, 5U);
  w.delete_segments_below(500);
  const std::size_t after = segment_count(dir.path(), 0);
  EXPECT_LT(after, before);
  std::vector<Got> got;
  const auto rep = test::recover(dir.path(), 0, Options{}, false, got);
  EXPECT_TRUE(rep.notes.empty());
  ASSERT_FALSE(got.empty());
  EXPECT_LE(got.front().offset, 500U);  // nothing at or above 500 was deleted
  EXPECT_GT(got.front().offset, 0U);
  EXPECT_EQ(got.back().offset, 999U);
  EXPECT_TRUE(records_intact(got, got.front().offset));
  w.delete_segments_below(UINT64_MAX);  // never the newest segment
  EXPECT_GE(segment_count(dir.path(), 0), 1U);
}

std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(WalWriter, RetentionBySizeKeepsTheNewestSegmentsWithinTheLimit) {
  ScratchDir dir;
  Options opt;
  opt.segment_bytes = 16 << 10;
  {
    PartitionWriter w(dir.path(), 0, 0, opt);
    add_range(w, 0, 1000);
    ASSERT_EQ(w.write(), Errc::ok);
    ASSERT_EQ(w.sync(), Errc::ok);
    const std::size_t before = segment_count(dir.path(), 0);
    ASSERT_GT(before, 5U);
    const auto r = w.apply_retention(3 * opt.segment_bytes, 0, wall_ns());
    EXPECT_EQ(r.segments, before - 3);
    EXPECT_EQ(r.bytes, (before - 3) * opt.segment_bytes);
    EXPECT_EQ(segment_count(dir.path(), 0), 3U);
    std::vector<Got> got;
    const auto rep = test::recover(dir.path(), 0, Options{}, false, got);
    EXPECT_TRUE(rep.notes.empty());
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got.front().offset, r.first_offset);  // whole segments: no gap, no partial one
    EXPECT_GT(r.first_offset, 0U);
    EXPECT_EQ(got.back().offset, 999U);
    EXPECT_TRUE(records_intact(got, r.first_offset));
    EXPECT_EQ(w.apply_retention(3 * opt.segment_bytes, 0, wall_ns()).segments, 0U);
    // Never the segment being written, whatever the limit.
    (void)w.apply_retention(1, 0, wall_ns());
    EXPECT_EQ(segment_count(dir.path(), 0), 1U);
  }
  // A later writer counts the segments it finds (their size on disk) against the limit.
  std::vector<Got> got;
  const auto rep = test::recover(dir.path(), 0, Options{}, true, got);
  ASSERT_EQ(rep.end_offset, 1000U);
  PartitionWriter w(dir.path(), 0, rep.end_offset, opt);
  add_range(w, 1000, 1400);
  ASSERT_EQ(w.write(), Errc::ok);
  ASSERT_EQ(w.sync(), Errc::ok);
  ASSERT_GT(segment_count(dir.path(), 0), 2U);
  const auto r = w.apply_retention(2 * opt.segment_bytes, 0, wall_ns());
  EXPECT_GT(r.segments, 0U);
  EXPECT_EQ(segment_count(dir.path(), 0), 2U);
  got.clear();
  (void)test::recover(dir.path(), 0, Options{}, false, got);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front().offset, r.first_offset);
  EXPECT_EQ(got.back().offset, 1399U);
  EXPECT_TRUE(records_intact(got, r.first_offset));
}

TEST(WalWriter, RetentionByAgeDeletesOnlyCompletedSegmentsPastTheAge) {
  ScratchDir dir;
  Options opt;
  opt.segment_bytes = 16 << 10;
  PartitionWriter w(dir.path(), 0, 0, opt);
  add_range(w, 0, 1000);
  ASSERT_EQ(w.write(), Errc::ok);
  ASSERT_EQ(w.sync(), Errc::ok);
  const std::size_t before = segment_count(dir.path(), 0);
  ASSERT_GT(before, 2U);
  constexpr std::int64_t kHour = 3'600'000'000'000;
  EXPECT_EQ(w.apply_retention(0, kHour, wall_ns()).segments, 0U);  // all younger than an hour
  EXPECT_EQ(segment_count(dir.path(), 0), before);
  // Two hours later every completed segment is past the age; the one being written stays.
  const auto r = w.apply_retention(0, kHour, wall_ns() + 2 * kHour);
  EXPECT_EQ(r.segments, before - 1);
  EXPECT_EQ(segment_count(dir.path(), 0), 1U);
  std::vector<Got> got;
  (void)test::recover(dir.path(), 0, Options{}, false, got);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front().offset, r.first_offset);
  EXPECT_EQ(got.back().offset, 999U);
  EXPECT_TRUE(records_intact(got, r.first_offset));
}

TEST(WalWriter, DiskFullKeepsWrittenEndAtTheLastCompleteWrite) {
  ScratchDir dir;
  CountingOps ops;
  Options opt;
  opt.ops = &ops;
  PartitionWriter w(dir.path(), 0, 0, opt);
  add_range(w, 0, 100);
  ASSERT_EQ(w.write(), Errc::ok);
  ASSERT_EQ(w.sync(), Errc::ok);
  ops.budget = 1000;  // the next batch is larger: a part is written, then ENOSPC
  add_range(w, 100, 200);
  EXPECT_EQ(w.write(), Errc::disk_full);
  EXPECT_EQ(w.written_end(), 100U);
  EXPECT_EQ(w.sync(), Errc::ok);
  EXPECT_EQ(w.synced_end(), 100U);
  EXPECT_EQ(w.added_end(), 200U);
  // Space comes back: the same bytes are written again, then all is durable.
  ops.budget = UINT64_MAX;
  ASSERT_EQ(w.write(), Errc::ok);
  ASSERT_EQ(w.sync(), Errc::ok);
  EXPECT_EQ(w.synced_end(), 200U);
  std::vector<Got> got;
  const auto rep = test::recover(dir.path(), 0, Options{}, true, got);
  EXPECT_TRUE(rep.notes.empty());
  ASSERT_EQ(got.size(), 200U);
  EXPECT_TRUE(records_intact(got, 0));
}

TEST(WalWriter, DiskFullAtPreallocationIsReported) {
  ScratchDir dir;
  CountingOps ops;
  ops.fail_fallocate = true;
  Options opt;
  opt.ops = &ops;
  PartitionWriter w(dir.path(), 0, 0, opt);
  add_range(w, 0, 10);
  EXPECT_EQ(w.write(), Errc::disk_full);
  EXPECT_EQ(w.written_end(), 0U);
  ops.fail_fallocate = false;
  EXPECT_EQ(w.write(), Errc::ok);
  EXPECT_EQ(w.written_end(), 10U);
}

TEST(WalWriter, DiskFullAfterNBytesAcrossManyBatches) {
  // For several budgets: whatever write() reports, written_end never claims a record whose bytes
  // did not all reach the file, and recovery returns exactly [0, written_end) or more.
  for (std::uint64_t budget : {0ULL, 100ULL, 4096ULL, 5000ULL, 20000ULL, 70000ULL}) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    ScratchDir dir;
    CountingOps ops;
    ops.budget = budget;
    Options opt;
    opt.ops = &ops;
    opt.segment_bytes = 16 << 10;
    std::uint64_t written = 0;
    {
      PartitionWriter w(dir.path(), 0, 0, opt);
      for (std::uint64_t batch = 0; batch < 20; ++batch) {
        add_range(w, batch * 50, batch * 50 + 50);
        const Errc e = w.write();
        EXPECT_TRUE(e == Errc::ok || e == Errc::disk_full) << to_string(e);
        if (e != Errc::ok) break;
      }
      written = w.written_end();
      EXPECT_LE(written, w.added_end());
    }
    std::vector<Got> got;
    (void)test::recover(dir.path(), 0, Options{}, true, got);
    EXPECT_GE(got.size(), written);
    EXPECT_TRUE(records_intact(got, 0));
  }
}

TEST(WalWriter, AFailedFdatasyncIsStickyAndClaimsNothing) {
  // After a failed fdatasync the kernel may have dropped the dirty pages, so a later successful
  // one proves nothing: synced_end stays where it was and every later sync() fails.
  struct FailingSync : test::ForwardingOps {
    bool fail = false;
    int fdatasync(int fd) override { return fail ? -EIO : ForwardingOps::fdatasync(fd); }
  } ops;
  ScratchDir dir;
  Options opt;
  opt.ops = &ops;
  opt.segment_bytes = 16 << 10;
  PartitionWriter w(dir.path(), 0, 0, opt);
  add_range(w, 0, 10);
  ASSERT_EQ(w.write(), Errc::ok);
  ASSERT_EQ(w.sync(), Errc::ok);
  add_range(w, 10, 20);
  ASSERT_EQ(w.write(), Errc::ok);
  ops.fail = true;
  EXPECT_EQ(w.sync(), Errc::io_error);
  ops.fail = false;
  EXPECT_EQ(w.sync(), Errc::io_error);
  EXPECT_EQ(w.synced_end(), 10U);
  EXPECT_EQ(w.written_end(), 20U);
}

TEST(WalWriter, AddWritesByItselfOnlyWhenTheBufferIsFull) {
  ScratchDir dir;
  CountingOps ops;
  Options opt;
  opt.ops = &ops;
  PartitionWriter w(dir.path(), 0, 0, opt);
  const auto rec = make_record(0, 0, 4000);
  std::uint64_t o = 0;
  for (; o < 5000; ++o) {  // ~20 MB: more than add() may buffer
    ASSERT_EQ(w.add(o, ingest_of(o), rec), Errc::ok);
  }
  EXPECT_GE(ops.pwrites, 1U);  // it did not buffer without bound
  EXPECT_LE(ops.pwrites, 2U);  // and wrote in big pieces
  EXPECT_GT(w.written_end(), 0U);
  ASSERT_EQ(w.write(), Errc::ok);
  EXPECT_EQ(w.written_end(), o);
  ops.budget = 0;  // a full disk: add() returns the error and does not take the record
  std::uint64_t added = w.added_end();
  Errc e = Errc::ok;
  for (int i = 0; i < 5000 && e == Errc::ok; ++i, ++added) {
    e = w.add(added, ingest_of(added), rec);
  }
  EXPECT_EQ(e, Errc::disk_full);
  EXPECT_EQ(w.added_end(), added - 1);
}

}  // namespace
}  // namespace ringflow::wal
