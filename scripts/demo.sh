#!/usr/bin/env bash
# The main job. Until the end-to-end harness exists it runs the SPSC ring benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
exec build/release/bench/ringflow_ring_bench --benchmark_min_time=0.2
