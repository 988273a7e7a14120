#include "ringflow/partition_log.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "ringflow/wait_strategy.hpp"

namespace ringflow {

namespace {

constexpr std::size_t kWord = sizeof(std::uint64_t);

// Record bytes are accessed with relaxed atomic word operations on both sides so the seqlock
// that guards segment reuse is free of data races (on x86-64 these are plain moves).
void store_words(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; i += kWord) {
    std::uint64_t w;
    std::memcpy(&w, src + i, kWord);
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(dst + i))
        .store(w, std::memory_order_relaxed);  // guarded by the segment seqlock
  }
}

void load_words(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; i += kWord) {
    const std::uint64_t w =
        std::atomic_ref<std::uint64_t>(
            *reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(src + i)))
            .load(std::memory_order_relaxed);  // validated by the seqlock re-check
    std::memcpy(dst + i, &w, kWord);
  }
}

// A segment's memory: both parts or neither. A refused allocation leaves the segment
// unallocated, so a later append can try again and the destructor frees only what was taken.
// (Templates: the segment type is private to PartitionLog.)
template <class Segment>
void allocate_segment(Segment& s, std::pmr::memory_resource* mr, std::size_t segment_bytes,
                      std::size_t index_slots) {
  auto* bytes = static_cast<std::byte*>(mr->allocate(segment_bytes, detail::kCacheLine));
  try {
    s.index = static_cast<std::uint32_t*>(
        mr->allocate(index_slots * sizeof(std::uint32_t), alignof(std::uint32_t)));
  } catch (...) {
    mr->deallocate(bytes, segment_bytes, detail::kCacheLine);
    throw;
  }
  s.bytes = bytes;
}

template <class Segments>
void release_segments(Segments& segments, std::pmr::memory_resource* mr, std::size_t segment_bytes,
                      std::size_t index_slots) noexcept {
  for (auto& s : segments) {
    if (s->bytes != nullptr) {
      mr->deallocate(s->bytes, segment_bytes, detail::kCacheLine);
      mr->deallocate(s->index, index_slots * sizeof(std::uint32_t), alignof(std::uint32_t));
      s->bytes = nullptr;
      s->index = nullptr;
    }
  }
}

}  // namespace

struct PartitionLog::Segment {
  std::byte* bytes = nullptr;      // segment_bytes, 8-aligned
  std::uint32_t* index = nullptr;  // index_slots record start positions
  std::size_t used = 0;            // writer only
  // seq: even = stable, odd = being reset (writer bumps it around a reuse).
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> base{0};   // first offset held
  std::atomic<std::uint32_t> count{0};  // records held
  std::atomic<std::int64_t> newest_ingest{0};
  std::atomic<bool> live{false};  // holds retained records
};

PartitionLog::PartitionLog(std::uint32_t partition, Options opts, std::pmr::memory_resource* mr)
    : partition_(partition), opts_(opts), mr_(mr) {
  if (opts_.segment_bytes < kMaxRecordBytes) {
    throw std::invalid_argument(
        "PartitionLog: segment_bytes (" + std::to_string(opts_.segment_bytes) +
        ") must hold the largest record (" + std::to_string(kMaxRecordBytes) + " bytes)");
  }
  opts_.segment_bytes &= ~(kWord - 1);
  const std::size_t nseg = opts_.retention_bytes / opts_.segment_bytes;
  if (nseg < 2) {
    throw std::invalid_argument("PartitionLog: retention_bytes (" +
                                std::to_string(opts_.retention_bytes) +
                                ") must be at least two segments of segment_bytes (" +
                                std::to_string(opts_.segment_bytes) + ")");
  }
  index_slots_ = opts_.segment_bytes / detail::record_size(0, 0) + 1;
  segments_.reserve(nseg);
  for (std::size_t i = 0; i < nseg; ++i)
    segments_.push_back(std::make_unique<Segment>());
  if (opts_.preallocate) {
    try {
      for (auto& seg : segments_) {
        allocate_segment(*seg, mr_, opts_.segment_bytes, index_slots_);
        // Touch every page now: the first append into a segment must not take page faults.
        std::memset(seg->bytes, 0, opts_.segment_bytes);
        std::memset(seg->index, 0, index_slots_ * sizeof(std::uint32_t));
      }
    } catch (...) {
      // The destructor does not run for a constructor that throws: return what was taken.
      release_segments(segments_, mr_, opts_.segment_bytes, index_slots_);
      throw;
    }
  }
}

PartitionLog::~PartitionLog() {
  release_segments(segments_, mr_, opts_.segment_bytes, index_slots_);
}

