#!/usr/bin/env python3
"""Prints the markdown tables of results/ring/README.md from ring_bench.json (aggregates only,
with the min/max statistics ring_bench adds). Usage: summarize.py [ring_bench.json]"""
import json
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "results/ring/ring_bench.json"
data = json.load(open(path))
agg = {}
for b in data["benchmarks"]:
    if b.get("run_type") != "aggregate":
        continue
    agg.setdefault(b["run_name"].removesuffix("/real_time"), {})[b["aggregate_name"]] = b

QUEUES = ["SpscRing", "boost_spsc_queue", "moodycamel_rwq", "mutex_deque"]


def rate(name, stat="median"):
    b = agg.get(name, {}).get(stat)
    return b["items_per_second"] / 1e6 if b else float("nan")


def fmt_rate(name):
    return f"{rate(name):.1f} ({rate(name, 'min'):.1f}–{rate(name, 'max'):.1f})"


print("Throughput, M items/s, median of 5 (min–max):\n")
print("| queue | 1p1c_throughput | 1p1c_throughput_batch64 | batch64 / single |")
print("|---|---:|---:|---:|")
for q in QUEUES:
    s, b = f"1p1c_throughput/{q}", f"1p1c_throughput_batch64/{q}"
    print(f"| {q} | {fmt_rate(s)} | {fmt_rate(b)} | {rate(b) / rate(s):.2f}x |")
span = "1p1c_throughput_batch64/SpscRing_front_span"
print(f"| SpscRing (front_span/release consumer) | | {fmt_rate(span)} | "
      f"{rate(span) / rate('1p1c_throughput/SpscRing'):.2f}x |")

print("\nRatios of medians:\n")
print("| ratio | single item | batch64 |")
print("|---|---:|---:|")
for peer in ["boost_spsc_queue", "moodycamel_rwq", "mutex_deque"]:
    s = rate("1p1c_throughput/SpscRing") / rate(f"1p1c_throughput/{peer}")
    b = rate("1p1c_throughput_batch64/SpscRing") / rate(f"1p1c_throughput_batch64/{peer}")
    print(f"| SpscRing / {peer} | {s:.2f}x | {b:.2f}x |")

print("\nPing-pong round trip, ns (median of 5 runs of each percentile; min–max across runs):\n")
print("| queue | p50 | p99 | p99.9 |")
print("|---|---:|---:|---:|")
for q in QUEUES + ["platform_control"]:
    a = agg.get(f"ping_pong_latency/{q}", {})
    cells = []
    for c in ["p50_ns", "p99_ns", "p99.9_ns"]:
        if "median" in a:
            cells.append(f"{a['median'][c]:.0f} ({a['min'][c]:.0f}–{a['max'][c]:.0f})")
        else:
            cells.append("n/a")
    print(f"| {q} | " + " | ".join(cells) + " |")
ctx = data["context"]
print(f"\nload_avg at start: {ctx.get('load_avg')}; cpu_model: {ctx.get('cpu_model')}; "
      f"pinning: {ctx.get('pinning')}")
