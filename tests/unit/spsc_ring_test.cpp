// Unit tests of ringflow::SpscRing, single-threaded except the role-check death tests.
// Promise tests first (what the header documents), then white-box checks of layout and padding.

#include "ringflow/spsc_ring.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using ringflow::SpscRing;

// ---------------------------------------------------------------- helpers

/// Pushes `n` consecutive values starting at `next`, one by one; all must fit.
void push_seq(SpscRing<std::uint64_t>& ring, std::uint64_t& next, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(ring.try_push(next)) << "push " << next;
    ++next;
  }
}

/// Pops `n` values one by one; they must be `expect`, `expect`+1, ...
void pop_seq(SpscRing<std::uint64_t>& ring, std::uint64_t& expect, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t v = 0;
    ASSERT_TRUE(ring.try_pop(v)) << "pop " << expect;
    ASSERT_EQ(v, expect);
    ++expect;
  }
}

/// Counts constructions/destructions and detects double destruction and use of dead objects.
struct Counted {
  static constexpr std::uint32_t kAlive = 0xA11FEu;
  static constexpr std::uint32_t kDead = 0xDEADu;
  static inline long live = 0;
  static inline long double_destroyed = 0;
  static inline long constructed = 0;

  static void reset_counts() {
    live = 0;
    double_destroyed = 0;
    constructed = 0;
  }

  explicit Counted(int v) noexcept : value(v) { born(); }
  Counted(const Counted& o) noexcept : value(o.value) { born(); }
  Counted(Counted&& o) noexcept : value(o.value) {
    o.value = -1;
    born();
  }
  Counted& operator=(const Counted& o) noexcept = default;
  Counted& operator=(Counted&& o) noexcept {
    value = o.value;
    o.value = -1;
    return *this;
  }
  ~Counted() {
    if (magic != kAlive) {
      ++double_destroyed;
      return;
    }
    magic = kDead;
    --live;
  }

  int value;
  std::uint32_t magic = kAlive;

 private:
  void born() noexcept {
    ++live;
    ++constructed;
  }
};

/// A counting pmr resource: sees the ring's allocation and its release.
class CountingResource : public std::pmr::memory_resource {
 public:
  std::size_t allocations = 0;
  std::size_t deallocations = 0;
  std::size_t bytes_live = 0;
  std::size_t last_bytes = 0;

 private:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    ++allocations;
    bytes_live += bytes;
    last_bytes = bytes;
    return std::pmr::new_delete_resource()->allocate(bytes, align);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    ++deallocations;
    bytes_live -= bytes;
    std::pmr::new_delete_resource()->deallocate(p, bytes, align);
  }
  [[nodiscard]] bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
};

/// Records where the slot storage was allocated, to check the padding.
template <class T>
struct RecordingAllocator {
  using value_type = T;
  struct Record {
    const std::byte* begin = nullptr;
    std::size_t bytes = 0;
  };
  Record* record;

  explicit RecordingAllocator(Record* r) noexcept : record(r) {}
  template <class U>
  explicit RecordingAllocator(const RecordingAllocator<U>& o) noexcept : record(o.record) {}

