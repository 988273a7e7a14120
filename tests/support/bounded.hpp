#pragma once
// Test support: a call that must return in bounded time.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>
#include <utility>

namespace ringflow::test {

/// Runs `fn` on its own thread and waits at most `limit` for it. A call that does not return in
/// time is a hang: the test reports it and the process exits at once (a hung engine thread
/// cannot be joined), instead of sitting until the ctest timeout. What `fn` throws is rethrown.
template <class F>
void bounded(const char* what, std::chrono::seconds limit, F fn) {
  std::packaged_task<void()> task(std::move(fn));
  auto done = task.get_future();
  std::thread t(std::move(task));
  if (done.wait_for(limit) != std::future_status::ready) {
    std::fprintf(stderr, "FAILED: %s did not return within %lld s (hang)\n", what,
                 static_cast<long long>(limit.count()));
    std::fflush(stderr);
    std::_Exit(1);
  }
  t.join();
  done.get();
}

}  // namespace ringflow::test
