// recover_partition against damage: torn tails, bit flips, stale records, wrong keys, tampering,
// and simulated power cuts.
#include <gtest/gtest.h>

#include <array>
#include <random>

#include "store/wal/format.hpp"
#include "wal_test_util.hpp"

namespace ringflow::wal {
namespace {

namespace fs = std::filesystem;
using test::Got;
using test::ingest_of;
using test::make_record;
using test::PowerCutOps;
using test::records_intact;
using test::ScratchDir;

Key test_key(unsigned char seed) {
  std::array<std::byte, 32> k{};
  for (std::size_t i = 0; i < k.size(); ++i)
    k[i] = static_cast<std::byte>(seed * 11 + i);
  return Key::from_bytes(k);
}

/// Writes records [from, to) to partition 0 and syncs.
void write_records(const fs::path& dir, std::uint64_t from, std::uint64_t to, Options opt) {
  PartitionWriter w(dir, 0, from, opt);
  for (std::uint64_t o = from; o < to; ++o) {
    const auto rec = make_record(o);
    ASSERT_EQ(w.add(o, ingest_of(o), rec), Errc::ok);
  }
  ASSERT_EQ(w.write(), Errc::ok);
  ASSERT_EQ(w.sync(), Errc::ok);
}

fs::path segment_path(const fs::path& dir, std::uint64_t first) {
  return dir / "p00000" / format::segment_file_name(first);
}

using test::read_file;
using test::write_file;

/// File positions of each record frame in a segment (walks the lengths).
std::vector<std::size_t> frame_positions(const std::vector<char>& seg) {
  std::vector<std::size_t> pos;
  std::size_t at = format::kHeaderBytes;
  while (at + format::kFrameHeader <= seg.size()) {
    std::uint32_t len = 0;
    std::memcpy(&len, seg.data() + at + format::kFLength, 4);
    if (len == 0) break;
    pos.push_back(at);
    at += format::frame_bytes(len);
  }
  pos.push_back(at);  // the end
  return pos;
}

class WalTornTail : public ::testing::TestWithParam<bool> {};

TEST_P(WalTornTail, EveryBytePositionOfTheLastRecord) {
  ScratchDir dir;
  const Key key = test_key(1);
  Options opt;
  opt.segment_bytes = 64 << 10;
  if (GetParam()) opt.key = &key;
  write_records(dir.path(), 0, 20, opt);
  const auto path = segment_path(dir.path(), 0);
  const auto original = read_file(path);
  const auto pos = frame_positions(original);
  ASSERT_EQ(pos.size(), 21U);
  const std::size_t last = pos[19];
  std::uint32_t len = 0;
  std::memcpy(&len, original.data() + last + format::kFLength, 4);
  const std::size_t end = last + format::kFrameHeader + len;  // the padding after is zeros anyway
  for (std::size_t cut = last; cut < end; ++cut) {
    SCOPED_TRACE("torn at byte " + std::to_string(cut));
    auto torn = original;
    std::fill(torn.begin() + static_cast<std::ptrdiff_t>(cut), torn.end(), 0);  // as preallocated
    if (torn == original) continue;  // only zero bytes (the record's own padding) were cut
    write_file(path, torn);
    std::vector<Got> got;
    const auto rep = test::recover(dir.path(), 0, opt, true, got);
    ASSERT_EQ(got.size(), 19U);
    EXPECT_TRUE(records_intact(got, 0));
    EXPECT_EQ(rep.end_offset, 19U);
    if (cut > last + 4) {  // a length was written: the torn record is reported
      ASSERT_EQ(rep.notes.size(), 1U);
      EXPECT_NE(rep.notes[0].find("at byte " + std::to_string(last)), std::string::npos)
          << rep.notes[0];
      EXPECT_TRUE(rep.truncated);
    }
    // After the repair the file recovers cleanly and a writer continues at 19.
    got.clear();
    const auto again = test::recover(dir.path(), 0, opt, true, got);
    EXPECT_TRUE(again.notes.empty());
    EXPECT_EQ(got.size(), 19U);
    write_file(path, original);  // next position
  }
  // Cut short (file ends inside the record, no zeros after).
  for (std::size_t cut : {last + 1, last + 30, end - 1}) {
    auto shorter = original;
    shorter.resize(cut);
    write_file(path, shorter);
    std::vector<Got> got;
    const auto rep = test::recover(dir.path(), 0, opt, false, got);
    EXPECT_EQ(got.size(), 19U) << "cut " << cut;
    EXPECT_EQ(rep.notes.size(), 1U) << "cut " << cut;
  }
}

INSTANTIATE_TEST_SUITE_P(PlainAndEncrypted, WalTornTail, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "encrypted" : "plain";
                         });

TEST(WalRecovery, BitFlipInTheMiddleIsReportedNotReplayed) {
  ScratchDir dir;
  Options opt;
  opt.segment_bytes = 32 << 10;
  write_records(dir.path(), 0, 1000, opt);
  const auto path = segment_path(dir.path(), 0);
  const auto original = read_file(path);
  const auto pos = frame_positions(original);
  std::mt19937_64 rng(7);
  for (int round = 0; round < 50; ++round) {
    const std::size_t victim = 5 + rng() % (pos.size() - 10);
    const std::size_t byte = pos[victim] + rng() % (pos[victim + 1] - pos[victim]);
    const int bit = static_cast<int>(rng() % 8);
    SCOPED_TRACE("record " + std::to_string(victim) + " byte " + std::to_string(byte) + " bit " +
                 std::to_string(bit));
    auto bad = original;
    bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
    write_file(path, bad);
    std::vector<Got> got;
    const auto rep = test::recover(dir.path(), 0, opt, false, got);  // verify: no repair
    EXPECT_TRUE(records_intact(got, 0));
    // A flip in the padding is not covered (no data there); anywhere else the record is lost.
    std::uint32_t len = 0;
    std::memcpy(&len, original.data() + pos[victim] + format::kFLength, 4);
    const bool in_padding = byte >= pos[victim] + format::kFrameHeader + len;
    if (!in_padding) {
      EXPECT_EQ(got.size(), victim);
      ASSERT_FALSE(rep.notes.empty());
      EXPECT_NE(rep.notes[0].find(path.filename().string()), std::string::npos);
      EXPECT_NE(rep.notes[0].find("at byte " + std::to_string(pos[victim])), std::string::npos)
          << rep.notes[0];
      EXPECT_TRUE(rep.truncated);
    }
  }
  write_file(path, original);
}

TEST(WalRecovery, CorruptionDropsLaterSegmentsAndSaysSo) {
  ScratchDir dir;
  Options opt;
  opt.segment_bytes = 16 << 10;
  write_records(dir.path(), 0, 600, opt);
  std::vector<fs::path> segs;
  for (const auto& e : fs::directory_iterator(dir.path() / "p00000"))
    segs.push_back(e.path());
  std::sort(segs.begin(), segs.end());
  ASSERT_GE(segs.size(), 4U);
  auto bytes = read_file(segs[1]);
  const auto pos = frame_positions(bytes);
  bytes[pos[3] + 30] ^= 0x10;
  write_file(segs[1], bytes);
  std::vector<Got> got;
  const auto rep = test::recover(dir.path(), 0, opt, true, got);
  EXPECT_TRUE(records_intact(got, 0));
  EXPECT_EQ(rep.end_offset, got.size());
  EXPECT_EQ(rep.notes.size(), segs.size() - 1);  // the cut + one per removed segment
  for (std::size_t i = 2; i < segs.size(); ++i)
    EXPECT_FALSE(fs::exists(segs[i]));
  EXPECT_EQ(rep.segments, 2U);
  // A new writer continues; the log is whole again.
  write_records(dir.path(), rep.end_offset, rep.end_offset + 50, opt);
  got.clear();
  const auto rep2 = test::recover(dir.path(), 0, opt, true, got);
  EXPECT_TRUE(rep2.notes.empty());
  EXPECT_EQ(got.size(), rep.end_offset + 50);
  EXPECT_TRUE(records_intact(got, 0));
}

TEST(WalRecovery, RecordCopiedFromAnotherSegmentDoesNotValidate) {
  // Two segments written separately hold the same offsets (as after a truncation and rewrite);
  // a frame copied from one into the other at the right place still fails: its CRC is salted
  // with the other segment's id.
  ScratchDir a;
  ScratchDir b;
  Options opt;
  opt.segment_bytes = 16 << 10;
  write_records(a.path(), 0, 10, opt);
  write_records(b.path(), 0, 10, opt);
  auto seg_a = read_file(segment_path(a.path(), 0));
  const auto seg_b = read_file(segment_path(b.path(), 0));
  const auto pos = frame_positions(seg_a);
  // Same record bytes, different CRCs (different salts).
  EXPECT_NE(std::memcmp(seg_a.data() + pos[5], seg_b.data() + pos[5], 4), 0);
  std::copy(seg_b.begin() + static_cast<std::ptrdiff_t>(pos[5]),
            seg_b.begin() + static_cast<std::ptrdiff_t>(pos[6]),
            seg_a.begin() + static_cast<std::ptrdiff_t>(pos[5]));
  write_file(segment_path(a.path(), 0), seg_a);
  std::vector<Got> got;
  const auto rep = test::recover(a.path(), 0, Options{}, false, got);
  EXPECT_EQ(got.size(), 5U);
  ASSERT_EQ(rep.notes.size(), 1U);
  EXPECT_NE(rep.notes[0].find("CRC mismatch"), std::string::npos) << rep.notes[0];
}

TEST(WalRecovery, WrongKeyOrNoKeyIsAClearErrorBeforeAnyRecord) {
  ScratchDir dir;
  const Key right = test_key(1);
  const Key wrong = test_key(2);
  Options opt;
  opt.key = &right;
  write_records(dir.path(), 0, 10, opt);
  for (const Key* k : {&wrong, static_cast<const Key*>(nullptr)}) {
    Options o;
    o.key = k;
    std::size_t calls = 0;
    try {
      (void)recover_partition(dir.path(), 0, o, true, [&](const RecoveredRecord&) { ++calls; });
      FAIL() << "expected WalError";
    } catch (const WalError& e) {
      EXPECT_EQ(e.code(), Errc::wrong_key);
      EXPECT_NE(std::string(e.what()).find("key"), std::string::npos) << e.what();
    }
    EXPECT_EQ(calls, 0U);
  }
  // Nothing was changed: the right key still reads everything.
  std::vector<Got> got;
  const auto rep = test::recover(dir.path(), 0, opt, true, got);
  EXPECT_TRUE(rep.notes.empty());
  EXPECT_EQ(got.size(), 10U);
}

TEST(WalRecovery, TamperedCiphertextOrTagFailsAuthenticationNeverGarbage) {
  ScratchDir dir;
  const Key key = test_key(3);
  Options opt;
  opt.key = &key;
  opt.segment_bytes = 16 << 10;
  write_records(dir.path(), 0, 10, opt);
  const auto path = segment_path(dir.path(), 0);
  const auto original = read_file(path);
  const auto pos = frame_positions(original);
  std::uint32_t len = 0;
  std::memcpy(&len, original.data() + pos[4] + format::kFLength, 4);
  std::uint64_t seg_id = 0;
  std::memcpy(&seg_id, original.data() + format::kHSegmentId, 8);
  // Flip a ciphertext byte, then the last tag byte; each time fix the CRC as an attacker would.
  for (std::size_t at :
       {pos[4] + format::kFrameHeader + 3, pos[4] + format::kFrameHeader + len - 1}) {
    auto bad = original;
    bad[at] ^= 0x01;
    auto* f = reinterpret_cast<std::byte*>(bad.data() + pos[4]);
    format::store<std::uint32_t>(f, format::frame_crc(format::salt_crc(seg_id), f, len));
    write_file(path, bad);
    std::vector<Got> got;
    const auto rep = test::recover(dir.path(), 0, opt, false, got);
    EXPECT_EQ(got.size(), 4U);
    EXPECT_TRUE(records_intact(got, 0));
    ASSERT_EQ(rep.notes.size(), 1U);
    EXPECT_NE(rep.notes[0].find("authentication failed"), std::string::npos) << rep.notes[0];
  }
}

TEST(WalRecovery, TornSegmentHeaderAndEmptyNewestSegment) {
  ScratchDir dir;
  Options opt;
  opt.segment_bytes = 16 << 10;
  write_records(dir.path(), 0, 100, opt);
  // A newest segment whose header never fully reached the disk.
  {
    std::vector<char> junk(8192, 0);
    junk[0] = 'R';
    write_file(segment_path(dir.path(), 100), junk);
  }
  std::vector<Got> got;
  auto rep = test::recover(dir.path(), 0, opt, true, got);
  EXPECT_EQ(got.size(), 100U);
  EXPECT_EQ(rep.end_offset, 100U);
  ASSERT_EQ(rep.notes.size(), 1U);
  EXPECT_FALSE(fs::exists(segment_path(dir.path(), 100)));
  // A writer that created its segment and wrote only the header: removed quietly, log intact.
  {
    PartitionWriter w(dir.path(), 0, 100, opt);
    const auto rec = make_record(100);
    ASSERT_EQ(w.add(100, ingest_of(100), rec), Errc::ok);
    ASSERT_EQ(w.write(), Errc::ok);
  }
  auto seg = read_file(segment_path(dir.path(), 100));
  std::fill(seg.begin() + format::kHeaderBytes, seg.end(), 0);
  write_file(segment_path(dir.path(), 100), seg);
  got.clear();
  rep = test::recover(dir.path(), 0, opt, true, got);
  EXPECT_TRUE(rep.notes.empty());
  EXPECT_EQ(rep.end_offset, 100U);
  EXPECT_FALSE(fs::exists(segment_path(dir.path(), 100)));
  write_records(dir.path(), 100, 110, opt);
}

TEST(WalRecovery, EmptyOrMissingPartition) {
  ScratchDir dir;
  std::vector<Got> got;
  const auto rep = test::recover(dir.path(), 9, Options{}, true, got);
  EXPECT_EQ(rep.records, 0U);
  EXPECT_EQ(rep.end_offset, 0U);
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(partitions_in(dir.path()).empty());
}

// Power cut: only fdatasync'ed bytes are certain; the rest is a torn, bit-flipped prefix.
// Recovery must return every synced record, and only records that were really written.
TEST(WalRecovery, PowerCutKeepsEverySyncedRecordAndInventsNone) {
  const Key key = test_key(4);
  std::uint64_t cuts_reported = 0;
  std::uint64_t unsynced_survivors = 0;
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    ScratchDir dir;
    PowerCutOps ops;
    Options opt;
    opt.ops = &ops;
    opt.segment_bytes = 8192 + (rng() % 4) * 4096;
    if (seed % 3 == 0) opt.key = &key;
    std::uint64_t next = 0;
    // Several lives: write, sync some, cut the power, recover, go on.
    for (int life = 0; life < 4; ++life) {
      std::uint64_t synced = 0;
      {
        PartitionWriter w(dir.path(), 0, next, opt);
        const int batches = 1 + static_cast<int>(rng() % 6);
        for (int b = 0; b < batches; ++b) {
          const std::uint64_t n = 1 + rng() % 60;
          for (std::uint64_t i = 0; i < n; ++i) {
            const std::uint64_t o = w.added_end();
            const auto rec = make_record(o);
            ASSERT_EQ(w.add(o, ingest_of(o), rec), Errc::ok);
          }
          ASSERT_EQ(w.write(), Errc::ok);
          if (rng() % 2 == 0) {
            ASSERT_EQ(w.sync(), Errc::ok);
          }
        }
        synced = w.synced_end();
      }
      ops.cut(rng);
      std::vector<Got> got;
      Options ropt = opt;
      const auto rep = test::recover(dir.path(), 0, ropt, true, got);
      ASSERT_TRUE(records_intact(got, 0)) << "life " << life;
      ASSERT_GE(got.size(), synced) << "life " << life << ": a synced record was lost";
      EXPECT_EQ(rep.end_offset, got.size());
      cuts_reported += rep.notes.empty() ? 0 : 1;
      unsynced_survivors += got.size() - synced;
      next = rep.end_offset;
      // The repaired log reads back cleanly.
      std::vector<Got> again;
      const auto rep2 = test::recover(dir.path(), 0, ropt, true, again);
      EXPECT_TRUE(rep2.notes.empty()) << rep2.notes.front();
      EXPECT_EQ(again.size(), got.size());
    }
  }
  // The simulation really tore records, and some unsynced ones really survived intact.
  EXPECT_GT(cuts_reported, 20U);
  EXPECT_GT(unsynced_survivors, 0U);
}

}  // namespace
}  // namespace ringflow::wal
