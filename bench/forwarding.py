#!/usr/bin/env python3
"""What forwarding a stdio session's request to its owner costs; standard library only.

  bench/forwarding.py [CALLS]        (default 500)

Env and needs as bench/revocation.py. Two replicas, A and B, on a fresh PostgreSQL database
(dropped at the end), serving the demo as a per-session stdio child. One session is opened on A
(its child runs there); CALLS `tools/call echo` are sent one after another through A, then
through B, which forwards each to A's internal listener. Prints the latency percentiles of
both and the difference: the price of the extra hop (a pass sealed and opened, one more HTTP
exchange on loopback, and policy checked on both replicas).
"""

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replicas_lib import BIN, pct, two_replicas  # noqa: E402

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 500


def post(conn, key, sid, body):
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json",
               "accept": "application/json, text/event-stream",
               "mcp-protocol-version": "2025-06-18"}
    if sid:
        headers["mcp-session-id"] = sid
    conn.request("POST", "/mcp/local", body=json.dumps(body), headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, r.getheader("mcp-session-id"), data


def connect(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


with two_replicas("forwarding") as (url, base_a, base_b):
    key = subprocess.run([BIN, "keys", "create", "--name", "bench", "--scopes", "mcp", "--subject",
                          "bench", "--store-url", url], capture_output=True, text=True,
                         check=True).stdout.strip()
    on_a, on_b = connect(base_a), connect(base_b)
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "0"}}}
    status, sid, _ = post(on_a, key, None, init)
    assert status == 200 and sid, status
    status, _, _ = post(on_a, key, sid, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert status == 202, status
    results = {}
    for label, conn in (("A (owner)", on_a), ("B (forwarded to A)", on_b)):
        times = []
        for i in range(CALLS + 20):
            call = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": f"n{i}"}}}
            t0 = time.perf_counter()
            status, _, data = post(conn, key, sid, call)
            if i >= 20:  # warm-up
                times.append((time.perf_counter() - t0) * 1000)
            assert status == 200 and f"n{i}".encode() in data, (status, data[:200])
        results[label] = times
        print(f"{label:20} {CALLS} calls: p50 {pct(times, 50):.2f}  p90 {pct(times, 90):.2f}  "
              f"p99 {pct(times, 99):.2f} ms")
    a50, b50 = pct(results["A (owner)"], 50), pct(results["B (forwarded to A)"], 50)
    print(f"forwarding adds {b50 - a50:.2f} ms at the median ({b50 / a50:.2f}x)")
