#!/usr/bin/env python3
"""Markdown table of jobwire beside its peer (BullMQ) from the JSON lines of
scripts/bench-peer.sh: per figure, median (min-max) over the rounds of each
system, and the ratio of medians jobwire / BullMQ.

Usage: python3 scripts/bench_peer_table.py RESULTS.jsonl   (standard library only)
"""

import json
import statistics
import sys

SYSTEMS = ("bullmq", "shared", "embedded")

# (label, mode, field); a field a system does not report shows as a dash.
FIGURES = (
    ("enqueue, jobs/s (batches)", "throughput", "enqueue_jobs_per_s"),
    ("processing, jobs/s (first → last completion)", "throughput", "process_jobs_per_s"),
    ("latency run: creates sent/s (achieved rate)", "latency", "achieved_send_rate"),
    ("latency run: jobs completed/s", "latency", "completed_rate"),
    ("latency: create call → completion seen, p50 ms", "latency", "p50_ms"),
    ("latency: create call → completion seen, p99 ms", "latency", "p99_ms"),
)


def system_of(line):
    """bullmq for the peer's lines, else jobwire's engine."""
    return "bullmq" if "bullmq" in line else line.get("engine")


def load(path):
    runs = {}
    with open(path, encoding="utf-8") as f:
        for text in f:
            text = text.strip()
            if not text.startswith("{"):
                continue
            line = json.loads(text)
            runs.setdefault((system_of(line), line.get("mode")), []).append(line)
    return runs


def number(x):
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def cell(values):
    if not values:
        return "—"
    median = statistics.median(values)
    if len(values) == 1:
        return number(median)
    return f"{number(median)} ({number(min(values))}–{number(max(values))})"


def ratio(values, peer):
    if not values or not peer or statistics.median(peer) == 0:
        return "—"
    return f"{statistics.median(values) / statistics.median(peer):.2f}×"


def table(runs):
    rounds = {s: len(runs.get((s, "throughput"), [])) for s in SYSTEMS}
    lines = [
        "| figure | BullMQ median (min–max) | jobwire shared median (min–max) | ratio "
        "| jobwire embedded median (min–max) | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for label, mode, field in FIGURES:
        values = {
            s: [r[field] for r in runs.get((s, mode), []) if isinstance(r.get(field), (int, float))]
            for s in SYSTEMS
        }
        peer = values["bullmq"]
        lines.append(
            f"| {label} | {cell(peer)} | {cell(values['shared'])} | {ratio(values['shared'], peer)} "
            f"| {cell(values['embedded'])} | {ratio(values['embedded'], peer)} |"
        )
    lines.append("")
    lines.append(
        "Ratio: jobwire's median ÷ BullMQ's (above 1 is better for rates, worse for latencies). "
        f"Throughput runs: BullMQ {rounds['bullmq']}, shared {rounds['shared']}, "
        f"embedded {rounds['embedded']}."
    )
    problems = [
        f"{s} latency run: {r.get('errors', 0)} errors, {r.get('unfinished', 0)} unfinished"
        for s in ("shared", "embedded")
        for r in runs.get((s, "latency"), [])
        if r.get("errors") or r.get("unfinished")
    ]
    if problems:
        lines.append("")
        lines.extend(f"- {p}" for p in problems)
    return "\n".join(lines)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(table(load(sys.argv[1])))


if __name__ == "__main__":
    main()
