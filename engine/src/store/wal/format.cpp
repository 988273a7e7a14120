#include "store/wal/format.hpp"

#include <fcntl.h>
#include <isa-l/crc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace ringflow::wal {

std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc) noexcept {
  // ISA-L neither inverts the initial value nor the result: RFC 3720's CRC32C is
  // ~crc32_iscsi(buf, len, ~0). Continuing from a finished CRC therefore passes ~crc back in.
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  std::uint32_t state = ~crc;
  constexpr std::size_t kMaxChunk = std::size_t{1} << 30;  // its length is an int
  while (n > 0) {
    const std::size_t chunk = n < kMaxChunk ? n : kMaxChunk;
    state = crc32_iscsi(p, static_cast<int>(chunk), state);
    p += chunk;
    n -= chunk;
  }
  return ~state;
}

const char* to_string(Errc e) noexcept {
  switch (e) {
    case Errc::ok:
      return "ok";
    case Errc::io_error:
      return "io_error";
    case Errc::disk_full:
      return "disk_full";
    case Errc::corrupt:
      return "corrupt";
    case Errc::wrong_key:
      return "wrong_key";
    case Errc::bad_format:
      return "bad_format";
  }
  return "unknown";
}

namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

bool parse_hex_key(const std::string& text, std::array<std::byte, 32>& out) noexcept {
  if (text.size() != 64) return false;
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = hex_digit(text[2 * i]);
    const int lo = hex_digit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::byte>((hi << 4) | lo);
  }
  return true;
}

}  // namespace

Key Key::from_bytes(std::span<const std::byte, 32> bytes) {
  Key k;
  std::memcpy(k.bytes_.data(), bytes.data(), 32);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(bytes.data(), 32, md, &md_len, EVP_sha256(), nullptr) != 1 || md_len < 8) {
    throw WalError(Errc::io_error, "wal: SHA-256 of the key failed (OpenSSL)");
  }
  // Big-endian, so the id printed in hex is the start of `sha256sum` of the raw key.
  std::uint64_t id = 0;
  for (int i = 0; i < 8; ++i)
    id = (id << 8) | md[i];
  k.id_ = id;
  return k;
}

Key Key::from_file(const std::filesystem::path& path) {
  std::string raw;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      throw WalError(Errc::io_error, "wal: cannot read the key file " + path.string() + ": " +
                                         format::errno_text(errno));
    }
    char chunk[256];
    for (;;) {
      const ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || raw.size() > 4096) break;
      raw.append(chunk, static_cast<std::size_t>(n));
    }
    OPENSSL_cleanse(chunk, sizeof chunk);
    ::close(fd);
  }
  std::array<std::byte, 32> bytes{};
  if (raw.size() == 32) {
    std::memcpy(bytes.data(), raw.data(), 32);
  } else if (!parse_hex_key(trim(raw), bytes)) {
    OPENSSL_cleanse(raw.data(), raw.size());
    throw WalError(Errc::bad_format, "wal: the key file " + path.string() +
                                         " must hold 32 raw bytes or 64 hex digits");
  }
  OPENSSL_cleanse(raw.data(), raw.size());
  Key k = from_bytes(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return k;
}

Key Key::from_env(const char* variable) {
  const char* v = variable != nullptr ? std::getenv(variable) : nullptr;
  if (v == nullptr) {
    throw WalError(Errc::bad_format, std::string("wal: the key variable ") +
                                         (variable != nullptr ? variable : "(null)") +
                                         " is not set");
  }
  std::array<std::byte, 32> bytes{};
  if (!parse_hex_key(trim(v), bytes)) {
    throw WalError(Errc::bad_format,
                   std::string("wal: the key variable ") + variable + " must hold 64 hex digits");
  }
  Key k = from_bytes(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return k;
}

namespace format {

void encode_header(const SegmentHeader& h, std::byte* out) noexcept {
  std::memset(out, 0, kHeaderBytes);
  store<std::uint64_t>(out + kHMagic, kMagic);
  store<std::uint32_t>(out + kHVersion, h.version);
  store<std::uint32_t>(out + kHHeaderBytes, static_cast<std::uint32_t>(kHeaderBytes));
  store<std::uint32_t>(out + kHPartition, h.partition);
  store<std::uint32_t>(out + kHFlags, h.flags);
  store<std::uint64_t>(out + kHSegmentId, h.segment_id);
  store<std::uint64_t>(out + kHFirstOffset, h.first_offset);
  store<std::int64_t>(out + kHCreatedNs, h.created_ns);
  store<std::uint64_t>(out + kHKeyId, h.key_id);
  store<std::uint32_t>(out + kHCrc, crc32c(out, kHCovered));
}

bool decode_header(const std::byte* in, SegmentHeader& h, std::string& why) {
  if (load<std::uint64_t>(in + kHMagic) != kMagic) {
    why = "not a ringflow WAL segment (bad magic)";
    return false;
  }
  if (load<std::uint32_t>(in + kHCrc) != crc32c(in, kHCovered)) {
    why = "segment header CRC mismatch";
    return false;
  }
  h.version = load<std::uint32_t>(in + kHVersion);
  if (h.version != kVersion) {
    why = "unknown segment format version " + std::to_string(h.version);
    return false;
  }
  if (load<std::uint32_t>(in + kHHeaderBytes) != kHeaderBytes) {
    why = "unexpected segment header size";
    return false;
  }
  h.partition = load<std::uint32_t>(in + kHPartition);
  h.flags = load<std::uint32_t>(in + kHFlags);
  if ((h.flags & ~kKnownFlags) != 0) {
    why = "unknown segment flags";
    return false;
  }
  h.segment_id = load<std::uint64_t>(in + kHSegmentId);
  h.first_offset = load<std::uint64_t>(in + kHFirstOffset);
  h.created_ns = load<std::int64_t>(in + kHCreatedNs);
  h.key_id = load<std::uint64_t>(in + kHKeyId);
  return true;
}

std::uint32_t salt_crc(std::uint64_t segment_id) noexcept {
  std::byte b[8];
  store<std::uint64_t>(b, segment_id);
  return crc32c(b, sizeof b);
}

void make_nonce(std::uint64_t segment_id, std::uint32_t index, unsigned char* out) noexcept {
  std::memcpy(out, &segment_id, 8);
  std::memcpy(out + 8, &index, 4);
}

void make_aad(std::uint64_t segment_id, std::uint64_t offset, std::int64_t ingest_ns,
              std::uint32_t length, unsigned char* out) noexcept {
  std::memcpy(out, &segment_id, 8);
  std::memcpy(out + 8, &offset, 8);
  std::memcpy(out + 16, &ingest_ns, 8);
  std::memcpy(out + 24, &length, 4);
}

std::string partition_dir_name(std::uint32_t partition) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "p%05u", partition);
  return buf;
}

