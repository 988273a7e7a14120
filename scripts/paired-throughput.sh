#!/usr/bin/env bash
# Paired throughput comparison of two ringflow-bench systems on a noisy machine.
#
#   scripts/paired-throughput.sh SYSTEM_A SYSTEM_B PAIRS OUT_DIR [CONFIG]
#
# Runs PAIRS invocations of `ringflow-bench`, each a single max_throughput repeat of both
# systems back to back (4 M events, 64 B, producer on core 0, shard on core 1), alternating
# which system goes first. Each pair gives one ratio B/A measured seconds apart, so slow drifts
# of the machine (other tenants, frequency) cancel out; the median ratio and its bootstrap 95 %
# interval are written to OUT_DIR/pairs.json with every pair in OUT_DIR/pairs.csv.
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: $0 SYSTEM_A SYSTEM_B PAIRS OUT_DIR [CONFIG]" >&2
  exit 2
fi
a=$1 b=$2 pairs=$3 out=$4 config=${5:-configs/default.toml}
bench=${RINGFLOW_BENCH:-build/release/tools/ringflow-bench}
[[ -x $bench ]] || { echo "$0: $bench not built (make release)" >&2; exit 1; }
[[ $pairs =~ ^[1-9][0-9]*$ ]] || { echo "$0: PAIRS must be a positive integer" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

scenario() {  # $1 $2: systems in run order
  cat <<EOF
[run]
systems = ["$1", "$2"]
producer_cores = [0]
worker_cores = [1]
capacity = 16384

[[scenario]]
name = "max_throughput"
kind = "max_throughput"
events = 4_000_000
warmup_events = 400_000
repeats = 1
EOF
}
scenario "$a" "$b" > "$work/ab.toml"
scenario "$b" "$a" > "$work/ba.toml"

for ((i = 1; i <= pairs; i++)); do
  order=ab
  ((i % 2 == 0)) && order=ba
  "$bench" --scenarios "$work/$order.toml" --config "$config" --out "$work/run$i" \
    --no-progress > "$work/run$i.log" 2>&1 || { cat "$work/run$i.log" >&2; exit 1; }
  echo "$order" > "$work/run$i/order"
done

python3 - "$a" "$b" "$pairs" "$work" "$out" "$bench" "$config" <<'EOF'
import json, random, statistics as st, subprocess, sys, datetime, os
a, b, pairs, work, out, bench, config = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:]
rows = []
for i in range(1, pairs + 1):
    summary = json.load(open(f"{work}/run{i}/summary.json"))
    eps = {r["system"]: r["achieved_eps"] for r in summary}
    order = open(f"{work}/run{i}/order").read().strip()
    rows.append((i, order, eps[a], eps[b], eps[b] / eps[a]))
with open(f"{out}/pairs.csv", "w") as f:
    f.write(f"pair,first,{a}_eps,{b}_eps,ratio\n")
    for i, order, x, y, r in rows:
        f.write(f"{i},{a if order == 'ab' else b},{x:.0f},{y:.0f},{r:.4f}\n")
ratios = [r[4] for r in rows]
rng = random.Random(1)
boot = sorted(st.median(rng.choices(ratios, k=len(ratios))) for _ in range(4000))
meta = json.load(open(f"{work}/run1/meta.json"))
result = {
    "command": " ".join(["scripts/paired-throughput.sh", a, b, str(pairs), out, config]),
    "pairs": pairs,
    "system_a": a,
    "system_b": b,
    "median_ratio_b_over_a": st.median(ratios),
    "ratio_ci95": [boot[100], boot[3899]],
    "median_a_eps": st.median(r[2] for r in rows),
    "median_b_eps": st.median(r[3] for r in rows),
    "by_order": {
        first: st.median(r[4] for r in rows if r[1] == order)
        for first, order in ((a + "_first", "ab"), (b + "_first", "ba"))
        if any(r[1] == order for r in rows)
    },
    "git_revision": meta.get("git_revision"),
    "git_dirty": meta.get("git_dirty"),
    "cpu_model": meta.get("cpu_model"),
    "cores_online": meta.get("cores_online"),
    "compiler": meta.get("compiler"),
    "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
}
json.dump(result, open(f"{out}/pairs.json", "w"), indent=2)
print(f"{pairs} pairs: median {b}/{a} = {result['median_ratio_b_over_a']:.4f}, "
      f"95% CI [{boot[100]:.4f}, {boot[3899]:.4f}]; medians {result['median_a_eps']/1e6:.2f}M / "
      f"{result['median_b_eps']/1e6:.2f}M events/s")
EOF
