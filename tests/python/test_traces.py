"""OpenTelemetry traces from the real binary to an OTLP/HTTP receiver in the
test (decoded with the `opentelemetry-proto` package): one span per MCP
request named after the MCP conventions, its attributes, a caller's
`traceparent` continued (from the header and from `params._meta`), the
context passed on to a stdio upstream in `params._meta` and to an HTTP
upstream in the `traceparent` header, and the request span's children:
authentication, policy, the upstream call and a credential renewal (a
`client_credentials` token from the receiver's own token endpoint).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import store
from conftest import _mcpgate_bin, _start_gateway, _stop_gateway, _toml_list, _toml_str
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOCOL = "2025-11-25"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

# A stdio MCP server that answers tools/call with the `_meta` it received.
UPSTREAM = r"""
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg or "method" not in msg:
        continue
    params = msg.get("params") or {}
    if msg["method"] == "initialize":
        result = {"protocolVersion": params.get("protocolVersion", "2025-11-25"), "capabilities": {"tools": {}},
                  "serverInfo": {"name": "meta-echo", "version": "0"}}
    elif msg["method"] == "tools/list":
        result = {"tools": [{"name": "meta", "inputSchema": {"type": "object"}}]}
    elif msg["method"] == "tools/call":
        result = {"content": [{"type": "text", "text": json.dumps(params.get("_meta") or {})}]}
    else:
        result = {}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}) + "\n")
    sys.stdout.flush()
"""


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver keeping every span it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    """OTLP at /v1/traces; also a token endpoint (/token) and a small
    Streamable HTTP MCP server (/mcp) whose one tool answers with the
    `traceparent` and `authorization` headers it received."""

    server: Receiver

    def reply_json(self, status: int, doc: dict[str, Any] | None) -> None:
        body = json.dumps(doc).encode() if doc is not None else b""
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def mcp(self, body: bytes) -> None:
        msg = json.loads(body)
        if "id" not in msg:
            self.reply_json(202, None)
            return
        params = msg.get("params") or {}
        if msg["method"] == "initialize":
            result = {"protocolVersion": params.get("protocolVersion", PROTOCOL), "capabilities": {"tools": {}},
                      "serverInfo": {"name": "header-echo", "version": "0"}}
        elif msg["method"] == "tools/call" and params.get("name") == "stuck":
            # Past the `stuck` upstream's request_timeout: the call fails.
            time.sleep(3)
            result = {}
        elif msg["method"] == "tools/call":
            seen = {"traceparent": self.headers.get("traceparent"), "authorization": self.headers.get("authorization")}
            result = {"content": [{"type": "text", "text": json.dumps(seen)}]}
        else:
            result = {}
        self.reply_json(200, {"jsonrpc": "2.0", "id": msg["id"], "result": result})

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/token":
            self.reply_json(200, {"access_token": "upstream-token-1", "token_type": "Bearer", "expires_in": 3600})
            return
        if self.path == "/mcp":
            self.mcp(body)
            return
        ok = self.path == "/v1/traces" and self.headers.get("content-type") == "application/x-protobuf"
        if ok:
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            with self.server.lock:
                for rs in req.resource_spans:
                    service = {a.key: a.value.string_value for a in rs.resource.attributes}.get("service.name")
                    for ss in rs.scope_spans:
                        for s in ss.spans:
                            attrs = {}
                            for a in s.attributes:
                                v = a.value
                                attrs[a.key] = v.string_value if v.HasField("string_value") else (
                                    v.int_value if v.HasField("int_value") else str(v)
                                )
                            self.server.spans.append(
                                {
                                    "name": s.name,
                                    "trace_id": s.trace_id.hex(),
                                    "span_id": s.span_id.hex(),
                                    "parent": s.parent_span_id.hex(),
                                    "kind": s.kind,
                                    "start": s.start_time_unix_nano,
                                    "end": s.end_time_unix_nano,
                                    "attrs": attrs,
                                    "service": service,
                                }
                            )
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if ok else 400)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


KEY: dict[str, str] = {}


def rpc(url: str, body: dict[str, Any], session: str | None = None, traceparent: str | None = None) -> httpx2.Response:
    headers = dict(HEADERS) | KEY
    if session:
        headers |= {"mcp-session-id": session, "mcp-protocol-version": PROTOCOL}
    if traceparent:
        headers["traceparent"] = traceparent
    return httpx2.post(url, json=body, headers=headers, timeout=30.0)


def result_json(r: httpx2.Response) -> dict[str, Any]:
    text = r.text
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        text = [d for d in data if d][-1]
    return json.loads(text)


def test_spans_carry_mcp_attributes_and_continue_the_callers_trace(tmp_path: Path) -> None:
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    binary = _mcpgate_bin()
    script = tmp_path / "meta_echo.py"
    script.write_text(UPSTREAM)
    demo_data = tmp_path / "demo-data"
    demo_data.mkdir()
    config = f"""\
