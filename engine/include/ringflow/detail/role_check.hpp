#pragma once
// Debug-build check that a single-threaded role (the producer or consumer side of an SPSC ring,
// an engine Producer, ...) is only ever used by one thread.
//
// RINGFLOW_CHECK_ROLES: nonzero enables the check; default on unless NDEBUG is defined. It changes
// the layout of every type that embeds a RoleCheck, so it must have the same value in every
// translation unit of a program (like NDEBUG for assert-carrying headers).
//
// Usage: each role owns one RoleCheck member, marked [[no_unique_address]] so it takes no space
// when disabled, and every role-restricted operation starts with `check_.claim("producer")`.
// The first thread to call claim() owns the role; any other thread calling claim() afterwards
// gets a message on stderr naming the role and both threads, then std::abort().

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#ifndef RINGFLOW_CHECK_ROLES
#ifdef NDEBUG
#define RINGFLOW_CHECK_ROLES 0
#else
#define RINGFLOW_CHECK_ROLES 1
#endif
#endif

namespace ringflow::detail {

template <bool Enabled>
class BasicRoleCheck;

/// Enabled: remembers the owning thread. Costs one relaxed load and a compare per claim().
template <>
class BasicRoleCheck<true> {
 public:
  /// Claims the role for the calling thread on first use; aborts if another thread owns it.
  void claim(const char* role_name) noexcept {
    const std::thread::id me = std::this_thread::get_id();
    // Relaxed throughout: the owner id is diagnostic only and guards no other data. A legitimate
    // hand-over (reset() then use from another thread) is ordered by whatever synchronisation the
    // caller used for the hand-over itself (thread start/join, a mutex, ...).
    std::thread::id owner = owner_.load(std::memory_order_relaxed);
    if (owner == me) [[likely]] {
      return;
    }
    if (owner == std::thread::id{} &&
        owner_.compare_exchange_strong(owner, me, std::memory_order_relaxed)) {
      return;
    }
    violation(role_name, owner, me);
  }

  /// Releases the role so that the next thread to claim() it becomes the owner. Call only while
  /// no thread is using the role.
  void reset() noexcept { owner_.store(std::thread::id{}, std::memory_order_relaxed); }

 private:
  [[noreturn, gnu::cold, gnu::noinline]] static void violation(const char* role_name,
                                                               std::thread::id owner,
                                                               std::thread::id intruder) noexcept {
    // std::hash<std::thread::id> is the native thread handle on libstdc++: enough to tell apart.
    const std::size_t owner_h = std::hash<std::thread::id>{}(owner);
    const std::size_t intruder_h = std::hash<std::thread::id>{}(intruder);
    std::fprintf(stderr,
                 "ringflow: role violation: the %s side is owned by thread %#zx but was used by "
                 "thread %#zx; this role allows exactly one thread (hand it over with reset() "
                 "while idle)\n",
                 role_name, owner_h, intruder_h);
    std::fflush(stderr);
    std::abort();
  }

  std::atomic<std::thread::id> owner_{};
};

/// Disabled: empty, every call compiles to nothing.
template <>
class BasicRoleCheck<false> {
 public:
  void claim(const char* /*role_name*/) noexcept {}
  void reset() noexcept {}
};

/// The role check configured by RINGFLOW_CHECK_ROLES.
using RoleCheck = BasicRoleCheck<RINGFLOW_CHECK_ROLES != 0>;

inline constexpr bool kCheckRoles = RINGFLOW_CHECK_ROLES != 0;

}  // namespace ringflow::detail
