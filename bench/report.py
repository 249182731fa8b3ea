#!/usr/bin/env python3
"""Summarizes bench/run.sh results (BENCH and MEM lines) against issue 17's targets.

  report.py RESULTS_FILE

Each BENCH line is one wrk run of one setup at one concurrency; its setup= and conns=
fields name the cell, proxy_ticks/up_ticks/wrk_ticks the CPU the hop (gateway or nginx,
master and workers), the upstream and wrk used during it.
"""

import os
import statistics
import sys

NPROC = os.cpu_count() or 1

SETUPS = ("direct", "nginx", "noauth", "apikey", "jwt", "stdio", "stateless")
NAMES = {
    "direct": "direct",
    "nginx": "nginx",
    "noauth": "mcpgate no auth",
    "apikey": "mcpgate API key",
    "jwt": "mcpgate JWT (warm)",
    "stdio": "mcpgate stdio",
    "stateless": "mcpgate stateless",
}
GATEWAYS = ("noauth", "apikey", "jwt")
# Issue 17's targets.
RPS_VS_NGINX = {"noauth": 1.0, "apikey": 0.95, "jwt": 0.95}
CPU_VS_NGINX, CPU_STRETCH = 1.1, 1.0
ADDED_P50_MS, ADDED_P99_MS = 0.10, 0.5
IDLE_RSS_MIB = 15.0
PER_SESSION_KIB = 4.0


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def aggregate(rs):
    tck = float(rs[0]["clk_tck"])
    reqs = sum(int(r["requests"]) for r in rs) or 1
    secs = sum(int(r["duration_us"]) for r in rs) / 1e6
    return {
        "rps": statistics.mean(float(r["rps"]) for r in rs),
        "rps_each": [float(r["rps"]) for r in rs],
        "p50": statistics.mean(int(r["p50_us"]) for r in rs) / 1000,
        "p99": statistics.mean(int(r["p99_us"]) for r in rs) / 1000,
        "errors": sum(int(r["errors"]) + int(r["non2xx"]) for r in rs),
        # CPU microseconds per request, by process.
        "proxy_us": sum(int(r["proxy_ticks"]) for r in rs) / tck * 1e6 / reqs,
        # Its user-mode part (the rest is system calls); absent from older result files.
        "proxy_user_us": (sum(int(r["proxy_user_ticks"]) for r in rs) / tck * 1e6 / reqs
                          if all("proxy_user_ticks" in r for r in rs) else None),
        "up_us": sum(int(r["up_ticks"]) for r in rs) / tck * 1e6 / reqs,
        "wrk_us": sum(int(r["wrk_ticks"]) for r in rs) / tck * 1e6 / reqs,
        # CPU other processes took during the runs, as a share of the machine (worst run).
        "other_pct": max(100 * int(r["other_ticks"]) / tck / (int(r["window_us"]) / 1e6) / NPROC for r in rs),
        "secs": secs,
    }


