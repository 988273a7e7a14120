#!/usr/bin/env bash
# The write-ahead log's crash benchmark: ROUNDS_PER_MODE SIGKILLs of a publishing child in each
# of os, interval and sync mode (CI runs 4 per mode inside ctest); after each kill a restart must
# hold every acknowledged event exactly once, in per-key order, with offsets continuing.
# Usage: scripts/wal-crash.sh [ROUNDS_PER_MODE=70] [OUT=results/local/wal-crash.txt]
set -euo pipefail
rounds=${1:-70}
out=${2:-results/local/wal-crash.txt}
bin=build/release/tests/ringflow_crash_tests
[ -x "$bin" ] || { echo "build first: make release" >&2; exit 2; }
mkdir -p "$(dirname "$out")"
{
  echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
  echo "# RINGFLOW_WAL_CRASH_ROUNDS=$rounds $bin"
  RINGFLOW_WAL_CRASH_ROUNDS=$rounds "$bin"
} 2>&1 | tee "$out"
