// The write-ahead log's on-disk layout (docs/wal-format.md) and the AES-256-GCM record cipher.
// Internal to the file layer: the writer, recovery and their tests.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "store/wal/wal.hpp"

using EVP_CIPHER_CTX = struct evp_cipher_ctx_st;

namespace ringflow::wal::format {

static_assert(std::endian::native == std::endian::little,
              "the WAL format is little-endian and written with memcpy");

// ---- segment header: kHeaderBytes at the start of every segment file ----
inline constexpr std::uint64_t kMagic = 0x4745534C'41574652ULL;  // bytes "RFWALSEG"
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::size_t kHeaderBytes = 4096;  // records start page-aligned
inline constexpr std::uint32_t kFlagEncrypted = 1;
inline constexpr std::uint32_t kKnownFlags = kFlagEncrypted;

// Field positions in the header.
inline constexpr std::size_t kHMagic = 0;         // u64
inline constexpr std::size_t kHVersion = 8;       // u32
inline constexpr std::size_t kHHeaderBytes = 12;  // u32
inline constexpr std::size_t kHPartition = 16;    // u32
inline constexpr std::size_t kHFlags = 20;        // u32
inline constexpr std::size_t kHSegmentId = 24;    // u64
inline constexpr std::size_t kHFirstOffset = 32;  // u64
inline constexpr std::size_t kHCreatedNs = 40;    // i64, CLOCK_REALTIME
inline constexpr std::size_t kHKeyId = 48;        // u64, 0 unless encrypted
inline constexpr std::size_t kHCrc = 60;          // u32: CRC32C of bytes [0, 60)
inline constexpr std::size_t kHCovered = 60;

struct SegmentHeader {
  std::uint32_t version = kVersion;
  std::uint32_t partition = 0;
  std::uint32_t flags = 0;
  std::uint64_t segment_id = 0;
  std::uint64_t first_offset = 0;
  std::int64_t created_ns = 0;
  std::uint64_t key_id = 0;
  [[nodiscard]] bool encrypted() const noexcept { return (flags & kFlagEncrypted) != 0; }
};

// ---- record frame: 8-aligned, kFrameHeader bytes then the body padded to 8 ----
inline constexpr std::size_t kFrameHeader = 24;
inline constexpr std::size_t kFCrc = 0;      // u32: CRC32C(segment id, bytes [4, 24 + length))
inline constexpr std::size_t kFLength = 4;   // u32: body bytes (0 = end of segment)
inline constexpr std::size_t kFOffset = 8;   // u64
inline constexpr std::size_t kFIngest = 16;  // i64
inline constexpr std::size_t kTagBytes = 16;
inline constexpr std::size_t kNonceBytes = 12;
inline constexpr std::size_t kAadBytes = 28;  // segment id, offset, ingest_ns, length
/// The largest body a frame may declare (far above any partition-log record).
inline constexpr std::uint32_t kMaxBody = 64U << 20;

[[nodiscard]] constexpr std::size_t align8(std::size_t n) noexcept {
  return (n + 7) & ~std::size_t{7};
}
[[nodiscard]] constexpr std::size_t frame_bytes(std::size_t body) noexcept {
  return kFrameHeader + align8(body);
}

template <class T>
[[nodiscard]] inline T load(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void store(std::byte* p, T v) noexcept {
  std::memcpy(p, &v, sizeof v);
}

void encode_header(const SegmentHeader& h, std::byte* out /* kHeaderBytes */) noexcept;
/// Checks magic, version, size, flags and CRC; on failure returns false and says why.
bool decode_header(const std::byte* in /* kHeaderBytes */, SegmentHeader& h, std::string& why);

/// CRC32C of the segment id: the salt every record CRC starts from.
[[nodiscard]] std::uint32_t salt_crc(std::uint64_t segment_id) noexcept;
/// A frame's CRC: salt, then bytes [4, 24 + length) of the frame.
[[nodiscard]] inline std::uint32_t frame_crc(std::uint32_t salt, const std::byte* frame,
                                             std::uint32_t length) noexcept {
  return crc32c(frame + kFLength, kFrameHeader - kFLength + length, salt);
}

/// 96-bit GCM nonce: segment id (8 bytes LE), then the record's index in the segment (4 bytes LE).
void make_nonce(std::uint64_t segment_id, std::uint32_t index, unsigned char* out) noexcept;
void make_aad(std::uint64_t segment_id, std::uint64_t offset, std::int64_t ingest_ns,
              std::uint32_t length, unsigned char* out) noexcept;

/// "p00007"
[[nodiscard]] std::string partition_dir_name(std::uint32_t partition);
/// "00000000000000001234.seg"
[[nodiscard]] std::string segment_file_name(std::uint64_t first_offset);
/// Parses a segment file name; false if it is not one.
bool parse_segment_file_name(const std::string& name, std::uint64_t& first_offset) noexcept;

/// AES-256-GCM with one reusable EVP context (one thread).
class Cipher {
 public:
  explicit Cipher(const Key& key);
  ~Cipher();
  Cipher(const Cipher&) = delete;
  Cipher& operator=(const Cipher&) = delete;
  /// Writes n ciphertext bytes then the 16-byte tag to out. Throws WalError on an OpenSSL error.
  void seal(std::uint64_t segment_id, std::uint32_t index, std::uint64_t offset,
            std::int64_t ingest_ns, std::uint32_t length, const std::byte* in, std::size_t n,
            std::byte* out);
  /// Decrypts body (n = ciphertext + tag) into out (n - 16 bytes); false if the tag does not
  /// verify.
  bool open(std::uint64_t segment_id, std::uint32_t index, std::uint64_t offset,
            std::int64_t ingest_ns, const std::byte* body, std::uint32_t n,
            std::byte* out) noexcept;

 private:
  EVP_CIPHER_CTX* enc_ = nullptr;
  EVP_CIPHER_CTX* dec_ = nullptr;
};

/// Random 64-bit value from getrandom(2) (never 0).
[[nodiscard]] std::uint64_t random_u64();

/// "io_error: <what>: <strerror>"
[[nodiscard]] std::string errno_text(int err);

}  // namespace ringflow::wal::format
