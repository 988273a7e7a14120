#!/usr/bin/env bash
# ringflow-top in a real terminal: start ringflow-metrics-demo with a known workload (2000
# orders, every 100th failing; 200 payments, one retried), run ringflow-top in a detached tmux
# session, capture the pane and check the figures it shows. Every wait is bounded.
set -euo pipefail
top=$1 demo=$2 tmux=$3
work=$(mktemp -d)
session="rf-top-test-$$"
demo_pid=""
cleanup() {
  "$tmux" -L "$session" kill-server 2>/dev/null || true
  if [ -n "$demo_pid" ]; then
    kill "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$demo" --address 127.0.0.1:0 --port-file "$work/port" --rate 20000 --count 2000 --seconds 50 \
  >"$work/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "demo did not start"; cat "$work/demo.log"; exit 1; }
port=$(cat "$work/port")

"$tmux" -L "$session" new-session -d -s "$session" -x 120 -y 40 \
  "$top --interval-ms 300 127.0.0.1:$port"

checks=(
  '^ringflow-top +http://127\.0\.0\.1:'"$port"'/metrics|header with the endpoint'
  '^events in +[0-9.]+/s +total 2200 +stored 2200 +processed 2200|event rate and totals'
  '^handlers +ok [0-9.]+/s +failures [0-9.]+/s +retries [0-9.]+/s|handler rates'
  '^orders +[-0-9.]+ +2000 +2000 +0 +0 +20 *$|orders row: total, stored, DLQ 20'
  '^payments +[-0-9.]+ +200 +200 +0 +0 +0 *$|payments row'
  '^dead letters 20 \(.*failed 20|dead letters by reason'
  '^refusals .*full 0|refusals'
  '^0 +orders +- +[-0-9.]+ +1980 +20 +0 +20 *$|subscription orders: ok, failed, DLQ'
  '^1 +payments +- +[-0-9.]+ +200 +4 +4 +0 *$|subscription payments: retries'
  '^latency +ingest->done +p50 [0-9.]+(ns|us|ms) +p99 [0-9.]+(ns|us|ms)|latency p50/p99'
  '^0 +[-0-9.]+ +0 +0 +0 |shard 0 row: ring depths 0, no full'
  '^STAGE +P50 +P99|stage table'
  '^store +[0-9.]+(ns|us|ms) +[0-9.]+(ns|us|ms) *$|stage store p50/p99'
  '^stages +[0-9.]+(ns|us|ms) +[0-9.]+(ns|us|ms) *$|stage stages p50/p99'
  '^handlers +[0-9.]+(ns|us|ms) +[0-9.]+(ns|us|ms) *$|stage handlers p50/p99'
  '^failures +[0-9.]+(ns|us|ms) +[0-9.]+(ns|us|ms) *$|stage failures p50/p99'
)
run_checks() {  # $1 = verbose
  local bad=0 c
  for c in "${checks[@]}"; do
    if grep -Eq "${c%|*}" <<<"$pane"; then
      [ "$1" = 1 ] && echo "ok: ${c##*|}"
    else
      [ "$1" = 1 ] && echo "MISSING: ${c##*|} (${c%|*})"
      bad=1
    fi
  done
  return $bad
}

# Wait (bounded: 20 s) until the view shows the whole workload, then report every check.
pane=""
for _ in $(seq 100); do
  pane=$("$tmux" -L "$session" capture-pane -p -t "$session" 2>/dev/null || true)
  run_checks 0 && break
  sleep 0.2
done
echo "$pane"
run_checks 1
