#!/usr/bin/env bash
# One vs two ringflow instances (ringflow_nats_instance processes) on this machine, with the CPU
# each side spends per event. Starts its own nats-server (file store, loopback, a free port),
# runs build/release/connectors/nats/ringflow_nats_instances_bench and writes
# OUT_DIR/{summary.json,meta.json} (default results/nats/instances).
# Usage: connectors/nats/bench/instances.sh [OUT_DIR] [bench args, e.g. --repeats 1]
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=${1:-results/nats/instances}
shift || true
bench=build/release/connectors/nats/ringflow_nats_instances_bench
instance=build/release/connectors/nats/ringflow_nats_instance
[ -x "$bench" ] && [ -x "$instance" ] || { echo "build it first: cmake --build --preset release --target ringflow_nats_instances_bench" >&2; exit 1; }
server=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$server" ] || { echo "nats-server is not installed" >&2; exit 1; }
tmp=$(mktemp -d /tmp/ringflow-instances-bench-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$server" -js -a 127.0.0.1 -p "$port" -sd "$tmp/store" -n bench >"$tmp/server.log" 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null || true; wait $spid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
mkdir -p "$out"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load=$(cut -d' ' -f1-3 /proc/loadavg)
cmd="$bench --server nats://127.0.0.1:$port --server-pid $spid --instance-bin $instance --out $out $*"
# shellcheck disable=SC2086
$cmd
rev=$(git rev-parse HEAD)
dirty=$([ -z "$(git status --porcelain -- . ':!results')" ] && echo false || echo true)
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
cat >"$out/meta.json" <<JSON
{
  "command": "connectors/nats/bench/instances.sh $out $*",
  "bench_command": "$cmd",
  "started_utc": "$started",
  "finished_utc": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "git_revision": "$rev",
  "git_dirty": $dirty,
  "machine": "$cpu, KVM VM, $(nproc) vCPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)",
  "load_average_at_start": "$load",
  "nats_server": "$("$server" --version)",
  "libnats": "$(pkg-config --modversion libnats)",
  "setup": "one nats-server 2.9 on the same 2-vCPU machine, file store, 1 replica, loopback; 64-byte events, 4 partitions, 1000 keys, pre-published to IN; 1 instance owns 0,1,2,3, 2 instances own 0,2 and 1,3 (ringflow_nats_instance: Source -> engine (4 partitions, park) -> Sink to OUT with Nats-Msg-Id, before_ack = sink.flush); time from starting the instances until OUT holds every event; CPU = utime+stime from /proc over the trial",
  "notes": "the server, the instances and the bench share two vCPUs: this cannot show scaling"
}
JSON
echo "wrote $out/summary.json and $out/meta.json"
