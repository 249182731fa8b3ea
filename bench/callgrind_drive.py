#!/usr/bin/env python3
"""Drives a fixed number of sequential `tools/call echo` requests for bench/callgrind.sh.

  callgrind_drive.py URL CREDENTIAL N READY_FILE GO_FILE [INIT_URL]

Opens one Streamable HTTP session (with `Authorization: Bearer CREDENTIAL` unless it is empty;
through INIT_URL when given, another replica, so that the one at URL continues a session it did
not open),
sends 50 warm-up calls on one keep-alive connection, writes READY_FILE, waits for GO_FILE (the
script turns callgrind's collection on in between), sends N calls, and exits 0 if every answer
carried the echoed text. The tool called is `echo`, or `$CG_TOOL` (a virtual server shows
it prefixed). With `CG_STATELESS=1` no session is opened: every call is a 2026-07-28 stateless
request (`_meta` with the protocol version, the `Mcp-Method`/`Mcp-Name` headers), as
bench/tools_call.lua sends them. Standard library only; sequential, so the work the gateway does per
request is the same from run to run.
"""

import http.client
import json
import os
import sys
import time
import urllib.parse

PROTOCOL = "2025-11-25"
STATELESS = "2026-07-28"


def main():
    url, cred, n, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    init_url = sys.argv[6] if len(sys.argv) > 6 else url
    u = urllib.parse.urlsplit(url)
    i = urllib.parse.urlsplit(init_url)
    # Valgrind slows the gateway ~50x: a generous timeout.
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    init_conn = conn if init_url == url else http.client.HTTPConnection(i.hostname, i.port, timeout=300)
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if cred:
        base["Authorization"] = "Bearer " + cred

    def post(body, sid=None, via=None):
        c, path = (init_conn, i.path) if via == "init" else (conn, u.path)
        headers = dict(base)
        if sid:
            headers["Mcp-Session-Id"] = sid
            headers["MCP-Protocol-Version"] = PROTOCOL
        c.request("POST", path, json.dumps(body), headers)
        resp = c.getresponse()
        return resp.status, resp.getheader("Mcp-Session-Id"), resp.read()

    def open_session():
        status, sid, body = post({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                       "clientInfo": {"name": "callgrind-bench", "version": "0"}},
        }, via="init")
        if status != 200 or not sid:
            sys.exit(f"initialize: HTTP {status}: {body[:300]!r}")
        status, _, _ = post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid, via="init")
        if status not in (200, 202):
            sys.exit(f"notifications/initialized: HTTP {status}")
        return sid

    tool = os.environ.get("CG_TOOL", "echo")
    stateless = os.environ.get("CG_STATELESS") == "1"
    if stateless:
        base.update({"MCP-Protocol-Version": STATELESS, "Mcp-Method": "tools/call", "Mcp-Name": tool})
        sid = None
    else:
        sid = open_session()

    def calls(count, first_id):
        for i in range(count):
            params = {"name": tool, "arguments": {"text": "callgrind"}}
            if stateless:
                params["_meta"] = {
                    "io.modelcontextprotocol/protocolVersion": STATELESS,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "callgrind-bench", "version": "0"},
                }
            status, _, body = post({
                "jsonrpc": "2.0", "id": first_id + i, "method": "tools/call", "params": params,
            }, sid)
            if status != 200 or b"callgrind" not in body:
                sys.exit(f"tools/call {first_id + i}: HTTP {status}: {body[:300]!r}")

    calls(50, 10)
    with open(ready, "w") as f:
        f.write("ready\n")
    while not os.path.exists(go):
        time.sleep(0.05)
    calls(n, 1000)


if __name__ == "__main__":
    main()