def main(path):
    runs, mem = {}, {}
    for line in open(path):
        if line.startswith("BENCH "):
            f = fields(line)
            runs.setdefault((f["setup"], int(f["conns"])), []).append(f)
        elif line.startswith("MEM "):
            # "MEM key=…" (whole process) or "MEM stdio key=…" (one session kind)
            words = line.split()
            name = "all" if "=" in words[1] else words.pop(1)
            mem[name] = fields(" ".join(words))

    table = {k: aggregate(v) for k, v in runs.items()}
    conns = sorted({c for _, c in table})
    other = max((v["other_pct"] for v in table.values()), default=0)
    skewed = other > 10

    print()
    print(f"{'setup':<20}{'conns':>6}{'req/s (each round)':>28}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}"
          f"{'hop CPU µs/req':>16}{'of it user':>12}{'upstream µs/req':>17}{'wrk µs/req':>12}{'other %':>9}")
    for c in conns:
        for s in SETUPS:
            a = table.get((s, c))
            if a is None:
                continue
            each = " / ".join(f"{x:.0f}" for x in a["rps_each"])
            hop = "-" if s == "direct" else f"{a['proxy_us']:.1f}"
            user = "-" if s == "direct" or a["proxy_user_us"] is None else f"{a['proxy_user_us']:.1f}"
            print(f"{NAMES[s]:<20}{c:>6}{a['rps']:>9.0f} ({each}){'':>{max(0, 17 - len(each))}}"
                  f"{a['p50']:>9.3f}{a['p99']:>9.3f}{a['errors']:>7}{hop:>16}{user:>12}{a['up_us']:>17.1f}{a['wrk_us']:>12.1f}{a['other_pct']:>9.1f}")
        print()
    print("hop CPU: the gateway process, or nginx's master + workers (of it user: in user mode, the rest")
    print("is the kernel's work for its system calls); upstream: the demo server (stdio:")
    print("its shared child); wrk: the load generator; other %: the worst run's CPU used by anything")
    print("else, in % of the machine. p50/p99: means over the rounds of wrk's percentiles.")

    def verdict(ok, timed=True):
        v = "met" if ok else "MISSED"
        return f"{v} (unreliable: machine busy)" if skewed and timed else v

    print()
    print("against the targets (issue 17; same run)")
    for c in conns:
        n = table.get(("nginx", c))
        if not n:
            continue
        for s in GATEWAYS:
            g = table.get((s, c))
            if not g:
                continue
            ratio = g["rps"] / n["rps"]
            want = RPS_VS_NGINX[s]
            print(f"  c={c:<4} {NAMES[s]:<19} req/s / nginx  {ratio:5.2f} (target >= {want:.2f})          {verdict(ratio >= want)}")
        for s in GATEWAYS + ("stdio",):
            g = table.get((s, c))
            if not g or n["proxy_us"] <= 0:
                continue
            cpu = g["proxy_us"] / n["proxy_us"]
            v = verdict(cpu <= CPU_VS_NGINX)
            stretch = "stretch met" if cpu <= CPU_STRETCH else "stretch missed"
            print(f"  c={c:<4} {NAMES[s]:<19} CPU/req / nginx {cpu:5.2f} (target <= {CPU_VS_NGINX}, stretch <= {CPU_STRETCH})  {v}; {stretch}")
    d1 = table.get(("direct", 1))
    if d1:
        for s in ("nginx",) + GATEWAYS + ("stdio", "stateless"):
            g = table.get((s, 1))
            if not g:
                continue
            a50, a99 = g["p50"] - d1["p50"], g["p99"] - d1["p99"]
            if s == "nginx":
                print(f"  c=1    {NAMES[s]:<19} added p50 {a50:+.3f} ms, p99 {a99:+.3f} ms over direct (reference)")
                continue
            ok = a50 <= ADDED_P50_MS and a99 <= ADDED_P99_MS
            print(f"  c=1    {NAMES[s]:<19} added p50 {a50:+.3f} ms (<= {ADDED_P50_MS}), p99 {a99:+.3f} ms (<= {ADDED_P99_MS}) over direct  {verdict(ok)}")
    for c in conns:
        st, h = table.get(("stdio", c)), table.get(("noauth", c))
        if st and h:
            ok = st["rps"] >= h["rps"] and (c != 1 or st["p50"] <= h["p50"])
            lat = f", p50 {st['p50']:.3f} vs {h['p50']:.3f} ms" if c == 1 else ""
            print(f"  c={c:<4} stdio vs HTTP path      req/s {st['rps']:.0f} vs {h['rps']:.0f}{lat} (stdio not slower)  {verdict(ok)}")
    for c in conns:
        sl, h = table.get(("stateless", c)), table.get(("noauth", c))
        if sl and h:
            ok = sl["proxy_us"] <= h["proxy_us"]
            print(f"  c={c:<4} stateless vs sessionful gateway CPU/req {sl['proxy_us']:.1f} vs {h['proxy_us']:.1f} µs (<=)  {verdict(ok)}")
    a = mem.get("all")
    if a:
        idle = int(a["idle_rss_kib"]) / 1024
        print(f"  gateway idle RSS                 {idle:6.1f} MiB (target <= {IDLE_RSS_MIB:.0f} MiB)   {verdict(idle <= IDLE_RSS_MIB, timed=False)}")
    h = mem.get("http")
    if h:
        per = int(h["per_session_bytes"]) / 1024
        print(f"  per idle session (HTTP upstream) {per:6.1f} KiB (target <= {PER_SESSION_KIB:.0f} KiB)   {verdict(per <= PER_SESSION_KIB, timed=False)}"
              f"   [RSS {h['before_kib']} -> {h['after_kib']} KiB for {a['sessions'] if a else '?'} sessions]")
    st = mem.get("stdio")
    if st:
        per = int(st["per_session_bytes"]) / 1024
        print(f"  per idle session (stdio shared)  {per:6.1f} KiB (target: unchanged; context)"
              f"   [RSS {st['before_kib']} -> {st['after_kib']} KiB]")
    if a:
        print(f"  gateway RSS at the end of the run {int(a['final_rss_kib']) / 1024:5.1f} MiB")
    total_errors = sum(v["errors"] for v in table.values())
    if other > 5:
        print(f"  WARNING: other processes used up to {other:.0f}% of the machine during a run; figures are skewed")
    if total_errors:
        print(f"  WARNING: {total_errors} socket errors or non-2xx responses during the runs")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
