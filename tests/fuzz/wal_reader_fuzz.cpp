// Fuzz target: the write-ahead log's segment reader (recover_partition) on arbitrary segment
// bytes. The input is a control byte, then the bytes of two segment files of one partition
// (first offsets 0 and 100), split at a position the input chooses. Files live in memory behind
// a FileOps (a placeholder of each name sits in a scratch folder for the directory listing).
//
// Control byte: bit 0 repair, bit 1 read with a key (the seeds' encrypted segments use it),
// bit 2 fix the header and frame CRCs before reading, so mutations reach the frame, offset and
// decryption checks behind them.
//
// Invariants: no crash, no hang, no read outside the files; records come out with consecutive
// offsets, each within the input's size; the report counts what was passed on; repair only
// shrinks or removes files, and a second recovery of the repaired files is clean and returns the
// same records.
#include <fcntl.h>
#include <stdlib.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "store/wal/format.hpp"
#include "store/wal/wal.hpp"

namespace {

namespace fs = std::filesystem;
namespace wal = ringflow::wal;
namespace format = ringflow::wal::format;

class MemoryOps final : public wal::FileOps {
 public:
  std::map<std::string, std::vector<std::byte>> files;

  int open(const fs::path& path, int flags, int /*mode*/) override {
    auto it = files.find(path.string());
    if (it == files.end()) {
      if ((flags & O_CREAT) == 0) return -ENOENT;
      it = files.emplace(path.string(), std::vector<std::byte>{}).first;
    }
    fds_.push_back(it->first);
    return static_cast<int>(fds_.size() - 1) + 3;
  }
  long pwrite(int fd, const void* d, std::size_t n, std::uint64_t at) override {
    auto& f = file(fd);
    if (at + n > f.size()) f.resize(at + n);
    std::memcpy(f.data() + at, d, n);
    return static_cast<long>(n);
  }
  long pread(int fd, void* d, std::size_t n, std::uint64_t at) override {
    const auto& f = file(fd);
    if (at >= f.size()) return 0;
    const std::size_t k = std::min<std::uint64_t>(n, f.size() - at);
    std::memcpy(d, f.data() + at, k);
    return static_cast<long>(k);
  }
  int fdatasync(int /*fd*/) override { return 0; }
  int fallocate(int fd, std::uint64_t bytes) override {
    auto& f = file(fd);
    if (bytes > f.size()) f.resize(bytes);
    return 0;
  }
  int ftruncate(int fd, std::uint64_t bytes) override {
    auto& f = file(fd);
    RINGFLOW_FUZZ_CHECK(bytes <= f.size(), "repair must not grow a file");
    f.resize(bytes);
    return 0;
  }
  int close(int fd) override {
    fds_.at(static_cast<std::size_t>(fd - 3)).clear();
    return 0;
  }
  int unlink(const fs::path& path) override {
    return files.erase(path.string()) == 1 ? 0 : -ENOENT;
  }
  int fsync_dir(const fs::path& /*dir*/) override { return 0; }

