#!/usr/bin/env python3
"""Load and sampling for bench/soak.sh (standard library only).

  soak.py BASE GW_PID API_KEY CLIENT_ID REFRESH_TOKEN MINUTES CSV

Runs, for MINUTES, a bounded mixed load against the gateway at BASE:
  - sessions: open a session on the per-session stdio upstream "own", call
    echo five times, DELETE it; again (one worker);
  - calls: one long-lived session calling echo (reopened when it ends);
  - http: sessions on the Streamable HTTP upstream "http", opened, used, closed;
  - refresh: a refresh grant with rotation every 0.5 s (the chain continues);
  - chaos, once a minute each: SIGKILL of one child of the gateway (a crash),
    and an initialize on "slow" (a child that takes 3 s to start) abandoned
    after 0.5 s (a client gone mid-initialize).
Every 10 s it appends to CSV: elapsed seconds, the gateway's RSS (KiB), open
fds, live children, and the request counters. Then it stops the load, closes
its sessions, waits for the children to go, and prints the summary: growth is
the least-squares trend over the samples after warm-up (the first fifth of the
run), in percent of the mean, so that the noise of in-flight connections does
not read as growth; the first and last minute are printed too.
Exits non-zero when an invariant breaks (see the summary).
"""

import csv
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

BASE, GW_PID, API_KEY, CLIENT_ID, REFRESH, MINUTES, CSV_PATH = sys.argv[1:8]
GW_PID = int(GW_PID)
DURATION = float(MINUTES) * 60
PROTOCOL = "2025-11-25"
u = urllib.parse.urlsplit(BASE)
HOST, PORT = u.hostname, u.port
stop = threading.Event()
lock = threading.Lock()
counts = {"ok": 0, "fail": 0, "refresh_ok": 0, "refresh_fail": 0, "crashes": 0, "abandoned": 0, "reopened": 0}


def count(key, n=1):
    with lock:
        counts[key] += n


def request(method, path, body=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def mcp(path, message, session=None, timeout=30):
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Authorization": "Bearer " + API_KEY,
    }
    if session:
        headers["Mcp-Session-Id"] = session
        headers["MCP-Protocol-Version"] = PROTOCOL
    return request("POST", path, json.dumps(message), headers, timeout)


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "soak", "version": "0"}}}


def open_session(path):
    status, headers, _ = mcp(path, INIT)
    sid = headers.get("mcp-session-id")
    if status != 200 or not sid:
        count("fail")
        return None
    mcp(path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
    count("ok")
    return sid


def close_session(path, sid):
    headers = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTOCOL, "Authorization": "Bearer " + API_KEY}
    try:
        request("DELETE", path, None, headers)
    except OSError:
        pass


def echo(path, sid, n):
    status, _, body = mcp(path, {"jsonrpc": "2.0", "id": 100 + n, "method": "tools/call",
                                 "params": {"name": "echo", "arguments": {"text": f"soak {n}"}}}, sid)
    ok = status == 200 and f"soak {n}".encode() in body
    count("ok" if ok else "fail")
    return status


def worker_sessions(path, pause):
    while not stop.is_set():
        try:
            sid = open_session(path)
            if sid:
                for n in range(5):
                    echo(path, sid, n)
                close_session(path, sid)
        except OSError:
            count("fail")
        stop.wait(pause)


def worker_calls():
    sid, n = None, 0
    while not stop.is_set():
        try:
            if sid is None:
                sid = open_session("/mcp/own")
                count("reopened")
            if sid is not None:
                n += 1
                if echo("/mcp/own", sid, n) == 404:
                    # Its child was the one killed: the session ended; open another.
                    sid = None
        except OSError:
            count("fail")
        stop.wait(0.05)
    if sid:
        close_session("/mcp/own", sid)


def worker_refresh():
    token = REFRESH
    while not stop.is_set():
        body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": token, "client_id": CLIENT_ID})
        try:
            status, _, data = request("POST", "/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
            if status == 200:
                token = json.loads(data)["refresh_token"]
                count("refresh_ok")
            else:
                count("refresh_fail")
        except (OSError, ValueError, KeyError):
            count("refresh_fail")
        stop.wait(0.5)


def children():
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[1]) == GW_PID and rest[0] not in "ZX":
            out.append(int(entry))
    return out


