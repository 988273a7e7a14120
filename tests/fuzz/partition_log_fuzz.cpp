// Fuzz target: partition-log records. The input drives a random sequence of appends (keys and
// payloads within and beyond the limits, dead letters, ingest times that go backwards), age
// evictions, seeks and reads on a small log that wraps often. A model of what was appended
// checks every read:
//   - append() throws std::length_error exactly when the key or payload is over its limit,
//     and then changes nothing;
//   - offsets are dense; end_offset() counts the appends; first_offset() never decreases;
//   - every retained offset reads back ok and equal, byte for byte, to what was appended;
//   - ingest_ns never decreases; seek_time(t) lands on the first retained record at or after t;
//   - a read below first_offset() reports evicted and moves the reader to first_offset().
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "ringflow/partition_log.hpp"

namespace {

using ringflow::PartitionLog;
using ringflow::PartitionReader;
using ringflow::ReadStatus;
using ringflow::StoredEvent;

struct Expected {
  std::uint64_t id = 0;
  std::uint32_t topic = 0;
  std::int64_t ingest_ns = 0;
  std::uint16_t attempt = 0;
  std::uint8_t priority = 0;
  std::string key;
  std::vector<std::byte> payload;
  std::optional<ringflow::DeadLetterInfo> dead_letter;
};

std::byte pattern_byte(std::uint64_t offset, std::size_t i) {
  return static_cast<std::byte>((offset * 131 + i * 7 + 1) & 0xFFU);
}

void check_equal(const StoredEvent& got, const Expected& want, std::uint64_t offset,
                 std::uint32_t partition) {
  RINGFLOW_FUZZ_CHECK(got.offset == offset, "offset read back differs");
  RINGFLOW_FUZZ_CHECK(got.id == want.id, "id read back differs");
  RINGFLOW_FUZZ_CHECK(got.topic.value == want.topic, "topic read back differs");
  RINGFLOW_FUZZ_CHECK(got.partition == partition, "partition read back differs");
  RINGFLOW_FUZZ_CHECK(got.ingest_ns == want.ingest_ns, "ingest_ns read back differs");
  RINGFLOW_FUZZ_CHECK(got.attempt == want.attempt, "attempt read back differs");
  RINGFLOW_FUZZ_CHECK(static_cast<std::uint8_t>(got.priority) == want.priority,
                      "priority read back differs");
  RINGFLOW_FUZZ_CHECK(got.key == want.key, "key read back differs");
  RINGFLOW_FUZZ_CHECK(got.payload == want.payload, "payload read back differs");
  RINGFLOW_FUZZ_CHECK(got.dead_letter.has_value() == want.dead_letter.has_value(),
                      "dead-letter flag read back differs");
  if (want.dead_letter) {
    RINGFLOW_FUZZ_CHECK(
        std::memcmp(&*got.dead_letter, &*want.dead_letter, sizeof(ringflow::DeadLetterInfo)) == 0,
        "dead-letter info read back differs");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  constexpr std::uint32_t kPartition = 3;

  PartitionLog::Options opts;
  const bool bad_options = in.ConsumeIntegralInRange<int>(0, 15) == 0;
  if (bad_options) {
    // Too small a segment or under two segments of retention: must be refused up front.
    opts.segment_bytes =
        in.ConsumeIntegralInRange<std::size_t>(0, PartitionLog::kMaxRecordBytes * 4);
    opts.retention_bytes =
        in.ConsumeIntegralInRange<std::size_t>(0, PartitionLog::kMaxRecordBytes * 8);
    const std::size_t seg = opts.segment_bytes & ~std::size_t{7};
    const bool should_work =
        opts.segment_bytes >= PartitionLog::kMaxRecordBytes && opts.retention_bytes / seg >= 2;
    try {
      PartitionLog log(kPartition, opts);
      RINGFLOW_FUZZ_CHECK(should_work, "PartitionLog accepted options it must refuse");
    } catch (const std::invalid_argument&) {
      RINGFLOW_FUZZ_CHECK(!should_work, "PartitionLog refused valid options");
    }
    return 0;
  }
  opts.segment_bytes = in.ConsumeIntegralInRange<std::size_t>(PartitionLog::kMaxRecordBytes,
                                                              PartitionLog::kMaxRecordBytes * 6);
  const std::size_t segments = in.ConsumeIntegralInRange<std::size_t>(2, 5);
  opts.retention_bytes = (opts.segment_bytes & ~std::size_t{7}) * segments +
                         in.ConsumeIntegralInRange<std::size_t>(0, 7);
  opts.preallocate = in.ConsumeBool();
  PartitionLog log(kPartition, opts);
  RINGFLOW_FUZZ_CHECK(log.segment_count() == segments, "unexpected segment count");

  std::vector<Expected> model;
  std::int64_t clock = in.ConsumeIntegralInRange<std::int64_t>(-1'000'000, 1'000'000);
  std::int64_t last_ingest = INT64_MIN;
  std::uint64_t last_first = 0;
  PartitionReader reader = log.reader();
  StoredEvent ev;

  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
      case 0:
      case 1: {  // append
        const std::size_t key_len =
            in.ConsumeIntegralInRange<std::size_t>(0, ringflow::kMaxKeyBytes + 4);
        const std::size_t payload_len =
            in.ConsumeIntegralInRange<std::size_t>(0, ringflow::kMaxPayloadBytes + 8);
        const bool dead = in.ConsumeBool();
        clock += in.ConsumeIntegralInRange<std::int64_t>(-50, 1000);  // may go backwards
        const std::uint64_t offset = model.size();
        std::string key(key_len, 'k');
        for (std::size_t i = 0; i < key_len; ++i)
          key[i] = static_cast<char>('a' + (offset + i) % 26);
        std::vector<std::byte> payload(payload_len);
        for (std::size_t i = 0; i < payload_len; ++i)
          payload[i] = pattern_byte(offset, i);
        ringflow::detail::RecordHeader h{};
        h.id = ringflow::detail::make_event_id(offset, kPartition);
        h.ingest_ns = clock;
        h.topic = in.ConsumeIntegral<std::uint32_t>();
        h.partition = kPartition;
        h.attempt = in.ConsumeIntegral<std::uint16_t>();
        h.priority = in.ConsumeBool() ? 1 : 0;
        h.flags = 0xFF;  // the log sets flags, key_len and payload_len itself
        h.key_len = 0xFF;
        h.payload_len = 0xFFFF;
        ringflow::DeadLetterInfo dl{};
        dl.origin_offset = offset;
        dl.attempts = h.attempt;
        dl.reason = ringflow::DeadLetterReason::failed;
        std::snprintf(dl.first_error, sizeof dl.first_error, "first %llu",
                      static_cast<unsigned long long>(offset));
        std::memset(dl.last_error, 'z', sizeof dl.last_error);  // not NUL-terminated

        const bool too_big =
            key_len > ringflow::kMaxKeyBytes || payload_len > ringflow::kMaxPayloadBytes;
        const std::uint64_t end_before = log.end_offset();
        try {
          const auto* rec = log.append(h, key, payload, dead ? &dl : nullptr);
          RINGFLOW_FUZZ_CHECK(!too_big, "an over-long key or payload was appended");
          RINGFLOW_FUZZ_CHECK(rec != nullptr && rec->offset == offset,
                              "append returned a wrong record");
        } catch (const std::length_error&) {
          RINGFLOW_FUZZ_CHECK(too_big, "a record within the limits was refused");
          RINGFLOW_FUZZ_CHECK(log.end_offset() == end_before, "a refused append moved end_offset");
          break;
        }
        Expected e;
        e.id = h.id;
        e.topic = h.topic;
        e.ingest_ns = std::max(clock, last_ingest);
        last_ingest = e.ingest_ns;
        e.attempt = h.attempt;
        e.priority = h.priority;
        e.key = key;
        e.payload = payload;
        if (dead) e.dead_letter = dl;
        model.push_back(std::move(e));
        break;
      }
      case 2: {  // seek to an offset, maybe below first or past end, then read a few
        const std::uint64_t target = in.ConsumeIntegralInRange<std::uint64_t>(0, model.size() + 2);
        const ReadStatus st = reader.seek(target);
        const std::uint64_t first = log.first_offset();
        if (target < first) {
          RINGFLOW_FUZZ_CHECK(st == ReadStatus::evicted && reader.position() == first,
                              "seek below first_offset must report evicted");
        } else if (target >= model.size()) {
          RINGFLOW_FUZZ_CHECK(st == ReadStatus::end && reader.position() == model.size(),
                              "seek past the end must report end");
        } else {
          RINGFLOW_FUZZ_CHECK(st == ReadStatus::ok && reader.position() == target, "seek failed");
        }
        [[fallthrough]];
      }
      case 3: {  // read on from the reader's position
        const int reads = in.ConsumeIntegralInRange<int>(1, 8);
        for (int i = 0; i < reads; ++i) {
          const std::uint64_t pos = reader.position();
          const ReadStatus st = reader.next(ev);
          if (pos < log.first_offset()) {
            RINGFLOW_FUZZ_CHECK(
                st == ReadStatus::evicted && reader.position() == log.first_offset(),
                "reading an evicted offset must report evicted");
          } else if (pos >= model.size()) {
            RINGFLOW_FUZZ_CHECK(st == ReadStatus::end, "reading at the end must report end");
          } else {
            RINGFLOW_FUZZ_CHECK(st == ReadStatus::ok, "a retained record did not read back");
            check_equal(ev, model[pos], pos, kPartition);
          }
        }
        break;
      }
      case 4: {  // seek by time
        const std::int64_t t = clock + in.ConsumeIntegralInRange<std::int64_t>(-3000, 100);
        const ReadStatus st = reader.seek_time(t);
        const std::uint64_t first = log.first_offset();
        std::uint64_t want = first;
        while (want < model.size() && model[want].ingest_ns < t)
          ++want;
        RINGFLOW_FUZZ_CHECK(reader.position() == want, "seek_time landed on the wrong record");
        RINGFLOW_FUZZ_CHECK(st == (want == model.size() ? ReadStatus::end : ReadStatus::ok),
                            "seek_time returned the wrong status");
        break;
      }
      case 5: {  // evict by age
        const std::int64_t cutoff = clock - in.ConsumeIntegralInRange<std::int64_t>(-100, 5000);
        log.evict_older_than(cutoff);
        break;
      }
      default:
        break;
    }

    // Invariants after every step.
    const std::uint64_t first = log.first_offset();
    RINGFLOW_FUZZ_CHECK(log.end_offset() == model.size(), "end_offset does not count the appends");
    RINGFLOW_FUZZ_CHECK(first <= log.end_offset(), "first_offset past end_offset");
    RINGFLOW_FUZZ_CHECK(first >= last_first, "first_offset went backwards");
    last_first = first;
  }

  // Every retained record reads back exactly, in order, with non-decreasing ingest times.
  PartitionReader all = log.reader();
  (void)all.seek(0);
  const std::uint64_t first = log.first_offset();
  RINGFLOW_FUZZ_CHECK(all.position() == first, "seek(0) did not move to first_offset");
  std::int64_t prev = INT64_MIN;
  for (std::uint64_t o = first; o < model.size(); ++o) {
    RINGFLOW_FUZZ_CHECK(all.next(ev) == ReadStatus::ok, "a retained record did not read back");
    check_equal(ev, model[o], o, kPartition);
    RINGFLOW_FUZZ_CHECK(ev.ingest_ns >= prev, "ingest_ns went backwards");
    prev = ev.ingest_ns;
  }
  RINGFLOW_FUZZ_CHECK(all.next(ev) == ReadStatus::end, "reading past the last record");
  return 0;
}
