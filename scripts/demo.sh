#!/usr/bin/env bash
# The main job: the default end-to-end scenario set (max throughput + open-loop latency at
# 100k/500k/1M events/s, ringflow beside the mutex_queue and tbb_graph_direct baselines and the
# platform control), its table on stdout, results in results/latest/ and plots beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${RINGFLOW_DEMO_OUT:-results/latest}
build/release/tools/ringflow-bench --scenarios bench/scenarios/default.toml \
  --config configs/default.toml --out "$out"
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  /usr/bin/python3 tools/plot_results.py "$out"
else
  echo "ringflow: python3-matplotlib missing; skipped plots (make deps-demo installs it)" >&2
fi
