#!/usr/bin/env python3
"""Revocation propagation across replicas (issue 14, item 7); standard library only.

  bench/revocation.py [ROUNDS]        (default 200)

Env: MCPGATE_BIN (default target/debug/mcpgate), MCPGATE_TEST_POSTGRES_URL (a server URL
whose user may create databases; default postgres://postgres@127.0.0.1:5432/postgres).
Needs `psql`.

Starts two `mcpgate serve` replicas, A and B, on a fresh PostgreSQL database (dropped at the
end) and creates ROUNDS API keys. Each round: B verifies the key (so B's verified-credential
cache holds it), the key is revoked by an UPDATE on a connection kept open (so no process start
is timed), and both replicas are asked again and again until both refuse the key. The time
from sending the UPDATE to the later of their first 401s is the propagation time: commit,
NOTIFY, each listener clearing its cache, and verifying again (plus up to one round of
polling, two requests). Prints p50 / p90 / p99 / max.
Without the announcement B would accept the key until its cache entry expires (up to 1 s).
"""

import http.client
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replicas_lib import BIN, pct, two_replicas  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


class Poller:
    """Asks one replica, on one kept connection, whether it accepts a key."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    def status(self, key):
        # A GET without a session: 400 once authenticated, 401 when the key is refused.
        self.conn.request("GET", "/mcp/local", headers={"authorization": f"Bearer {key}",
                                                        "accept": "text/event-stream"})
        r = self.conn.getresponse()
        r.read()
        return r.status


with two_replicas("revocation") as (url, base_a, base_b):
    keys = []
    for i in range(ROUNDS):
        out = subprocess.run([BIN, "keys", "create", "--name", f"k{i}", "--scopes", "mcp",
                              "--subject", "bench", "--store-url", url],
                             capture_output=True, text=True, check=True)
        keys.append((f"k{i}", out.stdout.strip()))
    revoker = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    on_a, on_b = Poller(base_a), Poller(base_b)
    times = []
    for key_name, key in keys:
        assert on_a.status(key) == 400 and on_b.status(key) == 400, "a fresh key is accepted"
        t0 = time.perf_counter()
        revoker.stdin.write(
            f"UPDATE api_keys SET revoked_at = extract(epoch from now())::bigint WHERE name = '{key_name}';\n"
            "\\echo done\n")
        revoker.stdin.flush()
        pending = {"A": on_a, "B": on_b}
        while pending:
            for who, poller in list(pending.items()):
                s = poller.status(key)
                if s == 401:
                    del pending[who]
                else:
                    assert s == 400, s
            if time.perf_counter() - t0 > 5:
                sys.exit(f"{key_name}: {sorted(pending)} still accept the key 5 s after its revocation")
        times.append((time.perf_counter() - t0) * 1000)
        assert revoker.stdout.readline().strip() == "done"
    revoker.stdin.close()
    revoker.wait()
    print(f"revocation propagation to both replicas, {len(times)} revocations (ms): "
          f"p50 {pct(times, 50):.1f}  p90 {pct(times, 90):.1f}  p99 {pct(times, 99):.1f}  "
          f"max {max(times):.1f}")