  T* allocate(std::size_t n) {
    T* p = std::allocator<T>{}.allocate(n);
    record->begin = reinterpret_cast<const std::byte*>(p);
    record->bytes = n * sizeof(T);
    return p;
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
  bool operator==(const RecordingAllocator&) const noexcept = default;
};

// ---------------------------------------------------------------- capacity

TEST(SpscRingCapacity, RoundsUpToPowerOfTwoAndAllSlotsAreUsable) {
  const std::array<std::pair<std::size_t, std::size_t>, 9> cases{{{1, 1},
                                                                  {2, 2},
                                                                  {3, 4},
                                                                  {5, 8},
                                                                  {8, 8},
                                                                  {9, 16},
                                                                  {1000, 1024},
                                                                  {65536, 65536},
                                                                  {65537, 131072}}};
  for (const auto& [requested, expected] : cases) {
    SpscRing<std::uint64_t> ring(requested);
    EXPECT_EQ(ring.capacity(), expected) << "requested " << requested;
    std::uint64_t next = 0;
    push_seq(ring, next, expected);
    EXPECT_FALSE(ring.try_push(next)) << "ring of " << expected << " took one more";
    EXPECT_EQ(ring.size(), expected);
  }
}

TEST(SpscRingCapacity, LargeRingWorks) {
  SpscRing<std::uint64_t> ring(std::size_t{1} << 22);
  EXPECT_EQ(ring.capacity(), std::size_t{1} << 22);
  std::vector<std::uint64_t> in(ring.capacity());
  std::iota(in.begin(), in.end(), 0);
  EXPECT_EQ(ring.try_push_n(in.data(), in.size()), in.size());
  std::vector<std::uint64_t> out(in.size());
  EXPECT_EQ(ring.try_pop_n(out.data(), out.size()), out.size());
  EXPECT_EQ(in, out);
}

TEST(SpscRingCapacity, ZeroThrowsInvalidArgument) {
  EXPECT_THROW(SpscRing<int>(0), std::invalid_argument);
}

TEST(SpscRingCapacity, AbsurdThrowsLengthError) {
  EXPECT_THROW(SpscRing<int>(SpscRing<int>::kMaxCapacity + 1), std::length_error);
  EXPECT_THROW(SpscRing<int>(SIZE_MAX), std::length_error);
  EXPECT_THROW(SpscRing<int>((SIZE_MAX >> 1) + 2), std::length_error);  // bit_ceil would overflow
}

TEST(SpscRingCapacity, CapacityOneAlternates) {
  SpscRing<std::uint64_t> ring(1);
  for (std::uint64_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE(ring.try_push(i));
    ASSERT_FALSE(ring.try_push(i));
    std::uint64_t v = 0;
    ASSERT_TRUE(ring.try_pop(v));
    ASSERT_EQ(v, i);
    ASSERT_FALSE(ring.try_pop(v));
  }
}

// ---------------------------------------------------------------- single-item API

TEST(SpscRing, NewRingIsEmpty) {
  SpscRing<std::uint64_t> ring(8);
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.size(), 0U);
  std::uint64_t v = 42;
  EXPECT_FALSE(ring.try_pop(v));
  EXPECT_EQ(v, 42U) << "a failed try_pop must not touch out";
  EXPECT_EQ(ring.front(), nullptr);
  EXPECT_TRUE(ring.front_span().empty());
  std::array<std::uint64_t, 4> out{};
  EXPECT_EQ(ring.try_pop_n(out.data(), out.size()), 0U);
}

TEST(SpscRing, FullRejectsThenAcceptsAfterPop) {
  SpscRing<std::uint64_t> ring(4);
  std::uint64_t next = 0;
  std::uint64_t expect = 0;
  push_seq(ring, next, 4);
  EXPECT_FALSE(ring.try_push(next));
  EXPECT_FALSE(ring.try_emplace(next));
  EXPECT_EQ(ring.size(), 4U);
  EXPECT_FALSE(ring.empty());
  pop_seq(ring, expect, 1);
  push_seq(ring, next, 1);
  EXPECT_FALSE(ring.try_push(next));
  pop_seq(ring, expect, 4);
  EXPECT_TRUE(ring.empty());
}

TEST(SpscRing, WrapsAroundManyTimesInOrder) {
  SpscRing<std::uint64_t> ring(8);
  std::uint64_t next = 0;
  std::uint64_t expect = 0;
  // Occupancy varies 1..8 so the indices cross the wrap point at every slot.
  for (int round = 0; round < 2000; ++round) {
    const std::size_t n = 1 + static_cast<std::size_t>(round % 8);
    push_seq(ring, next, n);
    EXPECT_EQ(ring.size(), n);
    pop_seq(ring, expect, n);
  }
  EXPECT_GT(next, 8U * 1000U);
  EXPECT_TRUE(ring.empty());
}

TEST(SpscRing, FrontAndPop) {
  SpscRing<std::uint64_t> ring(2);
  std::uint64_t next = 0;
  for (int round = 0; round < 10; ++round) {
    push_seq(ring, next, 2);
    for (int k = 0; k < 2; ++k) {
      std::uint64_t* f = ring.front();
      ASSERT_NE(f, nullptr);
      EXPECT_EQ(*f, next - 2 + static_cast<std::uint64_t>(k));
      ring.pop();
    }
    EXPECT_EQ(ring.front(), nullptr);
  }
}

