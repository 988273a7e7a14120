// The write-ahead log's building blocks: CRC32C (RFC 3720 vectors), keys, the segment header.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <fstream>

#include "store/wal/format.hpp"
#include "wal_test_util.hpp"

namespace ringflow::wal {
namespace {

using test::ScratchDir;

TEST(WalCrc32c, MatchesRfc3720TestVectors) {
  std::array<unsigned char, 32> buf{};
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x8A9136AAU);
  buf.fill(0xFF);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x62A8AB43U);
  for (std::size_t i = 0; i < buf.size(); ++i)
    buf[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x46DD794EU);
  for (std::size_t i = 0; i < buf.size(); ++i)
    buf[i] = static_cast<unsigned char>(31 - i);
  EXPECT_EQ(crc32c(buf.data(), buf.size()), 0x113FDB5CU);
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283U);  // the usual check value
  EXPECT_EQ(crc32c(buf.data(), 0), 0U);
}

TEST(WalCrc32c, ContinuesAcrossPieces) {
  std::vector<unsigned char> data(1000);
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<unsigned char>(i * 13 + 7);
  const std::uint32_t whole = crc32c(data.data(), data.size());
  for (std::size_t cut : {0UL, 1UL, 7UL, 500UL, 999UL, 1000UL}) {
    const std::uint32_t a = crc32c(data.data(), cut);
    EXPECT_EQ(crc32c(data.data() + cut, data.size() - cut, a), whole) << "cut at " << cut;
  }
}

std::array<std::byte, 32> key_bytes(unsigned char seed) {
  std::array<std::byte, 32> k{};
  for (std::size_t i = 0; i < k.size(); ++i)
    k[i] = static_cast<std::byte>(seed + i);
  return k;
}

TEST(WalKey, IdIsTheStartOfSha256) {
  std::array<std::byte, 32> zeros{};
  // sha256 of 32 zero bytes = 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925
  EXPECT_EQ(Key::from_bytes(zeros).id(), 0x66687aadf862bd77ULL);
  EXPECT_NE(Key::from_bytes(key_bytes(1)).id(), Key::from_bytes(key_bytes(2)).id());
}

TEST(WalKey, ReadsRawAndHexFilesAndTheEnvironment) {
  ScratchDir dir;
  const auto k = key_bytes(0xA0);
  {
    std::ofstream raw(dir.path() / "raw.key", std::ios::binary);
    raw.write(reinterpret_cast<const char*>(k.data()), 32);
  }
  std::string hex;
  for (std::byte b : k) {
    char two[3];
    std::snprintf(two, sizeof two, "%02x", static_cast<unsigned>(b));
    hex += two;
  }
  {
    std::ofstream h(dir.path() / "hex.key");
    h << "  " << hex << "\n";
  }
  const auto want = Key::from_bytes(k).id();
  EXPECT_EQ(Key::from_file(dir.path() / "raw.key").id(), want);
  EXPECT_EQ(Key::from_file(dir.path() / "hex.key").id(), want);
  ::setenv("RINGFLOW_WAL_TEST_KEY", hex.c_str(), 1);
  EXPECT_EQ(Key::from_env("RINGFLOW_WAL_TEST_KEY").id(), want);
  ::setenv("RINGFLOW_WAL_TEST_KEY", "abc", 1);
  EXPECT_THROW((void)Key::from_env("RINGFLOW_WAL_TEST_KEY"), WalError);
  ::unsetenv("RINGFLOW_WAL_TEST_KEY");
  try {
    (void)Key::from_env("RINGFLOW_WAL_TEST_KEY");
    FAIL() << "an unset variable must throw";
  } catch (const WalError& e) {
    EXPECT_NE(std::string(e.what()).find("not set"), std::string::npos) << e.what();
  }
  {
    std::ofstream bad(dir.path() / "bad.key");
    bad << "not a key\n";
  }
  EXPECT_THROW((void)Key::from_file(dir.path() / "bad.key"), WalError);
  EXPECT_THROW((void)Key::from_file(dir.path() / "missing.key"), WalError);
}

TEST(WalFormat, HeaderRoundTripsAndRejectsDamage) {
  format::SegmentHeader h;
  h.partition = 7;
  h.flags = format::kFlagEncrypted;
  h.segment_id = 0x1122334455667788ULL;
  h.first_offset = 12345;
  h.created_ns = 99;
  h.key_id = 42;
  std::vector<std::byte> buf(format::kHeaderBytes);
  format::encode_header(h, buf.data());
  format::SegmentHeader back;
  std::string why;
  ASSERT_TRUE(format::decode_header(buf.data(), back, why)) << why;
  EXPECT_EQ(back.partition, 7U);
  EXPECT_EQ(back.segment_id, h.segment_id);
  EXPECT_EQ(back.first_offset, 12345U);
  EXPECT_EQ(back.key_id, 42U);
  EXPECT_TRUE(back.encrypted());
  for (std::size_t bit = 0; bit < format::kHCovered * 8 + 32; ++bit) {
    auto damaged = buf;
    damaged[bit / 8] ^= static_cast<std::byte>(1 << (bit % 8));
    EXPECT_FALSE(format::decode_header(damaged.data(), back, why)) << "bit " << bit;
  }
}

TEST(WalFormat, SegmentFileNames) {
  EXPECT_EQ(format::segment_file_name(1234), "00000000000000001234.seg");
  std::uint64_t v = 0;
  EXPECT_TRUE(format::parse_segment_file_name("00000000000000001234.seg", v));
  EXPECT_EQ(v, 1234U);
  EXPECT_TRUE(format::parse_segment_file_name(format::segment_file_name(UINT64_MAX), v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_FALSE(format::parse_segment_file_name("99999999999999999999.seg", v));  // > 2^64
  EXPECT_FALSE(format::parse_segment_file_name("0000000000000000123x.seg", v));
  EXPECT_FALSE(format::parse_segment_file_name("00000000000000001234.tmp", v));
  EXPECT_EQ(format::partition_dir_name(7), "p00007");
}

TEST(WalFormat, NonceIsSegmentIdThenIndex) {
  unsigned char n[12];
  format::make_nonce(0x0807060504030201ULL, 0x0C0B0A09U, n);
  for (int i = 0; i < 12; ++i)
    EXPECT_EQ(n[i], i + 1);
}

}  // namespace
}  // namespace ringflow::wal
