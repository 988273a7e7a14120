#pragma once
// A broken invariant in a fuzz target: print why and abort, so libFuzzer saves the input.
#include <cstdio>
#include <cstdlib>

#define RINGFLOW_FUZZ_CHECK(cond, why)                                                            \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "%s:%d: invariant broken: %s (%s)\n", __FILE__, __LINE__, why, #cond); \
      std::abort();                                                                               \
    }                                                                                             \
  } while (false)