TEST(SpscRing, EmplaceConstructsInPlace) {
  SpscRing<std::pair<int, std::unique_ptr<int>>> ring(2);
  ASSERT_TRUE(ring.try_emplace(7, std::make_unique<int>(8)));
  auto* f = ring.front();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->first, 7);
  EXPECT_EQ(*f->second, 8);
  ring.pop();
}

// ---------------------------------------------------------------- batch API

// For every start offset in the slot array and every interesting batch size, try_push_n pushes
// min(n, room) and try_pop_n pops min(max, size), in order.
TEST(SpscRingBatch, PushNAndPopNAtEveryBoundary) {
  constexpr std::size_t kCap = 8;
  const std::array<std::size_t, 7> sizes{0, 1, 2, kCap - 1, kCap, kCap + 1, 3 * kCap};
  std::vector<std::uint64_t> in(3 * kCap);
  std::vector<std::uint64_t> out(3 * kCap);
  for (std::size_t offset = 0; offset < kCap; ++offset) {
    for (const std::size_t pre : {std::size_t{0}, std::size_t{3}}) {  // items already queued
      for (const std::size_t n : sizes) {
        SpscRing<std::uint64_t> ring(kCap);
        std::uint64_t next = 0;
        std::uint64_t expect = 0;
        push_seq(ring, next, offset);  // move the indices to `offset`
        pop_seq(ring, expect, offset);
        push_seq(ring, next, pre);

        std::iota(in.begin(), in.end(), next);
        const std::size_t room = kCap - pre;
        const std::size_t pushed = ring.try_push_n(in.data(), n);
        ASSERT_EQ(pushed, std::min(n, room)) << "offset " << offset << " pre " << pre << " n " << n;
        next += pushed;
        ASSERT_EQ(ring.size(), pre + pushed);

        const std::size_t popped = ring.try_pop_n(out.data(), n);
        ASSERT_EQ(popped, std::min(n, pre + pushed));
        for (std::size_t i = 0; i < popped; ++i) {
          ASSERT_EQ(out[i], expect + i) << "offset " << offset << " pre " << pre << " n " << n;
        }
        expect += popped;
        pop_seq(ring, expect, pre + pushed - popped);  // the rest is still in order
        EXPECT_TRUE(ring.empty());
      }
    }
  }
}

TEST(SpscRingBatch, PushNOnFullRingReturnsZero) {
  SpscRing<std::uint64_t> ring(4);
  const std::array<std::uint64_t, 4> in{1, 2, 3, 4};
  EXPECT_EQ(ring.try_push_n(in.data(), in.size()), 4U);
  EXPECT_EQ(ring.try_push_n(in.data(), 1), 0U);
  EXPECT_EQ(ring.try_push_n(in.data(), 0), 0U);
}

TEST(SpscRingBatch, PopNAcrossTheWrapManyTimes) {
  SpscRing<std::uint64_t> ring(16);
  std::uint64_t next = 0;
  std::uint64_t expect = 0;
  std::array<std::uint64_t, 16> buf{};
  for (int round = 0; round < 500; ++round) {
    const std::size_t n = 1 + static_cast<std::size_t>(round * 7 % 16);
    for (std::size_t i = 0; i < n; ++i) {
      buf[i] = next + i;
    }
    ASSERT_EQ(ring.try_push_n(buf.data(), n), n);
    next += n;
    ASSERT_EQ(ring.try_pop_n(buf.data(), buf.size()), n);
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(buf[i], expect++);
    }
  }
}

// ---------------------------------------------------------------- zero-copy consumption

TEST(SpscRingSpan, FrontSpanStopsAtTheWrapPoint) {
  SpscRing<std::uint64_t> ring(8);
  std::uint64_t next = 0;
  std::uint64_t expect = 0;
  push_seq(ring, next, 5);
  pop_seq(ring, expect, 5);  // indices now at slot 5
  push_seq(ring, next, 6);   // slots 5,6,7 then 0,1,2

  auto span = ring.front_span();
  ASSERT_EQ(span.size(), 3U) << "contiguous part ends at the wrap point";
  EXPECT_EQ(span[0], 5U);
  EXPECT_EQ(span[2], 7U);
  EXPECT_EQ(ring.front_span(2).size(), 2U);
  EXPECT_TRUE(ring.front_span(0).empty());
  ring.release(0);
  EXPECT_EQ(ring.size(), 6U);
  ring.release(3);

  span = ring.front_span();
  ASSERT_EQ(span.size(), 3U);
  EXPECT_EQ(span[0], 8U);
  EXPECT_EQ(span[2], 10U);
  span[1] = 99;  // the consumer may modify in place
  EXPECT_EQ(*(ring.front() + 1), 99U);
  ring.release(3);
  EXPECT_TRUE(ring.empty());
  EXPECT_TRUE(ring.front_span().empty());
}

