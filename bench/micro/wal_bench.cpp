// The write-ahead log's file layer on its own: write throughput into the page cache (plain and
// encrypted), recovery scan speed over a WAL in the page cache, and CRC32C.
//
//   build/release/bench/ringflow_wal_bench [--benchmark_filter=Recover]
//   RINGFLOW_WAL_BENCH_DIR=/path  where the segments go (default: the system temp dir); the
//   recovery benchmark writes RINGFLOW_WAL_BENCH_MIB (default 1024) MiB there first.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ringflow/event.hpp"
#include "store/wal/wal.hpp"

namespace {

namespace fs = std::filesystem;
namespace wal = ringflow::wal;

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("RINGFLOW_WAL_BENCH_DIR");
    std::string tmpl = ((base != nullptr ? fs::path(base) : fs::temp_directory_path()) /
                        "ringflow-walbench-XXXXXX")
                           .string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<std::byte> record_of(std::size_t payload) {
  std::vector<std::byte> rec(ringflow::detail::record_size(8, payload));
  for (std::size_t i = 0; i < rec.size(); ++i)
    rec[i] = static_cast<std::byte>(i * 31 + 7);
  return rec;
}

const wal::Key& bench_key() {
  static const wal::Key key = [] {
    std::array<std::byte, 32> k{};
    for (std::size_t i = 0; i < k.size(); ++i)
      k[i] = static_cast<std::byte>(i + 1);
    return wal::Key::from_bytes(k);
  }();
  return key;
}

// add() a batch of records, then one write(): what the engine's writer thread does per pass.
// Args: payload bytes, records per batch, encrypted.
void BM_WalWrite(benchmark::State& state) {
  TempDir dir;
  const auto rec = record_of(static_cast<std::size_t>(state.range(0)));
  const auto batch = static_cast<std::uint64_t>(state.range(1));
  wal::Options opt;
  if (state.range(2) != 0) opt.key = &bench_key();
  wal::PartitionWriter w(dir.path(), 0, 0, opt);
  std::uint64_t offset = 0;
  std::uint64_t deleted_below = 0;
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < batch; ++i, ++offset) {
      if (w.add(offset, static_cast<std::int64_t>(offset), rec) != wal::Errc::ok) {
        state.SkipWithError("add failed");
        return;
      }
    }
    if (w.write() != wal::Errc::ok) {
      state.SkipWithError("write failed");
      return;
    }
    if (w.bytes_written() - deleted_below > (std::uint64_t{512} << 20)) {  // bound the disk use
      w.delete_segments_below(offset);
      deleted_below = w.bytes_written();
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(offset));
  state.SetBytesProcessed(static_cast<std::int64_t>(w.bytes_written()));
}
BENCHMARK(BM_WalWrite)
    ->ArgNames({"payload", "batch", "encrypted"})
    ->Args({64, 1024, 0})
    ->Args({256, 1024, 0})
    ->Args({64, 1024, 1})
    ->Args({256, 1024, 1})
    ->UseRealTime();

// Recovery of a WAL that is in the page cache (just written): bytes scanned per second,
// every record's CRC (and tag) checked and handed to a callback.
void BM_WalRecover(benchmark::State& state) {
  TempDir dir;
  const char* mib_env = std::getenv("RINGFLOW_WAL_BENCH_MIB");
  const std::uint64_t target = (mib_env != nullptr ? std::strtoull(mib_env, nullptr, 10) : 1024)
                               << 20;
  const auto rec = record_of(static_cast<std::size_t>(state.range(0)));
  wal::Options opt;
  if (state.range(1) != 0) opt.key = &bench_key();
  {
    wal::PartitionWriter w(dir.path(), 0, 0, opt);
    std::uint64_t offset = 0;
    while (w.bytes_written() < target) {
      for (int i = 0; i < 4096; ++i, ++offset) {
        (void)w.add(offset, static_cast<std::int64_t>(offset), rec);
      }
      if (w.write() != wal::Errc::ok) {
        state.SkipWithError("writing the WAL failed (disk space?)");
        return;
      }
    }
  }
  std::uint64_t scanned = 0;
  std::uint64_t records = 0;
  for (auto _ : state) {
    std::uint64_t sum = 0;
    const auto rep = wal::recover_partition(
        dir.path(), 0, opt, false,
        [&](const wal::RecoveredRecord& r) { sum += r.offset + r.record.size(); });
    benchmark::DoNotOptimize(sum);
    if (!rep.notes.empty()) {
      state.SkipWithError(rep.notes.front().c_str());
      return;
    }
    scanned += rep.bytes_scanned;
    records += rep.records;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(scanned));
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
}
BENCHMARK(BM_WalRecover)
    ->ArgNames({"payload", "encrypted"})
    ->Args({64, 0})
    ->Args({1024, 0})
    ->Args({256, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

void BM_Crc32c(benchmark::State& state) {
  std::vector<std::byte> buf(static_cast<std::size_t>(state.range(0)), std::byte{0x5A});
  std::uint32_t crc = 0;
  for (auto _ : state) {
    crc = wal::crc32c(buf.data(), buf.size(), crc);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32c)->Arg(100)->Arg(4096)->Arg(1 << 20);

}  // namespace

BENCHMARK_MAIN();
