#!/usr/bin/env python3
"""Summarizes bench/run.sh results (BENCH and MEM lines) against the targets.

  report.py RESULTS_FILE
"""

import re
import os
import statistics
import sys

NPROC = os.cpu_count() or 1

TARGET_RATIO = 0.8          # gateway throughput / direct throughput, at least
TARGET_ADDED_P50_MS = 0.3   # added median latency, at most
TARGET_IDLE_RSS_MIB = 20.0  # gateway RSS with no sessions, at most
TARGET_PER_SESSION_KIB = 20.0


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def main(path):
    runs, mem = {}, {}
    for line in open(path):
        if line.startswith("BENCH "):
            f = fields(line)
            kind, target, _round = f["label"].split("-")  # e.g. tput-direct-1
            runs.setdefault((kind, target), []).append(f)
        elif line.startswith("MEM "):
            # "MEM key=…" (whole process) or "MEM stdio key=…" (one session kind)
            words = line.split()
            name = "all" if "=" in words[1] else words.pop(1)
            mem[name] = fields(" ".join(words))

    def agg(kind, target):
        rs = runs.get((kind, target), [])
        if not rs:
            return None
        tck = float(rs[0]["clk_tck"])
        reqs = sum(int(r["requests"]) for r in rs)
        return {
            "n": len(rs),
            "rps": statistics.mean(float(r["rps"]) for r in rs),
            "rps_each": [float(r["rps"]) for r in rs],
            "p50": statistics.mean(int(r["p50_us"]) for r in rs) / 1000,
            "p90": statistics.mean(int(r["p90_us"]) for r in rs) / 1000,
            "p99": statistics.mean(int(r["p99_us"]) for r in rs) / 1000,
            "errors": sum(int(r["errors"]) + int(r["non2xx"]) for r in rs),
            # CPU microseconds per request, by process.
            "gw_us": sum(int(r["gw_ticks"]) for r in rs) / tck * 1e6 / reqs,
            "up_us": sum(int(r["demo_ticks"]) + int(r["child_ticks"]) for r in rs) / tck * 1e6 / reqs,
            # CPU used by other processes during the runs, as a share of the machine.
            "other_pct": 100 * sum(int(r.get("other_ticks", 0)) for r in rs) / tck
            / (sum(int(r["duration_us"]) for r in rs) / 1e6) / NPROC,
            "wrk_us": sum(int(r.get("wrk_ticks", 0)) for r in rs) / tck * 1e6 / reqs,
        }

    print()
    print(f"{'run':<22}{'req/s (each round)':>30}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'gw CPU µs/req':>15}{'upstream CPU µs/req':>21}{'wrk CPU µs/req':>16}{'other CPU %':>13}")
    table = {}
    for kind, title in (("tput", "throughput"), ("lat", "latency c=1")):
        for target in ("direct", "gateway", "stdio"):
            a = agg(kind, target)
            if a is None:
                continue
            table[(kind, target)] = a
            each = " / ".join(f"{x:.0f}" for x in a["rps_each"])
            name = f"{title}: {target}"
            print(f"{name:<22}{a['rps']:>10.0f} ({each}){'':>{max(0, 18 - len(each) - 2)}}"
                  f"{a['p50']:>9.3f}{a['p90']:>9.3f}{a['p99']:>9.3f}{a['errors']:>8}{a['gw_us']:>15.1f}{a['up_us']:>21.1f}{a['wrk_us']:>16.1f}{a['other_pct']:>13.1f}")

    # Share of the machine other processes took during the worst counted run.
    other = max((v["other_pct"] for v in table.values()), default=0)
    skewed = other > 10

    def verdict(ok, timed=True):
        """Met or missed; timing figures are flagged when other work shared the CPUs."""
        v = "met" if ok else "MISSED"
        return f"{v} (unreliable: machine busy)" if skewed and timed else v

    print()
    print("against the targets")
    d, g = table.get(("tput", "direct")), table.get(("tput", "gateway"))
    if d and g:
        ratio = g["rps"] / d["rps"]
        print(f"  throughput ratio gateway/direct   {ratio:6.2f}   (target >= {TARGET_RATIO})      {verdict(ratio >= TARGET_RATIO)}")
        print(f"  added p50 / p99 under load        {g['p50'] - d['p50']:+6.3f} / {g['p99'] - d['p99']:+.3f} ms (queueing included; context only)")
    ld, lg = table.get(("lat", "direct")), table.get(("lat", "gateway"))
    if ld and lg:
        added50, added99 = lg["p50"] - ld["p50"], lg["p99"] - ld["p99"]
        print(f"  added p50 latency (c=1)           {added50:+6.3f} ms (target <= {TARGET_ADDED_P50_MS} ms)  {verdict(added50 <= TARGET_ADDED_P50_MS)}")
        print(f"  added p99 latency (c=1)           {added99:+6.3f} ms (no target)")
    s = table.get(("tput", "stdio"))
    if d and s:
        print(f"  stdio upstream via gateway / direct HTTP throughput  {s['rps'] / d['rps']:.2f} (context)")
    a = mem.get("all")
    if a:
        idle = int(a["idle_rss_kib"]) / 1024
        print(f"  gateway idle RSS                  {idle:6.1f} MiB (target <= {TARGET_IDLE_RSS_MIB:.0f} MiB)    {verdict(idle <= TARGET_IDLE_RSS_MIB, timed=False)}")
    for name, label in (("stdio", "stdio shared"), ("http", "HTTP upstream")):
        m = mem.get(name)
        if m:
            per = int(m["per_session_bytes"]) / 1024
            print(f"  per idle session ({label:<13}) {per:6.1f} KiB (target <= {TARGET_PER_SESSION_KIB:.0f} KiB)    {verdict(per <= TARGET_PER_SESSION_KIB, timed=False)}"
                  f"   [RSS {m['before_kib']} -> {m['after_kib']} KiB for {a['sessions'] if a else '?'} sessions]")
    if a:
        print(f"  gateway RSS at the end of the run {int(a['final_rss_kib']) / 1024:6.1f} MiB")
    total_errors = sum(v["errors"] for v in table.values())
    if other > 5:
        print(f"  WARNING: other processes used up to {other:.0f}% of the machine during a run; figures are skewed")
    if total_errors:
        print(f"  WARNING: {total_errors} socket errors or non-2xx responses during the runs")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