TEST(SpscRingSpan, SpanAndReleaseWrapManyTimes) {
  SpscRing<std::uint64_t> ring(8);
  std::uint64_t next = 0;
  std::uint64_t expect = 0;
  for (int round = 0; round < 1000; ++round) {
    push_seq(ring, next, 1 + static_cast<std::size_t>(round % 8));
    while (!ring.empty()) {
      auto span = ring.front_span(3);
      ASSERT_FALSE(span.empty());
      for (const std::uint64_t v : span) {
        ASSERT_EQ(v, expect++);
      }
      ring.release(span.size());
    }
  }
}

TEST(SpscRingSpanDeathTest, ReleasingMoreThanReadableAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        SpscRing<std::uint64_t> ring(8);
        (void)ring.try_push(1);
        (void)ring.front_span();
        ring.release(2);
      },
      "contract violation");
  EXPECT_DEATH(
      {
        SpscRing<std::uint64_t> ring(8);
        ring.pop();
      },
      "contract violation");
}

// ---------------------------------------------------------------- object lifetimes

class SpscRingLifetime : public ::testing::Test {
 protected:
  void SetUp() override { Counted::reset_counts(); }
  void TearDown() override {
    EXPECT_EQ(Counted::live, 0) << "leaked or over-destroyed objects";
    EXPECT_EQ(Counted::double_destroyed, 0);
  }
};

TEST_F(SpscRingLifetime, UnpoppedItemsAreDestroyedExactlyOnceWithTheRing) {
  {
    SpscRing<Counted> ring(8);
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(ring.try_emplace(i));
    }
    Counted out(-1);
    ASSERT_TRUE(ring.try_pop(out));
    EXPECT_EQ(out.value, 0);
    EXPECT_EQ(Counted::live, 4 + 1);  // four in the ring + out
  }
  // TearDown checks that live is back to zero and nothing was destroyed twice.
}

TEST_F(SpscRingLifetime, EveryApiDestroysWhatItConsumes) {
  {
    SpscRing<Counted> ring(4);
    std::vector<Counted> in;
    in.reserve(4);
    for (int i = 0; i < 4; ++i) {
      in.emplace_back(i);
    }
    for (int round = 0; round < 50; ++round) {
      const long before = Counted::live;
      ASSERT_EQ(ring.try_push_n(in.data(), 3), 3U);  // copies
      ASSERT_TRUE(ring.try_push(in[3]));             // copy
      ASSERT_FALSE(ring.try_push(Counted(9)));       // full: nothing constructed in the ring
      EXPECT_EQ(Counted::live, before + 4);

      std::array<Counted, 2> out{Counted(-1), Counted(-1)};
      ASSERT_EQ(ring.try_pop_n(out.data(), out.size()), 2U);
      EXPECT_EQ(out[0].value, 0);
      EXPECT_EQ(out[1].value, 1);
      auto span = ring.front_span(1);
      ASSERT_EQ(span.size(), 1U);
      EXPECT_EQ(span[0].value, 2);
      ring.release(1);
      ASSERT_NE(ring.front(), nullptr);
      ring.pop();
      EXPECT_TRUE(ring.empty());
    }
  }
}

TEST_F(SpscRingLifetime, FullRingOfItemsAcrossTheWrapIsDestroyed) {
  {
    SpscRing<Counted> ring(4);
    Counted out(-1);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(ring.try_emplace(i));
      ASSERT_TRUE(ring.try_pop(out));
    }
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(ring.try_emplace(i));  // occupies slots 3,0,1,2
    }
  }
}

struct ThrowOnCopy {
  static inline int live = 0;
  bool throws = false;
  explicit ThrowOnCopy(bool t) : throws(t) { ++live; }
  ThrowOnCopy(const ThrowOnCopy& o) : throws(o.throws) {
    if (throws) {
      throw std::runtime_error("copy");
    }
    ++live;
  }
  ThrowOnCopy(ThrowOnCopy&& o) noexcept : throws(o.throws) { ++live; }
  ThrowOnCopy& operator=(const ThrowOnCopy&) = default;
  ThrowOnCopy& operator=(ThrowOnCopy&&) noexcept = default;
  ~ThrowOnCopy() { --live; }
};