def rss_kib():
    with open(f"/proc/{GW_PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds():
    return len(os.listdir(f"/proc/{GW_PID}/fd"))


def abandon_initialize():
    # Sends initialize to the slow upstream and hangs up before the child answers.
    s = socket.create_connection((HOST, PORT), timeout=5)
    body = json.dumps(INIT).encode()
    head = (f"POST /mcp/slow HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head + body)
    time.sleep(0.5)
    s.close()
    count("abandoned")


def chaos():
    started = time.monotonic()
    minute = 0
    while not stop.wait(1):
        if time.monotonic() - started < (minute + 1) * 60:
            continue
        minute += 1
        kids = children()
        if kids:
            try:
                os.kill(kids[0], signal.SIGKILL)
                count("crashes")
            except ProcessLookupError:
                pass
        stop.wait(20)
        try:
            abandon_initialize()
        except OSError:
            count("fail")


def main():
    threads = [
        threading.Thread(target=worker_sessions, args=("/mcp/own", 0.2)),
        threading.Thread(target=worker_sessions, args=("/mcp/http", 0.2)),
        threading.Thread(target=worker_calls),
        threading.Thread(target=worker_refresh),
        threading.Thread(target=chaos),
    ]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    rows = []
    with open(CSV_PATH, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["elapsed_s", "rss_kib", "fds", "children", "ok", "fail", "refresh_ok", "refresh_fail",
                    "crashes", "abandoned"])
        while True:
            elapsed = time.monotonic() - t0
            with lock:
                c = dict(counts)
            row = [round(elapsed), rss_kib(), fds(), len(children()), c["ok"], c["fail"], c["refresh_ok"],
                   c["refresh_fail"], c["crashes"], c["abandoned"]]
            w.writerow(row)
            f.flush()
            rows.append(row)
            print("  " + " ".join(f"{k}={v}" for k, v in zip(
                ["t", "rss_kib", "fds", "children", "ok", "fail", "refresh_ok", "refresh_fail", "crashes",
                 "abandoned"], row)), file=sys.stderr, flush=True)
            if elapsed >= DURATION:
                break
            time.sleep(min(10, max(0.1, DURATION - elapsed)))
    stop.set()
    for t in threads:
        t.join(timeout=60)
    # Idle: every session closed; the children must go (per-session ones with their session).
    deadline = time.monotonic() + 30
    while children() and time.monotonic() < deadline:
        time.sleep(0.5)
    idle_children = len(children())
    time.sleep(2)
    summary(rows, idle_children, fds())


def trend_pct(rows, i):
    """The least-squares trend of column i over rows, as the change across the rows'
    time span in percent of their mean: growth, with the sample-to-sample noise of
    in-flight connections and children averaged out."""
    xs = [r[0] for r in rows]
    ys = [r[i] for r in rows]
    n = len(rows)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0 or my == 0:
        return 0.0
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var
    return slope * (xs[-1] - xs[0]) / my * 100


def summary(rows, idle_children, idle_fds):
    # Warm-up: the first fifth of the run (at least one minute when the run is long enough).
    warm = max(min(60, rows[-1][0] / 2), rows[-1][0] / 5)
    after = [r for r in rows if r[0] >= warm]
    window = max(1, min(6, len(after) // 4))  # one minute of samples at each end
    first, last = after[:window], after[-window:]
    mean = lambda rs, i: sum(r[i] for r in rs) / len(rs)
    rss_trend, fd_trend = trend_pct(after, 1), trend_pct(after, 2)
    c = rows[-1]
    print(f"duration_s={c[0]} warmup_s={warm:.0f} samples={len(rows)} samples_after_warmup={len(after)}")
    print(f"requests_ok={c[4]} requests_failed={c[5]} refresh_ok={c[6]} refresh_failed={c[7]} "
          f"child_crashes={c[8]} abandoned_initializes={c[9]}")
    print(f"rss_kib: first_minute_after_warmup={mean(first, 1):.0f} last_minute={mean(last, 1):.0f} "
          f"min={min(r[1] for r in after)} max={max(r[1] for r in after)} trend_pct={rss_trend:+.1f}")
    print(f"fds: first_minute_after_warmup={mean(first, 2):.1f} last_minute={mean(last, 2):.1f} "
          f"min={min(r[2] for r in after)} max={max(r[2] for r in after)} trend_pct={fd_trend:+.1f} "
          f"before_load={rows[0][2]} idle_after_load={idle_fds}")
    print(f"children: max={max(r[3] for r in rows)} idle_after_load={idle_children} (idle count: 0)")
    ok = abs(rss_trend) <= 5 and abs(fd_trend) <= 5 and idle_children == 0
    print("verdict=" + ("PASS" if ok else "FAIL")
          + " (RSS and fd trends within 5% after warm-up, children back to 0)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
