"""SSE polling (MCP 2025-11-25) by an upstream: it ends a POST's answer stream
before the response, after an event with an id and a `retry:` interval, and
expects its client to come back with a GET carrying `Last-Event-ID`. The
gateway is that client: its own client sees one whole answer stream, with
every progress notification and the result, in either era.

The upstream is tests/python/polling_server.py (the Python SDK's server with an
event store, ending the stream twice per call). A second, hand-written upstream
ends its stream without ever sending an event id: nothing can resume that, and
the client's error says so.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import _free_port, _mcpgate_bin, _start_gateway, _stop_gateway, _toml_str
from mcp.shared.exceptions import MCPError
from support import LEGACY, MODERN, Gateway, connect, ok_text

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).resolve().parent / "polling_server.py"


@pytest.fixture(scope="module")
def polling_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """polling_server.py on a free loopback port; yields its MCP URL."""
    root = tmp_path_factory.mktemp("polling-upstream")
    port = _free_port()
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(port)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"polling_server.py did not listen\n{log_path.read_text()[-3000:]}", pytrace=False)
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            proc.terminate()
            proc.wait(10)


class _NoIdUpstream(BaseHTTPRequestHandler):
    """A Streamable HTTP upstream that answers tools/call with a progress
    notification in an SSE event without an id, then ends the stream: the
    polling the spec allows only after an event id, done without one."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _json(self, status: int, body: object | None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Mcp-Session-Id", "no-id-session")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._json(405, None)

    def do_DELETE(self) -> None:
        self._json(200, None)

    def do_POST(self) -> None:
        msg = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method, rid = msg.get("method"), msg.get("id")
        if rid is None:
            self._json(202, None)
        elif method == "initialize":
            result = {
                "protocolVersion": msg["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "no-id", "version": "0"},
            }
            self._json(200, {"jsonrpc": "2.0", "id": rid, "result": result})
        elif method == "tools/list":
            tool = {"name": "cut_short", "inputSchema": {"type": "object"}}
            self._json(200, {"jsonrpc": "2.0", "id": rid, "result": {"tools": [tool]}})
        elif method == "tools/call":
            token = msg["params"].get("_meta", {}).get("progressToken", "none")
            note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}}
            body = f"retry: 100\ndata: {json.dumps(note)}\n\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._json(200, {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no such method"}})


@pytest.fixture(scope="module")
def no_id_upstream() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NoIdUpstream)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/mcp"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def polling_gateway(
    tmp_path_factory: pytest.TempPathFactory, polling_upstream: str, no_id_upstream: str
) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("mcpgate-polling")
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(root / "gateway-data")}

[auth]
mode = "disabled"

[[upstream]]
name = "poll"
url = {_toml_str(polling_upstream)}
transport = "streamable-http"

[[upstream]]
name = "noid"
url = {_toml_str(no_id_upstream)}
transport = "streamable-http"
"""
    gw, log = _start_gateway(_mcpgate_bin(), root, config)
    yield gw
    _stop_gateway(gw, log)


@pytest.mark.parametrize("mode", [LEGACY, MODERN])
async def test_an_answer_stream_the_upstream_ends_early_continues_to_the_result(
    polling_gateway: Gateway, mode: str
) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    async with connect(polling_gateway.url("poll"), mode) as client:
        result = await client.call_tool("poll_twice", {}, progress_callback=progress)
    assert ok_text(result) == "polled to the end"
    # Each stage came on another upstream connection: the POST, then two GETs.
    assert seen == [(1, 3, "started"), (2, 3, "halfway"), (3, 3, "finishing")]


async def test_an_answer_stream_ended_without_an_event_id_is_an_error_that_says_why(
    polling_gateway: Gateway,
) -> None:
    async with connect(polling_gateway.url("noid"), LEGACY) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("cut_short", {}, progress_callback=_ignore)
    assert "without an event id to resume it from" in str(raised.value)


async def _ignore(done: float, total: float | None, message: str | None) -> None:
    """Asks for progress, so the upstream's notification has a token to name."""