void PartitionLog::open_segment(std::size_t i) {
  Segment& s = *segments_[i];
  if (s.bytes == nullptr) {
    // First use of this segment: the only allocation the log ever makes for it. Done before
    // anything changes, so a std::bad_alloc leaves the log as it was.
    allocate_segment(s, mr_, opts_.segment_bytes, index_slots_);
  }
  if (floor_ != nullptr && s.live.load(std::memory_order_relaxed)) {
    // Never evict what the write-ahead log has not made durable: wait for its writer (another
    // thread that only reads this log, so it cannot be waiting for us). The shard stops
    // ingesting before it gets here (durable_headroom()); this covers dead letters appended
    // within a batch. A released floor (the engine stopping with a failed log) waits no more.
    const std::uint64_t end =
        s.base.load(std::memory_order_relaxed) + s.count.load(std::memory_order_relaxed);
    for (std::uint32_t spins = 0; !floor_covers(end); ++spins) {
      if (spins == 0) floor_waits_.fetch_add(1, std::memory_order_relaxed);  // statistic
      if (spins < 64) {
        cpu_relax();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }
  const std::uint64_t seq = s.seq.load(std::memory_order_relaxed);  // writer owns seq
  s.seq.store(seq + 1, std::memory_order_relaxed);
  // Release fence: a reader that sees any byte written below also sees seq odd (or changed).
  std::atomic_thread_fence(std::memory_order_release);
  if (s.live.load(std::memory_order_relaxed)) {
    // Evicting: the segment after it becomes the oldest.
    const std::uint64_t next_first =
        s.base.load(std::memory_order_relaxed) + s.count.load(std::memory_order_relaxed);
    // Release: pairs with first_offset()'s acquire.
    first_offset_.store(next_first, std::memory_order_release);
    evictions_.store(evictions_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    add_bytes_held(-static_cast<std::int64_t>(s.used));
  }
  s.base.store(end_offset_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  s.count.store(0, std::memory_order_relaxed);
  s.newest_ingest.store(0, std::memory_order_relaxed);
  s.live.store(true, std::memory_order_relaxed);
  s.used = 0;
  // Release: the reset is complete before seq turns even again.
  s.seq.store(seq + 2, std::memory_order_release);
  head_ = i;
}

const detail::RecordHeader* PartitionLog::append(const detail::RecordHeader& header,
                                                 std::string_view key,
                                                 std::span<const std::byte> payload,
                                                 const DeadLetterInfo* dead_letter) {
  if (key.size() > kMaxKeyBytes || payload.size() > kMaxPayloadBytes) [[unlikely]] {
    // Always on: a larger record would overrun the staging buffer and the segment's bounds.
    throw std::length_error("PartitionLog::append: key " + std::to_string(key.size()) +
                            " / payload " + std::to_string(payload.size()) +
                            " bytes exceed kMaxKeyBytes / kMaxPayloadBytes");
  }
  const std::size_t size = detail::record_size(key.size(), payload.size(), dead_letter != nullptr);
  if (!started_) {
    open_segment(0);
    started_ = true;
  }
  Segment* seg = segments_[head_].get();
  std::uint32_t count = seg->count.load(std::memory_order_relaxed);  // writer owns it
  if (seg->used + size > opts_.segment_bytes || count == index_slots_) {
    open_segment((head_ + 1) % segments_.size());
    seg = segments_[head_].get();
    count = 0;
  }
  const std::uint64_t offset = end_offset_.load(std::memory_order_relaxed);  // writer owns it

  alignas(8) std::byte buf[kMaxRecordBytes];
  detail::RecordHeader h = header;
  h.offset = offset;
  // ingest_ns is non-decreasing per partition (seek_time() searches on it), whatever clock
  // reading the caller passes: a later record never carries an earlier time.
  if (h.ingest_ns < last_ingest_ns_) h.ingest_ns = last_ingest_ns_;
  last_ingest_ns_ = h.ingest_ns;
  h.key_len = static_cast<std::uint8_t>(key.size());
  h.payload_len = static_cast<std::uint16_t>(payload.size());
  h.flags = dead_letter != nullptr ? detail::kRecordDeadLetter : 0;
  std::memcpy(buf, &h, sizeof h);
  if (!key.empty()) std::memcpy(buf + sizeof h, key.data(), key.size());
  if (!payload.empty()) std::memcpy(buf + sizeof h + key.size(), payload.data(), payload.size());
  const std::size_t tail = sizeof h + key.size() + payload.size();
  std::memset(buf + tail, 0, size - tail);
  if (dead_letter != nullptr) {
    std::memcpy(buf + detail::record_size(key.size(), payload.size()), dead_letter,
                sizeof(DeadLetterInfo));
  }

  std::byte* dst = seg->bytes + seg->used;
  store_words(dst, buf, size);
  std::atomic_ref<std::uint32_t>(seg->index[count])
      .store(static_cast<std::uint32_t>(seg->used), std::memory_order_relaxed);  // seqlock-guarded
  seg->used += size;
  add_bytes_held(static_cast<std::int64_t>(size));
  seg->newest_ingest.store(h.ingest_ns, std::memory_order_relaxed);
  // Release: the record and its index entry are complete before a reader counts them.
  seg->count.store(count + 1, std::memory_order_release);
  // Release: pairs with end_offset()'s acquire.
  end_offset_.store(offset + 1, std::memory_order_release);
  return reinterpret_cast<const detail::RecordHeader*>(dst);
}

void PartitionLog::set_durable_floor(const DurableFloor* floor) noexcept {
  floor_ = floor;
}

void PartitionLog::start_at(std::uint64_t offset) {
  if (started_ || end_offset_.load(std::memory_order_relaxed) != 0) {
    throw std::logic_error("PartitionLog::start_at: the log already holds records");
  }
  // Relaxed: before the log is shared (the engine recovers before start()).
  end_offset_.store(offset, std::memory_order_relaxed);
  first_offset_.store(offset, std::memory_order_relaxed);
}

bool PartitionLog::floor_covers(std::uint64_t end) const noexcept {
  // Acquire: pairs with the WAL writer's release of the durable offset (statistic-free path).
  return floor_->released.load(std::memory_order_acquire) ||
         floor_->offset.load(std::memory_order_acquire) >= end;
}

bool PartitionLog::durable_headroom() const noexcept {
  if (floor_ == nullptr || !started_) return true;
  // Everything before the head segment must be written: the log's writer then lags by at
  // most about one segment (which bounds the time to a durable acknowledgement however much
  // memory retention has), and the segment appends move into next never waits.
  return floor_covers(segments_[head_]->base.load(std::memory_order_relaxed));  // writer owns base
}

void PartitionLog::evict_older_than(std::int64_t cutoff_ns) noexcept {
  if (!started_) return;
  // Oldest first: the segment after head_ in ring order, skipping unused ones.
  for (std::size_t step = 1; step < segments_.size(); ++step) {
    Segment& s = *segments_[(head_ + step) % segments_.size()];
    if (!s.live.load(std::memory_order_relaxed)) continue;
    if (s.newest_ingest.load(std::memory_order_relaxed) >= cutoff_ns) return;
    if (floor_ != nullptr && !floor_covers(s.base.load(std::memory_order_relaxed) +
                                           s.count.load(std::memory_order_relaxed))) {
      return;  // not yet durable: age retention waits for the write-ahead log
    }
    const std::uint64_t seq = s.seq.load(std::memory_order_relaxed);
    s.seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    first_offset_.store(
        s.base.load(std::memory_order_relaxed) + s.count.load(std::memory_order_relaxed),
        std::memory_order_release);  // pairs with first_offset()'s acquire
    s.live.store(false, std::memory_order_relaxed);
    evictions_.store(evictions_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    add_bytes_held(-static_cast<std::int64_t>(s.used));
    s.seq.store(seq + 2, std::memory_order_release);
  }
}

// ---------------------------------------------------------------------------------------------

std::size_t PartitionReader::copy_raw(std::uint64_t offset, std::byte* buf) const noexcept {
  const PartitionLog& log = *log_;
  const std::size_t nseg = log.segments_.size();
  // Start where the last record was found: a reader moving forward finds the next one in the
  // same segment or the one after, instead of scanning every segment per record.
  for (std::size_t step = 0; step < nseg; ++step) {
    const std::size_t idx = (seg_hint_ + step) % nseg;
    const PartitionLog::Segment& s = *log.segments_[idx];
    // Acquire: pairs with the writer's final release store of seq in open_segment().
    const std::uint64_t seq1 = s.seq.load(std::memory_order_acquire);
    if ((seq1 & 1U) != 0) continue;
    if (!s.live.load(std::memory_order_relaxed)) continue;
    const std::uint64_t base = s.base.load(std::memory_order_relaxed);
    // Acquire: pairs with append()'s release of count; records below it are complete.
    const std::uint32_t count = s.count.load(std::memory_order_acquire);
    if (offset < base || offset >= base + count) continue;
    const std::uint32_t pos =
        std::atomic_ref<std::uint32_t>(s.index[offset - base]).load(std::memory_order_relaxed);
    if (pos + sizeof(detail::RecordHeader) > log.opts_.segment_bytes) return 0;
    load_words(buf, s.bytes + pos, sizeof(detail::RecordHeader));
    detail::RecordHeader h;
    std::memcpy(&h, buf, sizeof h);
    const bool is_dead_letter = (h.flags & detail::kRecordDeadLetter) != 0;
    const std::size_t size =
        detail::record_size(std::min<std::size_t>(h.key_len, kMaxKeyBytes),
                            std::min<std::size_t>(h.payload_len, kMaxPayloadBytes), is_dead_letter);
    if (pos + size > log.opts_.segment_bytes) return 0;
    load_words(buf, s.bytes + pos, size);
    // Acquire fence, then re-read seq: if the writer began a reset while we copied, the copy
    // may be torn and is discarded.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != seq1) return 0;
    seg_hint_ = idx;
    return size;
  }
  return 0;
}

bool PartitionReader::copy_record(std::uint64_t offset, StoredEvent& out) const {
  alignas(8) std::byte buf[PartitionLog::kMaxRecordBytes];
  if (copy_raw(offset, buf) == 0) return false;
  detail::RecordHeader h;
  std::memcpy(&h, buf, sizeof h);
  const bool is_dead_letter = (h.flags & detail::kRecordDeadLetter) != 0;
  out.offset = h.offset;
  out.id = h.id;
  out.topic = TopicId{h.topic};
  out.partition = h.partition;
  out.publish_ns = h.publish_ns;
  out.ingest_ns = h.ingest_ns;
  out.deadline_ns = h.deadline_ns;
  out.correlation_id = h.correlation_id;
  out.causation_id = h.causation_id;
  out.priority = static_cast<Priority>(h.priority);
  out.attempt = h.attempt;
  if (is_dead_letter) {
    DeadLetterInfo dl;
    std::memcpy(&dl, buf + detail::record_size(h.key_len, h.payload_len), sizeof dl);
    out.dead_letter = dl;
  } else {
    out.dead_letter.reset();
  }
  out.key.assign(reinterpret_cast<const char*>(buf + sizeof h), h.key_len);
  const std::byte* p = buf + sizeof h + h.key_len;
  out.payload.assign(p, p + h.payload_len);
  return true;
}

bool PartitionReader::ingest_of(std::uint64_t offset, std::int64_t& ingest_ns) const noexcept {
  StoredEvent e;
  try {
    if (!copy_record(offset, e)) return false;
  } catch (...) {  // allocation failure copying the key/payload: treat as unreadable
    return false;
  }
  ingest_ns = e.ingest_ns;
  return true;
}

ReadStatus PartitionReader::seek(std::uint64_t offset) noexcept {
  const std::uint64_t first = log_->first_offset();
  const std::uint64_t end = log_->end_offset();
  if (offset < first) {
    pos_ = first;
    return ReadStatus::evicted;
  }
  if (offset >= end) {
    pos_ = end;
    return ReadStatus::end;
  }
  pos_ = offset;
  return ReadStatus::ok;
}

ReadStatus PartitionReader::seek_time(std::int64_t ingest_ns) noexcept {
  // ingest_ns is non-decreasing in offset order: binary search the retained range. Records
  // evicted during the search make the range move; retry from the new first offset.
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::uint64_t lo = log_->first_offset();
    std::uint64_t hi = log_->end_offset();
    bool torn = false;
    while (lo < hi) {
      const std::uint64_t mid = lo + (hi - lo) / 2;
      std::int64_t t = 0;
      if (!ingest_of(mid, t)) {
        torn = true;
        break;
      }
      if (t < ingest_ns) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (!torn) return seek(lo);
  }
  return seek(log_->first_offset());
}

ReadStatus PartitionReader::next(StoredEvent& out) {
  for (int tries = 0;; ++tries) {
    const std::uint64_t first = log_->first_offset();
    if (pos_ < first) {
      pos_ = first;
      return ReadStatus::evicted;
    }
    if (pos_ >= log_->end_offset()) return ReadStatus::end;
    if (copy_record(pos_, out)) {
      ++pos_;
      return ReadStatus::ok;
    }
    // Not found intact: its segment is being reset right now and first_offset() is about to
    // move past it. Look again; never spin forever.
    if (tries > 10000) {
      pos_ = std::max(pos_ + 1, log_->first_offset());
      return ReadStatus::evicted;
    }
  }
}

ReadStatus PartitionReader::next_raw(std::byte* out, std::size_t& size) noexcept {
  for (int tries = 0;; ++tries) {
    const std::uint64_t first = log_->first_offset();
    if (pos_ < first) {
      pos_ = first;
      return ReadStatus::evicted;
    }
    if (pos_ >= log_->end_offset()) return ReadStatus::end;
    size = copy_raw(pos_, out);
    if (size != 0) {
      ++pos_;
      return ReadStatus::ok;
    }
    if (tries > 10000) {  // as in next(): never spin forever
      pos_ = std::max(pos_ + 1, log_->first_offset());
      return ReadStatus::evicted;
    }
  }
}

}  // namespace ringflow
