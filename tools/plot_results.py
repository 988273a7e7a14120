#!/usr/bin/python3
"""Plots a ringflow-bench run: results/<run>/summary.json (+ hist/*.csv) -> results/<run>/plots/.

  tools/plot_results.py results/my-run

- latency_spectrum__<scenario>[__<variant>]__<rate>eps.png: HDR-style percentile spectrum per
  system (x = 1/(1-p) on a log axis, labelled 50% .. 99.99%), platform control included (the
  two-core control: per send, max(sender lateness, rest of a worker-core stall covering it));
- latency_vs_rate__<scenario>[__<variant>].png: p50 / p99 / p99.9 against offered rate;
- throughput__<scenario>.png: achieved events/s, median bars with min-max whiskers.

Needs matplotlib for /usr/bin/python3 (Debian python3-matplotlib); uses the Agg backend.
"""

import argparse
import csv
import json
import math
import pathlib
import sys
from collections import OrderedDict, defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

ORDER = ["ringflow", "ring_inline", "mutex_queue", "tbb_graph_direct", "platform_control"]
COLORS = {"ringflow": "tab:blue", "ring_inline": "tab:purple", "mutex_queue": "tab:red",
          "tbb_graph_direct": "tab:green", "platform_control": "tab:gray"}
PCT_TICKS = [(2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10000, "99.99%"),
             (100000, "99.999%")]


def system_key(name):
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def fmt_ns(v, _pos=None):
    if v <= 0:
        return "0"
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if v >= div:
            return f"{v / div:g} {unit}"
    return f"{v:g} ns"


def fmt_rate(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def safe(s):
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in s)


def read_spectrum(path):
    xs, ys = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            inv = float(row["inverse"])
            if math.isinf(inv):
                continue
            xs.append(inv)
            ys.append(max(float(row["value_ns"]), 1.0))
    return xs, ys


def plot_spectra(rows, run, out):
    groups = defaultdict(list)
    for r in rows:
        if r.get("histogram_csv"):
            groups[(r["scenario"], r.get("variant", ""), r["offered_eps"])].append(r)
    written = []
    for (scenario, variant, offered), members in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1], g[0][2] or 0)):
        fig, ax = plt.subplots(figsize=(8, 5))
        max_x = 10
        for r in sorted(members, key=lambda r: system_key(r["system"])):
            xs, ys = read_spectrum(run / r["histogram_csv"])
            if not xs:
                continue
            max_x = max(max_x, xs[-1])
            style = "--" if r["system"] == "platform_control" else "-"
            # The control is two-core: per send, max(sender lateness, rest of a worker-core
            # stall covering the send) -- what the platform alone imposes (platform_control.hpp).
            label = r["system"] + (" (two-core: sender + worker stalls)"
                                   if r["system"] == "platform_control" else "")
            ax.plot(xs, ys, style, color=COLORS.get(r["system"]), label=label, linewidth=1.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [t for t in PCT_TICKS if t[0] <= max_x * 1.5]
        ax.xaxis.set_major_locator(FixedLocator([t[0] for t in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: dict(ticks).get(round(v), "")))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(1, max(max_x, 10))
        ax.yaxis.set_major_formatter(FuncFormatter(fmt_ns))
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (scheduled send -> handler done)")
        title = f"{scenario}{' ' + variant if variant else ''} at {fmt_rate(offered or 0)} events/s"
        ax.set_title(f"Latency by percentile — {title}")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
        name = f"latency_spectrum__{safe(scenario)}{'__' + safe(variant) if variant else ''}__{int(offered or 0)}eps.png"
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def plot_latency_vs_rate(rows, out):
    groups = defaultdict(list)
    for r in rows:
        if r.get("p50_ns") is not None and r.get("offered_eps"):
            groups[(r["scenario"], r.get("variant", ""))].append(r)
    written = []
    for (scenario, variant), members in sorted(groups.items()):
        rates = sorted({r["offered_eps"] for r in members})
        if len(rates) < 2:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), sharey=True)
        for ax, (key, label) in zip(axes, (("p50_ns", "p50"), ("p99_ns", "p99"), ("p999_ns", "p99.9"))):
            by_sys = defaultdict(list)
            for r in members:
                by_sys[r["system"]].append((r["offered_eps"], r[key]))
            for system in sorted(by_sys, key=system_key):
                pts = sorted(by_sys[system])
                ax.plot([p[0] for p in pts], [max(p[1], 1) for p in pts], "o-" if system != "platform_control" else "o--",
                        color=COLORS.get(system), label=system)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(label)
            ax.set_xlabel("offered events/s")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt_rate(v)))
            ax.yaxis.set_major_formatter(FuncFormatter(fmt_ns))
            ax.grid(True, which="major", alpha=0.3)
        axes[0].set_ylabel("latency")
        axes[0].legend()
        fig.suptitle(f"Latency vs offered rate — {scenario}{' ' + variant if variant else ''}")
        fig.tight_layout()
        name = f"latency_vs_rate__{safe(scenario)}{'__' + safe(variant) if variant else ''}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def plot_throughput(rows, out):
    groups = OrderedDict()
    for r in rows:
        if not r.get("offered_eps") and r.get("achieved_eps"):
            groups.setdefault(r["scenario"], []).append(r)
    written = []
    for scenario, members in groups.items():
        variants = list(OrderedDict.fromkeys(r.get("variant", "") for r in members))
        systems = sorted({r["system"] for r in members}, key=system_key)
        width = 0.8 / max(len(systems), 1)
        fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(variants) + 3), 4.5))
        for i, system in enumerate(systems):
            xs, ys, lo, hi = [], [], [], []
            for j, v in enumerate(variants):
                for r in members:
                    if r["system"] == system and r.get("variant", "") == v:
                        med = r["achieved_eps"] / 1e6
                        xs.append(j + (i - (len(systems) - 1) / 2) * width)
                        ys.append(med)
                        lo.append(med - r.get("achieved_min_eps", r["achieved_eps"]) / 1e6)
                        hi.append(r.get("achieved_max_eps", r["achieved_eps"]) / 1e6 - med)
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=4, color=COLORS.get(system), label=system)
            for x, y in zip(xs, ys):
                ax.annotate(f"{y:.2f}", (x, y), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels([v or scenario for v in variants])
        ax.set_ylabel("million events/s (median, min-max)")
        ax.set_title(f"Throughput — {scenario}")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        name = f"throughput__{safe(scenario)}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=pathlib.Path, help="a ringflow-bench --out folder (with summary.json)")
    ap.add_argument("--out", type=pathlib.Path, help="where to write PNGs (default RUN/plots)")
    args = ap.parse_args()
    summary = args.run / "summary.json"
    if not summary.is_file():
        sys.exit(f"plot_results: {summary} not found (run ringflow-bench --out {args.run} first)")
    rows = json.loads(summary.read_text())
    out = args.out or args.run / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = plot_spectra(rows, args.run, out) + plot_latency_vs_rate(rows, out) + plot_throughput(rows, out)
    for name in written:
        print(out / name)
    if not written:
        print("plot_results: nothing to plot in", summary)


if __name__ == "__main__":
    main()
