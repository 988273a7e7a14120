#!/usr/bin/env bash
# The main job: the default end-to-end scenario set (max throughput + open-loop latency at
# 100k/500k/1M events/s, ringflow beside the mutex_queue and tbb_graph_direct baselines and the
# platform control), its table on stdout, results and plots in a new folder under results/local/
# (ignored by git), whose path it prints. The committed reference sets (results/*/ with their
# machine in their README) are never written.
#
# Environment: RINGFLOW_DEMO_OUT (output folder), RINGFLOW_DEMO_SCENARIOS (scenario file),
# RINGFLOW_BENCH (the ringflow-bench binary). Arguments go to ringflow-bench (e.g. --no-progress).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${RINGFLOW_DEMO_OUT:-results/local/demo-$(date -u +%Y%m%dT%H%M%SZ)}
scenarios=${RINGFLOW_DEMO_SCENARIOS:-bench/scenarios/default.toml}
bench=${RINGFLOW_BENCH:-build/release/tools/ringflow-bench}
echo "ringflow: results go to $out/"
"$bench" --scenarios "$scenarios" --config configs/default.toml --out "$out" "$@"
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  /usr/bin/python3 tools/plot_results.py "$out"
else
  echo "ringflow: python3-matplotlib missing; skipped plots (make deps-demo installs it)" >&2
fi
echo "ringflow: results in $out/ (not tracked by git; compare with results/default-2vcpu-kvm/)"