std::string segment_file_name(std::uint64_t first_offset) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu.seg", static_cast<unsigned long long>(first_offset));
  return buf;
}

bool parse_segment_file_name(const std::string& name, std::uint64_t& first_offset) noexcept {
  if (name.size() != 24 || name.compare(20, 4, ".seg") != 0) return false;
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  first_offset = v;
  return true;
}

Cipher::Cipher(const Key& key) {
  enc_ = EVP_CIPHER_CTX_new();
  dec_ = EVP_CIPHER_CTX_new();
  const auto* k = reinterpret_cast<const unsigned char*>(key.bytes().data());
  const bool ok = enc_ != nullptr && dec_ != nullptr &&
                  EVP_EncryptInit_ex(enc_, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
                  EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
                  EVP_EncryptInit_ex(enc_, nullptr, nullptr, k, nullptr) == 1 &&
                  EVP_DecryptInit_ex(dec_, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
                  EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
                  EVP_DecryptInit_ex(dec_, nullptr, nullptr, k, nullptr) == 1;
  if (!ok) {
    EVP_CIPHER_CTX_free(enc_);
    EVP_CIPHER_CTX_free(dec_);
    throw WalError(Errc::io_error, "wal: AES-256-GCM setup failed (OpenSSL)");
  }
}

Cipher::~Cipher() {
  EVP_CIPHER_CTX_free(enc_);
  EVP_CIPHER_CTX_free(dec_);
}

void Cipher::seal(std::uint64_t segment_id, std::uint32_t index, std::uint64_t offset,
                  std::int64_t ingest_ns, std::uint32_t length, const std::byte* in, std::size_t n,
                  std::byte* out) {
  unsigned char iv[kNonceBytes];
  unsigned char aad[kAadBytes];
  make_nonce(segment_id, index, iv);
  make_aad(segment_id, offset, ingest_ns, length, aad);
  int len = 0;
  auto* o = reinterpret_cast<unsigned char*>(out);
  const bool ok = EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, iv) == 1 &&
                  EVP_EncryptUpdate(enc_, nullptr, &len, aad, sizeof aad) == 1 &&
                  EVP_EncryptUpdate(enc_, o, &len, reinterpret_cast<const unsigned char*>(in),
                                    static_cast<int>(n)) == 1 &&
                  EVP_EncryptFinal_ex(enc_, o + len, &len) == 1 &&
                  EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG, kTagBytes, o + n) == 1;
  if (!ok) throw WalError(Errc::io_error, "wal: AES-256-GCM encryption failed (OpenSSL)");
}

bool Cipher::open(std::uint64_t segment_id, std::uint32_t index, std::uint64_t offset,
                  std::int64_t ingest_ns, const std::byte* body, std::uint32_t n,
                  std::byte* out) noexcept {
  if (n < kTagBytes) return false;
  const std::uint32_t ct = n - static_cast<std::uint32_t>(kTagBytes);
  unsigned char iv[kNonceBytes];
  unsigned char aad[kAadBytes];
  make_nonce(segment_id, index, iv);
  make_aad(segment_id, offset, ingest_ns, n, aad);
  unsigned char tag[kTagBytes];
  std::memcpy(tag, body + ct, kTagBytes);
  int len = 0;
  auto* o = reinterpret_cast<unsigned char*>(out);
  return EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, iv) == 1 &&
         EVP_DecryptUpdate(dec_, nullptr, &len, aad, sizeof aad) == 1 &&
         EVP_DecryptUpdate(dec_, o, &len, reinterpret_cast<const unsigned char*>(body),
                           static_cast<int>(ct)) == 1 &&
         EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) == 1 &&
         EVP_DecryptFinal_ex(dec_, o + len, &len) > 0;
}

std::uint64_t random_u64() {
  for (;;) {
    std::uint64_t v = 0;
    const ssize_t n = ::getrandom(&v, sizeof v, 0);
    if (n == static_cast<ssize_t>(sizeof v)) {
      if (v != 0) return v;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    throw WalError(Errc::io_error, "wal: getrandom failed: " + errno_text(errno));
  }
}

std::string errno_text(int err) {
  char buf[128];
  const char* msg = ::strerror_r(err, buf, sizeof buf);  // GNU variant
  return msg;
}

}  // namespace format
}  // namespace ringflow::wal