 private:
  std::vector<std::byte>& file(int fd) {
    const std::string& name = fds_.at(static_cast<std::size_t>(fd - 3));
    RINGFLOW_FUZZ_CHECK(!name.empty(), "use of a closed fd");
    return files.at(name);
  }
  std::vector<std::string> fds_;
};

const wal::Key& fuzz_key() {
  static const wal::Key key = [] {
    std::array<std::byte, 32> k{};
    for (std::size_t i = 0; i < k.size(); ++i)
      k[i] = static_cast<std::byte>(0xC0 + i);  // the key of tests/tools/wal_fixture.cpp
    return wal::Key::from_bytes(k);
  }();
  return key;
}

struct Scratch {
  fs::path dir;
  fs::path seg0;
  fs::path seg1;
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "ringflow-walfuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir = tmpl;
    fs::create_directories(dir / "p00000");
    seg0 = dir / "p00000" / format::segment_file_name(0);
    seg1 = dir / "p00000" / format::segment_file_name(100);
    std::ofstream(seg0).put('\0');  // names for the listing; the bytes come from MemoryOps
    std::ofstream(seg1).put('\0');
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// Recomputes the header CRC and, walking the frames as the reader does, each frame's CRC.
void fix_crcs(std::vector<std::byte>& f) {
  if (f.size() < format::kHeaderBytes) return;
  format::store<std::uint32_t>(f.data() + format::kHCrc, wal::crc32c(f.data(), format::kHCovered));
  const std::uint32_t salt =
      format::salt_crc(format::load<std::uint64_t>(f.data() + format::kHSegmentId));
  std::size_t at = format::kHeaderBytes;
  while (at + format::kFrameHeader <= f.size()) {
    const auto len = format::load<std::uint32_t>(f.data() + at + format::kFLength);
    if (len == 0 || len > format::kMaxBody) break;
    const std::size_t frame = format::frame_bytes(len);
    if (frame > f.size() - at) break;
    format::store<std::uint32_t>(f.data() + at, format::frame_crc(salt, f.data() + at, len));
    at += frame;
  }
}

struct Run {
  std::vector<std::uint64_t> offsets;
  std::vector<std::vector<std::byte>> records;
  wal::PartitionReport report;
  bool threw = false;
};

Run recover(const Scratch& s, MemoryOps& ops, bool repair, bool with_key, std::size_t max_len) {
  Run run;
  wal::Options opt;
  opt.ops = &ops;
  if (with_key) opt.key = &fuzz_key();
  try {
    run.report = wal::recover_partition(s.dir, 0, opt, repair, [&](const wal::RecoveredRecord& r) {
      RINGFLOW_FUZZ_CHECK(r.record.size() > 0 && r.record.size() <= max_len,
                          "a record larger than the input");
      if (!run.offsets.empty()) {
        RINGFLOW_FUZZ_CHECK(r.offset == run.offsets.back() + 1, "offsets not consecutive");
      }
      run.offsets.push_back(r.offset);
      run.records.emplace_back(r.record.begin(), r.record.end());
    });
  } catch (const wal::WalError& e) {
    RINGFLOW_FUZZ_CHECK(e.code() == wal::Errc::wrong_key, "only a key problem may throw");
    RINGFLOW_FUZZ_CHECK(run.offsets.empty(), "records passed on before a key error");
    run.threw = true;
    return run;
  }
  RINGFLOW_FUZZ_CHECK(run.report.records == run.offsets.size(), "report miscounts records");
  if (!run.offsets.empty()) {
    RINGFLOW_FUZZ_CHECK(run.report.first_offset == run.offsets.front(), "wrong first offset");
    RINGFLOW_FUZZ_CHECK(run.report.end_offset == run.offsets.back() + 1, "wrong end offset");
  }
  RINGFLOW_FUZZ_CHECK(run.report.truncated == !run.report.notes.empty(), "notes vs truncated");
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Scratch scratch;
  if (size < 3) return 0;
  const std::uint8_t control = data[0];
  const std::size_t split = std::min<std::size_t>(size - 3, (std::size_t{data[1]} << 8) | data[2]);
  const auto* body = reinterpret_cast<const std::byte*>(data + 3);
  const std::size_t n = size - 3;
  // The split is in units of 64 bytes so that a 4 KiB header + frames fits the first file.
  const std::size_t first_len = std::min(n, split * 64);

  MemoryOps ops;
  auto& f0 = ops.files[scratch.seg0.string()];
  f0.assign(body, body + first_len);
  auto& f1 = ops.files[scratch.seg1.string()];
  f1.assign(body + first_len, body + n);
  if ((control & 4) != 0) {
    fix_crcs(f0);
    fix_crcs(f1);
  }
  const bool repair = (control & 1) != 0;
  const bool with_key = (control & 2) != 0;
  const std::size_t before0 = f0.size();
  const std::size_t before1 = f1.size();

  const Run first = recover(scratch, ops, repair, with_key, n);
  if (!repair || first.threw) return 0;
  // Repair only cuts; a second pass over the repaired files is clean and returns the same.
  for (const auto& [name, bytes] : ops.files) {
    const std::size_t before = name == scratch.seg0.string() ? before0 : before1;
    RINGFLOW_FUZZ_CHECK(bytes.size() <= before, "repair grew a file");
  }
  // The placeholder names stay on disk; removed segments must not be listed again.
  for (const fs::path& p : {scratch.seg0, scratch.seg1}) {
    if (ops.files.count(p.string()) == 0) ops.files[p.string()] = {};  // reads as empty
  }
  const Run second = recover(scratch, ops, repair, with_key, n);
  RINGFLOW_FUZZ_CHECK(!second.threw, "a key error after a successful recovery");
  RINGFLOW_FUZZ_CHECK(second.offsets == first.offsets, "repaired log returns other records");
  RINGFLOW_FUZZ_CHECK(second.records == first.records, "repaired log returns other bytes");
  return 0;
}
