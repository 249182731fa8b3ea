#!/usr/bin/env python3
"""Opens MCP Streamable HTTP sessions for the benchmarks (standard library only).

  mcp_session.py open URL [N]   initialize N sessions (default 1), send
                                notifications/initialized on each, print the
                                Mcp-Session-Id of each on its own line
  mcp_session.py call URL SID   call the echo tool once on session SID and
                                print the text it returned (a sanity check); SID
                                `stateless`: a 2026-07-28 call without a session

Exits non-zero, with the reason on stderr, on the first failure. With BENCH_BEARER set in
the environment every request carries `Authorization: Bearer $BENCH_BEARER`.
"""

import http.client
import json
import os
import sys
import urllib.parse

PROTOCOL = "2025-11-25"
STATELESS = "2026-07-28"


class Conn:
    """One keep-alive connection to URL; reconnects if the server closes it."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http":
            sys.exit(f"mcp_session.py: only http:// URLs are supported, got {url}")
        self.host, self.port, self.path = u.hostname, u.port or 80, u.path or "/"
        self.conn = None

    def post(self, body, session=None, extra=None):
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        headers.update(extra or {})
        if os.environ.get("BENCH_BEARER"):
            headers["Authorization"] = "Bearer " + os.environ["BENCH_BEARER"]
        if session:
            headers["Mcp-Session-Id"] = session
            headers["MCP-Protocol-Version"] = PROTOCOL
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request("POST", self.path, json.dumps(body), headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheader("Mcp-Session-Id"), resp.getheader("Content-Type") or "", data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise


def json_of(content_type, data):
    """The JSON-RPC message in a JSON or single-event SSE response body."""
    text = data.decode("utf-8", "replace")
    if content_type.startswith("text/event-stream"):
        for line in text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                return json.loads(line[5:])
        raise ValueError("no data event in the SSE response")
    return json.loads(text)


def open_sessions(url, n):
    c = Conn(url)
    for i in range(n):
        status, sid, ctype, data = c.post({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "mcpgate-bench", "version": "0"},
            },
        })
        if status != 200 or not sid:
            sys.exit(f"mcp_session.py: initialize #{i + 1} on {url}: HTTP {status}, "
                     f"session id {sid!r}: {data[:300]!r}")
        status, _, _, data = c.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        if status not in (200, 202):
            sys.exit(f"mcp_session.py: notifications/initialized #{i + 1} on {url}: HTTP {status}: {data[:300]!r}")
        print(sid, flush=(n == 1))


def call(url, sid):
    c = Conn(url)
    params = {"name": "echo", "arguments": {"text": "sanity"}}
    extra = None
    if sid == "stateless":
        sid = None
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "mcpgate-bench", "version": "0"},
        }
        extra = {"MCP-Protocol-Version": STATELESS, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
    status, _, ctype, data = c.post({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}, sid, extra)
    if status != 200:
        sys.exit(f"mcp_session.py: tools/call on {url}: HTTP {status}: {data[:300]!r}")
    msg = json_of(ctype, data)
    result = msg.get("result")
    if not result or result.get("isError"):
        sys.exit(f"mcp_session.py: tools/call on {url} failed: {msg}")
    texts = [c.get("text", "") for c in result.get("content", []) if c.get("type") == "text"]
    print(f"{ctype.split(';')[0]} {' '.join(texts)}")


def main(argv):
    if len(argv) >= 3 and argv[1] == "open":
        open_sessions(argv[2], int(argv[3]) if len(argv) > 3 else 1)
    elif len(argv) == 4 and argv[1] == "call":
        call(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
