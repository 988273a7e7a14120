// ringflow-wal: look into a write-ahead log directory without changing it.
//
//   ringflow-wal inspect DIR     per partition: segments, records, first/last offsets, problems
//   ringflow-wal verify DIR      every CRC/tag/offset check; the problems with file and byte;
//                                exit 1 if there is any
//   ringflow-wal dump DIR        one line per record (offset, ingest_ns, topic, key, payload)
//   encrypted logs: --key-file F (32 raw bytes or 64 hex digits) or --key-env VAR (64 hex digits)
//
// Exit codes: 0 ok, 1 a problem found (verify) or the log could not be read, 2 usage.

#include <CLI/CLI.hpp>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "ringflow/event.hpp"
#include "ringflow/version.hpp"
#include "store/wal/wal.hpp"

namespace {

namespace fs = std::filesystem;
namespace wal = ringflow::wal;

std::string printable(const std::byte* p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (std::isprint(c) != 0 && c != '\\' && c != '"') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string hex_prefix(const std::byte* p, std::size_t n, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < n && i < max; ++i) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(p[i]));
    out += buf;
  }
  if (n > max) out += "..";
  return out;
}

void dump_record(std::uint32_t partition, const wal::RecoveredRecord& r) {
  using ringflow::detail::RecordHeader;
  std::printf("p%u offset=%llu ingest_ns=%lld", partition,
              static_cast<unsigned long long>(r.offset), static_cast<long long>(r.ingest_ns));
  RecordHeader h{};
  if (r.record.size() >= sizeof h) std::memcpy(&h, r.record.data(), sizeof h);
  const std::size_t need = ringflow::detail::record_size(
      h.key_len, h.payload_len, (h.flags & ringflow::detail::kRecordDeadLetter) != 0);
  if (r.record.size() < sizeof h || need > r.record.size()) {
    std::printf(" undecodable record (%zu bytes): %s\n", r.record.size(),
                hex_prefix(r.record.data(), r.record.size(), 32).c_str());
    return;
  }
  const std::byte* key = r.record.data() + sizeof h;
  const std::byte* payload = key + h.key_len;
  std::printf(" topic=%u id=%llu attempt=%u key=\"%s\" payload_len=%u payload=%s%s\n", h.topic,
              static_cast<unsigned long long>(h.id), static_cast<unsigned>(h.attempt),
              printable(key, h.key_len).c_str(), static_cast<unsigned>(h.payload_len),
              hex_prefix(payload, h.payload_len, 16).c_str(),
              (h.flags & ringflow::detail::kRecordDeadLetter) != 0 ? " dead_letter" : "");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Inspect, verify or dump a ringflow write-ahead log directory (read only)"};
  app.set_version_flag("--version", "ringflow-wal " + std::string(ringflow::version()));
  app.require_subcommand(1, 1);
  std::string dir;
  std::string key_file;
  std::string key_env;
  std::vector<std::uint32_t> only;
  std::vector<CLI::App*> subs;
  for (const auto& [name, what] :
       {std::pair{"inspect", "per partition: segments, records, first and last offsets"},
        std::pair{"verify", "check every record; list problems with file and byte; exit 1 if any"},
        std::pair{"dump", "one line per record: offset, ingest_ns, topic, key, payload"}}) {
    auto* sub = app.add_subcommand(name, what);
    sub->add_option("dir", dir, "the WAL directory (holds p00000, p00001, ...)")->required();
    auto* kf = sub->add_option("--key-file", key_file, "AES-256 key: 32 raw bytes or 64 hex digits")
                   ->check(CLI::ExistingFile);
    sub->add_option("--key-env", key_env, "environment variable holding the key (64 hex digits)")
        ->excludes(kf);
    sub->add_option("--partition,-p", only, "only these partitions");
    subs.push_back(sub);
  }
  if (argc > 1 && argv[1][0] != '-' && std::strcmp(argv[1], "inspect") != 0 &&
      std::strcmp(argv[1], "verify") != 0 && std::strcmp(argv[1], "dump") != 0) {
    std::cerr << "ringflow-wal: unknown subcommand '" << argv[1]
              << "'; valid: inspect, verify, dump\nRun with --help for more information.\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "ringflow-wal: " << e.what() << "\nRun with --help for more information.\n";
    return 2;
  }
  const std::string cmd = app.get_subcommands().front()->get_name();

  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    std::cerr << "ringflow-wal: " << dir << " is not a directory\n";
    return 2;
  }
  std::optional<wal::Key> key;
  try {
    if (!key_file.empty()) key = wal::Key::from_file(key_file);
    if (!key_env.empty()) key = wal::Key::from_env(key_env.c_str());
  } catch (const wal::WalError& e) {
    std::cerr << "ringflow-wal: " << e.what() << "\n";
    return 2;
  }
  wal::Options opt;
  if (key) opt.key = &*key;

  std::vector<std::uint32_t> parts = only.empty() ? wal::partitions_in(dir) : only;
  if (parts.empty()) {
    std::cerr << "ringflow-wal: no partitions (p<N> folders) in " << dir << "\n";
    return cmd == "verify" ? 1 : 0;
  }
  std::size_t problems = 0;
  int rc = 0;
  for (const std::uint32_t p : parts) {
    try {
      std::function<void(const wal::RecoveredRecord&)> on_record;
      std::optional<std::uint64_t> last;
      if (cmd == "dump") {
        on_record = [p](const wal::RecoveredRecord& r) { dump_record(p, r); };
      } else {
        on_record = [&last](const wal::RecoveredRecord& r) { last = r.offset; };
      }
      const wal::PartitionReport rep = wal::recover_partition(dir, p, opt, false, on_record);
      problems += rep.notes.size();
      if (cmd == "inspect") {
        std::printf("p%u: %llu segments, %llu records", p,
                    static_cast<unsigned long long>(rep.segments),
                    static_cast<unsigned long long>(rep.records));
        if (last) {
          std::printf(", offsets %llu..%llu", static_cast<unsigned long long>(rep.first_offset),
                      static_cast<unsigned long long>(*last));
        }
        std::printf(", next offset %llu, %llu bytes%s\n",
                    static_cast<unsigned long long>(rep.end_offset),
                    static_cast<unsigned long long>(rep.bytes_scanned),
                    rep.notes.empty() ? "" : ", PROBLEMS (run verify)");
      } else if (cmd == "verify") {
        for (const auto& n : rep.notes)
          std::printf("p%u: %s\n", p, n.c_str());
        if (rep.notes.empty()) {
          std::printf("p%u: ok, %llu records in %llu segments\n", p,
                      static_cast<unsigned long long>(rep.records),
                      static_cast<unsigned long long>(rep.segments));
        }
      } else {
        for (const auto& n : rep.notes)
          std::fprintf(stderr, "p%u: %s\n", p, n.c_str());
      }
    } catch (const wal::WalError& e) {
      std::fflush(stdout);
      std::cerr << "ringflow-wal: partition " << p << ": " << e.what() << " ("
                << wal::to_string(e.code()) << ")\n";
      if (e.code() == wal::Errc::wrong_key && !key) {
        std::cerr << "ringflow-wal: pass the key with --key-file or --key-env\n";
      }
      rc = 1;
    }
  }
  std::fflush(stdout);
  if (cmd == "verify" && problems > 0) {
    std::cerr << "ringflow-wal: " << problems << " problem(s) found\n";
    return 1;
  }
  return rc;
}