TEST(SpscRingExceptions, ThrowingConstructionPublishesNothing) {
  ThrowOnCopy::live = 0;
  {
    SpscRing<ThrowOnCopy> ring(8);
    const ThrowOnCopy bad(true);
    EXPECT_THROW((void)ring.try_push(bad), std::runtime_error);
    EXPECT_TRUE(ring.empty());

    std::vector<ThrowOnCopy> batch;
    batch.emplace_back(false);
    batch.emplace_back(false);
    batch.emplace_back(true);
    const int before = ThrowOnCopy::live;
    EXPECT_THROW((void)ring.try_push_n(batch.data(), batch.size()), std::runtime_error);
    EXPECT_EQ(ThrowOnCopy::live, before) << "copies made before the throw must be destroyed";
    EXPECT_TRUE(ring.empty());
    EXPECT_EQ(ring.try_push_n(batch.data(), 2), 2U) << "the ring is still usable";
  }
  EXPECT_EQ(ThrowOnCopy::live, 0);
}

// ---------------------------------------------------------------- move-only T

TEST(SpscRingMoveOnly, UniquePtrThroughEveryConsumerApi) {
  SpscRing<std::unique_ptr<int>> ring(4);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(ring.try_push(std::make_unique<int>(i)));
  }
  auto extra = std::make_unique<int>(99);
  EXPECT_FALSE(ring.try_push(std::move(extra)));
  // NOLINTNEXTLINE(bugprone-use-after-move): a failed try_push(T&&) must not move from it
  ASSERT_NE(extra, nullptr) << "a failed try_push(T&&) must not move from its argument";

  std::unique_ptr<int> out;
  ASSERT_TRUE(ring.try_pop(out));
  EXPECT_EQ(*out, 0);
  std::array<std::unique_ptr<int>, 2> two;
  ASSERT_EQ(ring.try_pop_n(two.data(), two.size()), 2U);
  EXPECT_EQ(*two[0], 1);
  EXPECT_EQ(*two[1], 2);
  auto span = ring.front_span();
  ASSERT_EQ(span.size(), 1U);
  EXPECT_EQ(*span[0], 3);
  std::unique_ptr<int> taken = std::move(span[0]);  // zero-copy consumers may move out
  ring.release(1);
  EXPECT_TRUE(ring.empty());
  ASSERT_TRUE(ring.try_emplace(new int(5)));
  ASSERT_TRUE(ring.try_push(std::move(extra)));
  // Two owned pointers left in the ring: ASan's leak check sees them freed by the destructor.
}

// ---------------------------------------------------------------- allocators

TEST(SpscRingAllocator, PmrResourceSeesTheAllocation) {
  CountingResource res;
  {
    SpscRing<std::uint64_t, std::pmr::polymorphic_allocator<std::uint64_t>> ring(100, &res);
    EXPECT_EQ(res.allocations, 1U);
    EXPECT_GE(res.last_bytes, 128 * sizeof(std::uint64_t));
    EXPECT_EQ(ring.get_allocator().resource(), &res);
    std::uint64_t next = 0;
    std::uint64_t expect = 0;
    for (int round = 0; round < 10; ++round) {
      for (std::size_t i = 0; i < ring.capacity(); ++i) {
        ASSERT_TRUE(ring.try_push(next++));
      }
      std::uint64_t v = 0;
      while (ring.try_pop(v)) {
        ASSERT_EQ(v, expect++);
      }
    }
    EXPECT_EQ(res.allocations, 1U) << "no allocation after construction";
  }
  EXPECT_EQ(res.deallocations, 1U);
  EXPECT_EQ(res.bytes_live, 0U);
}

