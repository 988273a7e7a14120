#!/usr/bin/env bash
# An order service through NATS core, JetStream (redelivery as the only retry), ringflow in
# process and ringflow behind the JetStream bridge: one run, one machine, the same handler and
# injected failures. Starts its own nats-server (file store in a temporary directory, loopback,
# a free port), runs build/release/connectors/nats/ringflow_broker_vs_ringflow_bench and writes
# OUT_DIR/{summary.json,meta.json} (default results/broker-vs-ringflow).
# Usage: connectors/nats/bench/broker-vs-ringflow.sh [OUT_DIR] [bench args, e.g. --repeats 1]
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=${1:-results/broker-vs-ringflow}
shift || true
bench=build/release/connectors/nats/ringflow_broker_vs_ringflow_bench
[ -x "$bench" ] || { echo "build it first: cmake --build --preset release --target ringflow_broker_vs_ringflow_bench" >&2; exit 1; }
server=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$server" ] || { echo "nats-server is not installed" >&2; exit 1; }
tmp=$(mktemp -d /tmp/ringflow-broker-bench-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$server" -js -a 127.0.0.1 -p "$port" -sd "$tmp/store" -n bench >"$tmp/server.log" 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null || true; wait $spid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
mkdir -p "$out"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load=$(cut -d' ' -f1-3 /proc/loadavg)
cmd="$bench --server nats://127.0.0.1:$port --out $out $*"
# shellcheck disable=SC2086
$cmd
rev=$(git rev-parse HEAD)
dirty=$([ -z "$(git status --porcelain -- . ':!results')" ] && echo false || echo true)
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
flags=$(grep -E '^CMAKE_CXX_FLAGS(_RELEASE)?:' build/release/CMakeCache.txt | sed 's/.*=//' | tr '\n' ' ')
cat >"$out/meta.json" <<JSON
{
  "command": "connectors/nats/bench/broker-vs-ringflow.sh $out $*",
  "bench_command": "$cmd",
  "started_utc": "$started",
  "finished_utc": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "git_revision": "$rev",
  "git_dirty": $dirty,
  "machine": "$cpu, KVM VM, $(nproc) vCPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)",
  "load_average_at_start": "$load",
  "compiler": "$(g++ --version | head -1)",
  "cxx_flags": "$flags",
  "nats_server": "$("$server" --version)",
  "libnats": "$(pkg-config --modversion libnats)",
  "setup": "one nats-server 2.9 on the same 2-vCPU machine, file store, 1 replica, loopback; 64-byte orders, 4 partitions, 1000 customer keys; handler: a checksum over the order, then the injected outcome; failures by event index and seed: 2 % transient (first attempt fails), 0.5 % permanent (every attempt fails); 3 attempts everywhere, 1 ms between them (JetStream: NakWithDelay 1 ms, MaxDeliver 3; ringflow: max_attempts 3, retry backoff 1 ms); engine: 4 partitions, park wait strategy, threads not pinned",
  "notes": "error_share = (failed without a dead letter + lost) / events; latency = handler success - planned send time (open loop, coordinated omission corrected, 1 s warm-up dropped), successes only; throughput: JetStream systems pre-published then consumed (consumers alone timed), core and in-process published while consuming; systems interleaved per repeat"
}
JSON
echo "wrote $out/summary.json and $out/meta.json"
