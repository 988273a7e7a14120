#!/usr/bin/env bash
# JetStream alone vs JetStream -> ringflow -> JetStream (and NATS core), one run, one machine.
# Starts its own nats-server (file store in a temporary directory, loopback, a free port), runs
# build/release/connectors/nats/ringflow_nats_bench and writes results/nats/{summary.json,meta.json}.
# Usage: scripts/nats-bench.sh [OUT_DIR] [extra bench args, e.g. --repeats 1 --seconds 2]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/nats}
shift || true
bench=build/release/connectors/nats/ringflow_nats_bench
[ -x "$bench" ] || { echo "build it first: cmake --build --preset release" >&2; exit 1; }
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || { echo "nats-server is not installed" >&2; exit 1; }
server=$(command -v nats-server || echo /usr/sbin/nats-server)
tmp=$(mktemp -d /tmp/ringflow-nats-bench-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$server" -js -a 127.0.0.1 -p "$port" -sd "$tmp/store" -n bench >"$tmp/server.log" 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null; wait $spid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
mkdir -p "$out"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cmd="$bench --server nats://127.0.0.1:$port --out $out $*"
# shellcheck disable=SC2086
$cmd
rev=$(git rev-parse HEAD)
dirty=$([ -z "$(git status --porcelain -- . ':!results')" ] && echo false || echo true)
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
flags=$(grep -E '^CMAKE_CXX_FLAGS(_RELEASE)?:' build/release/CMakeCache.txt | sed 's/.*=//' | tr '\n' ' ')
cat >"$out/meta.json" <<JSON
{
  "command": "scripts/nats-bench.sh $out $*",
  "bench_command": "$cmd",
  "started_utc": "$started",
  "finished_utc": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "git_revision": "$rev",
  "git_dirty": $dirty,
  "machine": "$cpu, KVM VM, $(nproc) vCPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)",
  "compiler": "$(g++ --version | head -1)",
  "cxx_flags": "$flags",
  "nats_server": "$("$server" --version)",
  "libnats": "$(pkg-config --modversion libnats)",
  "setup": "one nats-server 2.9 on the same 2-vCPU machine, file store, 1 replica, loopback; 64-byte payloads, 4 partitions, 1000 keys; every system relays in.<p>.<key> -> out.<p>.<key> and a core subscriber on out.> measures; engine: 1 shard, park wait strategy, threads not pinned (the server needs the cores too)",
  "notes": "throughput: events pre-published to the input stream (core: published while relaying), time until the subscriber has all of them; latency: open loop, planned send times, latency = receive - planned (coordinated omission corrected), 1 s warm-up dropped; systems interleaved"
}
JSON
echo "wrote $out/summary.json and $out/meta.json"
