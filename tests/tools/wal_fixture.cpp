// Writes small write-ahead logs for the ringflow-wal tests (tests/tools/wal_cli_test.cmake):
//   <out>/plain      p00000: 100 records over several segments; p00002: 10 records
//   <out>/enc        p00000: 20 encrypted records; the key in <out>/key.hex
//   <out>/corrupt    p00000: 50 records, one bit of record 30 flipped
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ringflow/event.hpp"
#include "store/wal/wal.hpp"

namespace {

namespace fs = std::filesystem;
namespace wal = ringflow::wal;

std::vector<std::byte> record(std::uint64_t offset, std::uint32_t partition) {
  const std::string key = "order-" + std::to_string(offset);
  const std::string payload = "{\"qty\":" + std::to_string(offset) + "}";
  std::vector<std::byte> rec(ringflow::detail::record_size(key.size(), payload.size()));
  ringflow::detail::RecordHeader h{};
  h.offset = offset;
  h.id = ringflow::detail::make_event_id(offset, partition);
  h.ingest_ns = static_cast<std::int64_t>(1000 + offset);
  h.topic = 7;
  h.partition = partition;
  h.attempt = 1;
  h.payload_len = static_cast<std::uint16_t>(payload.size());
  h.key_len = static_cast<std::uint8_t>(key.size());
  std::memcpy(rec.data(), &h, sizeof h);
  std::memcpy(rec.data() + sizeof h, key.data(), key.size());
  std::memcpy(rec.data() + sizeof h + key.size(), payload.data(), payload.size());
  return rec;
}

void write(const fs::path& dir, std::uint32_t partition, std::uint64_t n, const wal::Key* key) {
  wal::Options opt;
  opt.segment_bytes = 8192;  // a few dozen records per segment
  opt.key = key;
  wal::PartitionWriter w(dir, partition, 0, opt);
  for (std::uint64_t o = 0; o < n; ++o) {
    const auto rec = record(o, partition);
    if (w.add(o, static_cast<std::int64_t>(1000 + o), rec) != wal::Errc::ok)
      throw std::runtime_error("add");
  }
  if (w.write() != wal::Errc::ok || w.sync() != wal::Errc::ok) throw std::runtime_error("write");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ringflow_wal_fixture OUT_DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  fs::remove_all(out);
  fs::create_directories(out);
  write(out / "plain", 0, 100, nullptr);
  write(out / "plain", 2, 10, nullptr);

  std::array<std::byte, 32> k{};
  std::string hex;
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<std::byte>(0xC0 + i);
    char two[3];
    std::snprintf(two, sizeof two, "%02x", static_cast<unsigned>(k[i]));
    hex += two;
  }
  std::ofstream(out / "key.hex") << hex << "\n";
  const wal::Key key = wal::Key::from_bytes(k);
  write(out / "enc", 0, 20, &key);

  write(out / "corrupt", 0, 50, nullptr);
  // Find record 30 and flip a bit in its body.
  for (const auto& e : fs::directory_iterator(out / "corrupt" / "p00000")) {
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::size_t at = 4096;
    while (at + 24 <= bytes.size()) {
      std::uint32_t len = 0;
      std::uint64_t off = 0;
      std::memcpy(&len, bytes.data() + at + 4, 4);
      std::memcpy(&off, bytes.data() + at + 8, 8);
      if (len == 0) break;
      if (off == 30) {
        f.seekp(static_cast<std::streamoff>(at + 24 + 40));
        const char flipped = static_cast<char>(bytes[at + 24 + 40] ^ 0x04);
        f.write(&flipped, 1);
        std::printf("flipped %s byte %zu\n", e.path().filename().c_str(), at + 24 + 40);
        return 0;
      }
      at += 24 + ((len + 7) & ~std::size_t{7});
    }
  }
  std::fprintf(stderr, "record 30 not found\n");
  return 1;
}