[server]
data_dir = {_toml_str(tmp_path / "gateway-data")}

[metrics]
listen = ""

[telemetry]
otlp_endpoint = "http://127.0.0.1:{receiver.server_address[1]}"
service_name = "mcpgate-under-test"

[auth]
mode = "required"

[[upstream]]
name = "meta"
command = {_toml_list([sys.executable, script])}

[[upstream]]
name = "web"
url = "http://127.0.0.1:{receiver.server_address[1]}/mcp"
transport = "streamable-http"
[upstream.credentials]
kind = "client_credentials"
token_url = "http://127.0.0.1:{receiver.server_address[1]}/token"
client_id = "gw"
client_secret = "gw-secret"

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", demo_data])}

[[upstream]]
name = "stuck"
url = "http://127.0.0.1:{receiver.server_address[1]}/mcp"
transport = "streamable-http"
request_timeout = "1s"
"""
    data_dir = tmp_path / "gateway-data"
    made = subprocess.run(
        [binary, "keys", "create", "--data-dir", data_dir, "--name", "tracer", "--scopes", "*"],
        capture_output=True,
        text=True,
        check=True,
        env=store.apply(dict(os.environ), data_dir),
    )
    KEY["authorization"] = f"Bearer {made.stdout.strip()}"
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    try:
        gw, log = _start_gateway(binary, tmp_path, config)
    finally:
        del os.environ["OTEL_BSP_SCHEDULE_DELAY"]
    header_trace, header_parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    meta_trace, meta_parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        url = gw.url("meta")
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
        }
        r = rpc(url, init)
        assert r.status_code == 200, r.text
        session = r.headers["mcp-session-id"]
        assert rpc(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session).status_code == 202
        # The caller's context in the header.
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "meta", "arguments": {}}}
        r = rpc(url, call, session, traceparent=f"00-{header_trace}-{header_parent}-01")
        assert r.status_code == 200, r.text
        upstream_meta = json.loads(result_json(r)["result"]["content"][0]["text"])
        # The caller's context in params._meta.
        call = {
            "jsonrpc": "2.0",
            "id": "eight",
            "method": "tools/call",
            "params": {"name": "meta", "arguments": {}, "_meta": {"traceparent": f"00-{meta_trace}-{meta_parent}-01"}},
        }
        r = rpc(url, call, session)
        assert r.status_code == 200, r.text
        upstream_meta2 = json.loads(result_json(r)["result"]["content"][0]["text"])
        # An HTTP upstream with a client_credentials token.
        web = gw.url("web")
        r = rpc(web, init)
        assert r.status_code == 200, r.text
        web_session = r.headers["mcp-session-id"]
        assert rpc(web, {"jsonrpc": "2.0", "method": "notifications/initialized"}, web_session).status_code == 202
        call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
        r = rpc(web, call, web_session)
        assert r.status_code == 200, r.text
        web_headers = json.loads(result_json(r)["result"]["content"][0]["text"])
        # A stateless (2026-07-28) call the upstream does not answer in time.
        stuck = {
            "jsonrpc": "2.0",
            "id": 10,
            "method": "tools/call",
            "params": {
                "name": "stuck",
                "arguments": {},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"},
                },
            },
        }
        modern = dict(HEADERS) | KEY | {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "stuck"}
        r = httpx2.post(gw.url("stuck"), json=stuck, headers=modern, timeout=30.0)
        assert "error" in result_json(r), r.text
    finally:
        # A clean stop exports what is still queued.
        _stop_gateway(gw, log)
        receiver.shutdown()

    spans = receiver.spans
    calls = [
        s
        for s in spans
        if s["attrs"].get("mcp.method.name") == "tools/call" and s["kind"] == 2 and s["attrs"].get("mcpgate.upstream") != "stuck"
    ]
    assert len(calls) == 3, json.dumps(spans, indent=1)
    by_id = {s["attrs"].get("jsonrpc.request.id"): s for s in calls}
    first, second, third = by_id["7"], by_id["eight"], by_id["9"]
    for s in (first, second):
        assert s["name"] == "tools/call meta", s
        assert s["attrs"]["gen_ai.tool.name"] == "meta", s
        assert s["attrs"]["mcp.session.id"] == session, s
        assert s["attrs"]["http.route"] == "/mcp/{name}", s
        assert s["service"] == "mcpgate-under-test", s
        assert s["kind"] == 2, s  # SPAN_KIND_SERVER
    # Continued from the header, and from params._meta.
    assert (first["trace_id"], first["parent"]) == (header_trace, header_parent), first
    assert (second["trace_id"], second["parent"]) == (meta_trace, meta_parent), second
    # The upstream got the gateway's span as its parent.
    assert upstream_meta["traceparent"] == f"00-{header_trace}-{first['span_id']}-01", upstream_meta
    assert upstream_meta2["traceparent"] == f"00-{meta_trace}-{second['span_id']}-01", upstream_meta2
    # initialize has its span too, with the new session's id.
    inits = [
        s
        for s in spans
        if s["attrs"].get("mcp.method.name") == "initialize" and s["attrs"].get("mcpgate.upstream") == "meta" and s["kind"] == 2
    ]
    assert len(inits) == 1 and inits[0]["attrs"]["mcp.session.id"] == session, inits

    def children(parent: dict[str, Any]) -> dict[str, dict[str, Any]]:
        kids = {s["name"]: s for s in spans if s["parent"] == parent["span_id"]}
        for k in kids.values():
            # In the parent's trace and inside its time.
            assert k["trace_id"] == parent["trace_id"], (k, parent)
            assert parent["start"] <= k["start"] <= k["end"] <= parent["end"], (k, parent)
        return kids

    # Each call's steps are children of its span, whichever way the caller's
    # context came (a child made early must not freeze the parent).
    for s in (first, second):
        kids = children(s)
        assert {"authenticate", "authorize", "upstream call"} <= kids.keys(), (s, kids)
        assert kids["authenticate"]["attrs"]["mcpgate.auth.verifier"] == "api_key", kids
        assert kids["authorize"]["attrs"]["mcpgate.policy.reason"] == "allowed", kids
        up = kids["upstream call"]
        assert up["kind"] == 3, up  # SPAN_KIND_CLIENT
        assert up["attrs"]["mcp.method.name"] == "tools/call", up
        assert up["attrs"]["gen_ai.tool.name"] == "meta", up
        assert up["attrs"]["mcpgate.upstream"] == "meta", up
        assert up["attrs"]["mcpgate.outcome"] == "ok", up
    # The HTTP upstream got the call's span in its traceparent header, and the
    # token the gateway obtained while initializing (a renewal span there).
    assert web_headers["traceparent"] == f"00-{third['trace_id']}-{third['span_id']}-01", (web_headers, third)
    assert web_headers["authorization"] == "Bearer upstream-token-1", web_headers
    web_init = [
        s
        for s in spans
        if s["attrs"].get("mcp.method.name") == "initialize" and s["attrs"].get("mcpgate.upstream") == "web" and s["kind"] == 2
    ]
    assert len(web_init) == 1, json.dumps(spans, indent=1)
    renewal = children(web_init[0])["credential renewal"]
    assert renewal["kind"] == 3, renewal
    assert renewal["attrs"]["mcpgate.credential.kind"] == "client_credentials", renewal
    assert renewal["attrs"]["mcpgate.upstream"] == "web", renewal
    assert renewal["attrs"]["mcpgate.outcome"] == "ok", renewal
    assert "upstream-token-1" not in json.dumps(spans), "a token reached a span"
    # The stateless call's upstream step records that it failed.
    stuck_calls = [
        s
        for s in spans
        if s["attrs"].get("mcpgate.upstream") == "stuck" and s["attrs"].get("mcp.method.name") == "tools/call" and s["kind"] == 2
    ]
    assert len(stuck_calls) == 1, json.dumps(spans, indent=1)
    up = children(stuck_calls[0])["upstream call"]
    assert up["attrs"]["mcpgate.outcome"] == "failed", up
