#!/usr/bin/env bash
# Three nats-server -js clustered on this machine plus N ringflow instances sharing the input's
# partitions through leases: the README's "Scale-out on NATS JetStream" layout, runnable.
#   connectors/nats/examples/cluster.sh [N=2] [DIR=/tmp/ringflow-cluster]
# Client ports 4222-4224, route ports 6222-6224. The input stream IN (in.<partition>.<key>) and
# the output stream OUT are R3; each instance holds the partitions its leases give it. Producers
# publish to in.<partition_of(key, 4)>.<key> (ringflow::nats::subject_for). Ctrl-C stops all.
# On N machines: run one nats-server per machine (3 of them) with routes to the others, and one
# ringflow_nats_instance per machine with every server's URL.
set -euo pipefail
cd "$(dirname "$0")/../../.."
n=${1:-2}
dir=${2:-/tmp/ringflow-cluster}
instance=build/release/connectors/nats/ringflow_nats_instance
[ -x "$instance" ] || { echo "build it first: cmake --build --preset release --target ringflow_nats_instance" >&2; exit 1; }
server=$(command -v nats-server || echo /usr/sbin/nats-server)
mkdir -p "$dir"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
routes='"nats-route://127.0.0.1:6222", "nats-route://127.0.0.1:6223", "nats-route://127.0.0.1:6224"'
for i in 0 1 2; do
  cat >"$dir/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((4222 + i))
jetstream { store_dir: "$dir/n$i" }
cluster { name: ringflow, listen: 127.0.0.1:$((6222 + i)), routes: [$routes] }
CONF
  "$server" -c "$dir/n$i.conf" >"$dir/n$i.log" 2>&1 &
  pids+=($!)
done
servers=(--server nats://127.0.0.1:4222 --server nats://127.0.0.1:4223 --server nats://127.0.0.1:4224)
# The instances wait (up to 30 s) for the cluster to elect its JetStream meta leader.
for k in $(seq 1 "$n"); do
  "$instance" "${servers[@]}" --replicas 3 --stream IN --prefix in --partitions 4 \
    --out-stream OUT --out-prefix out --lease-instance "i$k" >"$dir/instance-$k.log" 2>&1 &
  pids+=($!)
done
echo "3 servers (nats://127.0.0.1:4222-4224) and $n instances running; logs in $dir. Ctrl-C stops."
wait