TEST(SpscRingAllocator, PmrWithNonTrivialItems) {
  CountingResource res;
  {
    using Alloc = std::pmr::polymorphic_allocator<std::pmr::vector<int>>;
    SpscRing<std::pmr::vector<int>, Alloc> ring(4, &res);
    std::pmr::vector<int> v({1, 2, 3}, &res);
    ASSERT_TRUE(ring.try_push(v));
    ASSERT_TRUE(ring.try_push(std::move(v)));
    std::pmr::vector<int> out(&res);
    ASSERT_TRUE(ring.try_pop(out));
    EXPECT_EQ(out.size(), 3U);
  }
  EXPECT_EQ(res.bytes_live, 0U) << "items left in the ring were destroyed with it";
}

// ---------------------------------------------------------------- layout (white-box)

TEST(SpscRingLayout, FiveCacheLinesAligned) {
  EXPECT_EQ(alignof(SpscRing<std::uint64_t>), ringflow::detail::kCacheLine);
  EXPECT_EQ(sizeof(SpscRing<std::uint64_t>), 5 * ringflow::detail::kCacheLine);
  EXPECT_EQ(sizeof(SpscRing<char>), 5 * ringflow::detail::kCacheLine);
  EXPECT_EQ(sizeof(SpscRing<std::array<char, 200>>), 5 * ringflow::detail::kCacheLine);
}

template <class T>
void expect_padded_slots() {
  typename RecordingAllocator<T>::Record rec;
  SpscRing<T, RecordingAllocator<T>> ring(16, RecordingAllocator<T>(&rec));
  for (std::size_t i = 0; i < ring.capacity(); ++i) {
    ASSERT_TRUE(ring.try_emplace());
  }
  const auto span = ring.front_span();
  ASSERT_EQ(span.size(), ring.capacity());
  const auto* first = reinterpret_cast<const std::byte*>(span.data());
  const auto* end = reinterpret_cast<const std::byte*>(span.data() + span.size());
  EXPECT_GE(first - rec.begin, static_cast<std::ptrdiff_t>(ringflow::detail::kCacheLine))
      << "slot 0 could share a line with the object before the allocation";
  EXPECT_GE((rec.begin + rec.bytes) - end,
            static_cast<std::ptrdiff_t>(ringflow::detail::kCacheLine))
      << "the last slot could share a line with the object after the allocation";
  if constexpr (ringflow::detail::kCacheLine % sizeof(T) == 0) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(first) % ringflow::detail::kCacheLine, 0U)
        << "slot 0 should start a cache line when sizeof(T) divides the line";
  }
}

TEST(SpscRingLayout, SlotArrayPaddedAtBothEnds) {
  expect_padded_slots<char>();
  expect_padded_slots<std::uint64_t>();
  expect_padded_slots<std::array<char, 40>>();
  expect_padded_slots<std::array<char, 100>>();
}

// ---------------------------------------------------------------- role check (debug builds)

TEST(SpscRingRoleDeathTest, SecondProducerThreadAborts) {
  if (!ringflow::detail::kCheckRoles) {
    GTEST_SKIP() << "RINGFLOW_CHECK_ROLES is off in this build (NDEBUG); the debug, asan and "
                    "tsan presets run this test";
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        SpscRing<int> ring(4);
        (void)ring.try_push(1);
        std::thread intruder([&ring] { (void)ring.try_push(2); });
        intruder.join();
      },
      "role violation: the producer side is owned by thread");
}

TEST(SpscRingRoleDeathTest, SecondConsumerThreadAborts) {
  if (!ringflow::detail::kCheckRoles) {
    GTEST_SKIP() << "RINGFLOW_CHECK_ROLES is off in this build (NDEBUG)";
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        SpscRing<int> ring(4);
        (void)ring.try_push(1);
        (void)ring.try_push(2);
        int v = 0;
        (void)ring.try_pop(v);
        std::thread intruder([&ring] { (void)ring.front_span(); });
        intruder.join();
      },
      "role violation: the consumer side");
}

TEST(SpscRingRoles, OneThreadPerSideAndHandOverAfterReset) {
  SpscRing<int> ring(4);
  std::thread producer([&ring] { ASSERT_TRUE(ring.try_push(1)); });
  producer.join();
  int v = 0;
  ASSERT_TRUE(ring.try_pop(v));  // the consumer side is claimed by this thread
  ring.reset_roles();
  std::thread next_consumer([&ring] {
    ASSERT_TRUE(ring.try_push(2));
    int w = 0;
    ASSERT_TRUE(ring.try_pop(w));
    EXPECT_EQ(w, 2);
  });
  next_consumer.join();
}

}  // namespace
