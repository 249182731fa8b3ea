"""`mcpgate bridge`: the Python SDK's stdio client starts the real binary,
which relays to a remote `mcpgate serve --demo` (authentication on, the
printed API key given through `--header-file` or `--bearer-env`):

- initialize, tools/list, tools/call; a server→client elicitation and
  sampling request answered by the stdio client; progress; cancellation;
- the legacy HTTP+SSE fallback (the gateway's `/mcp/demo/sse` front answers
  the first POST with 405) and `--transport` forcing either transport;
- 401 with a wrong key or no credential: a JSON-RPC error saying what to do;
- a tiny loopback proxy that cuts the first SSE answer stream after one event:
  the bridge resumes with `Last-Event-ID`; the proxy also sees the GET stream
  and the `DELETE` on exit;
- `mcpgate config claude|cursor|vscode` prints JSON of each app's shape.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from conftest import _free_port, _mcpgate_bin, _node, _stop_gateway
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from support import DEMO_TOOLS, FIXED_SUMMARY, LEGACY, MODERN, Asked, Gateway, connect, ok_text, structured
from test_auth import _serve, mcp_error

pytestmark = pytest.mark.anyio


@dataclass
class Remote:
    gw: Gateway
    key: str
    header_file: Path
    home: Path

    @property
    def url(self) -> str:
        return f"{self.gw.base}/mcp"


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    """`mcpgate serve --demo` with authentication on; its API key in a 0600 header file."""
    root = tmp_path_factory.mktemp("bridge-remote")
    gw, log = _serve(["--demo", "--listen", "127.0.0.1:0", "--data-dir", str(root / "data")], root, "Stop with Ctrl-C")
    try:
        lines = gw.stdout_lines
        at = next(i for i, line in enumerate(lines) if "Your demo API key" in line)
        key = lines[at + 1].strip()
        header_file = root / "headers.txt"
        header_file.write_text(f"# the demo key\nAuthorization: Bearer {key}\n")
        header_file.chmod(0o600)
        home = root / "client-home"
        home.mkdir()
        yield Remote(gw=gw, key=key, header_file=header_file, home=home)
    finally:
        _stop_gateway(gw, log)


def bridge(remote: Remote, url: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """The stdio transport that starts `mcpgate bridge url args…`."""
    return stdio_client(
        StdioServerParameters(
            command=str(_mcpgate_bin()),
            args=["bridge", url, *args],
            # Client state (sign-ins) stays in the test's directory.
            env={"MCPGATE_HOME": str(remote.home), "MCPGATE_LOG": "info", **(env or {})},
        )
    )


@asynccontextmanager
async def bridged(remote: Remote, mode: str = LEGACY, asked: Asked | None = None, *args: str) -> AsyncIterator[Client]:
    transport = bridge(remote, remote.url, "--header-file", str(remote.header_file), *args)
    async with connect(transport, mode, asked) as client:
        yield client


@pytest.fixture(params=[LEGACY, MODERN])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


# ---- the relay ------------------------------------------------------------------


async def test_initialize_list_and_call(remote: Remote, mode: str) -> None:
    async with bridged(remote, mode) as client:
        if mode == LEGACY:  # 2026-07-28 results may omit serverInfo
            assert client.server_info is not None and client.server_info.name == "mcpgate-demo"
        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == DEMO_TOOLS
        me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "demo-user", me
        text = f"through the bridge {uuid.uuid4()} \u00e9\u00e8 \n two lines"
        assert ok_text(await client.call_tool("echo", {"text": text})) == text


async def test_elicitation_and_sampling_reach_the_stdio_client(remote: Remote, mode: str) -> None:
    asked = Asked()
    async with bridged(remote, mode, asked) as client:
        action = f"bridge action {uuid.uuid4()}"
        reply = structured(await client.call_tool("confirm_action", {"action": action}))
        assert reply == {"action": "accept", "confirmed": True, "outcome": "confirmed: " + action}
        assert ok_text(await client.call_tool("summarize", {"text": "a text to summarize"})) == FIXED_SUMMARY
    assert len(asked.elicitations) == 1 and action in asked.elicitations[0].message
    assert len(asked.samplings) == 1


async def test_progress_notifications(remote: Remote, mode: str) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with bridged(remote, mode) as client:
        result = await client.call_tool("slow_count", {"steps": 3, "delay_ms": 30}, progress_callback=on_progress)
        assert structured(result) == {"completed": 3, "requested": 3, "reported_progress": True}
    assert [p for p, _ in seen] == [1, 2, 3], seen
    assert all(t == 3 for _, t in seen)


async def test_cancellation_leaves_the_bridge_usable(remote: Remote) -> None:
    progressed = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progressed.set()

    async with bridged(remote) as client:
        with anyio.move_on_after(20) as scope:
            async with anyio.create_task_group() as tg:

                async def long_call() -> None:
                    await client.call_tool("slow_count", {"steps": 100, "delay_ms": 200}, progress_callback=on_progress)

                tg.start_soon(long_call)
                await progressed.wait()
                # Cancelling the call makes the SDK send notifications/cancelled.
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught, "slow_count never reported progress"
        assert ok_text(await client.call_tool("echo", {"text": "after cancel"})) == "after cancel"


async def test_extra_header_and_bearer_env(remote: Remote) -> None:
    # The key as X-API-Key on the command line…
    transport = bridge(remote, remote.url, "--header", f"X-API-Key: {remote.key}")
    async with connect(transport, LEGACY) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == "demo-user"
    # …and as a bearer token from an environment variable.
    transport = bridge(remote, remote.url, "--bearer-env", "DEMO_KEY", env={"DEMO_KEY": remote.key})
    async with connect(transport, LEGACY) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == "demo-user"


# ---- transports ------------------------------------------------------------------


@pytest.mark.parametrize("forced", [None, "sse"])
async def test_legacy_sse_remote(remote: Remote, forced: str | None) -> None:
    """The gateway's legacy front: POST to it answers 405, so auto falls back."""
    args = ["--header-file", str(remote.header_file)]
    if forced:
        args += ["--transport", forced]
    asked = Asked()
    async with connect(bridge(remote, remote.gw.sse_url("demo"), *args), LEGACY, asked) as client:
        assert {t.name for t in (await client.list_tools()).tools} == DEMO_TOOLS
        assert ok_text(await client.call_tool("echo", {"text": "legacy"})) == "legacy"
        action = "legacy elicitation"
        reply = structured(await client.call_tool("confirm_action", {"action": action}))
        assert reply["confirmed"] is True
    assert len(asked.elicitations) == 1


async def test_forcing_streamable_on_a_legacy_endpoint_fails_clearly(remote: Remote) -> None:
    transport = bridge(
        remote, remote.gw.sse_url("demo"), "--header-file", str(remote.header_file), "--transport", "streamable"
    )
    with mcp_error() as errors:
        async with connect(transport, LEGACY) as client:
            await client.list_tools()
    assert "HTTP 405" in str(errors[0]), errors


async def test_forcing_sse_on_a_streamable_endpoint_fails_clearly(remote: Remote) -> None:
    transport = bridge(remote, remote.url, "--header-file", str(remote.header_file), "--transport", "sse")
    with mcp_error() as errors:
        async with connect(transport, LEGACY) as client:
            await client.list_tools()
    assert "legacy HTTP+SSE" in str(errors[0]), errors


# ---- authorization ---------------------------------------------------------------


async def test_wrong_key_is_a_clear_json_rpc_error(remote: Remote) -> None:
    transport = bridge(remote, remote.url, "--bearer-env", "DEMO_KEY", env={"DEMO_KEY": "mcpg_wrong"})
    with mcp_error() as errors:
        async with connect(transport, LEGACY) as client:
            await client.list_tools()
    message = str(errors[0])
    assert "HTTP 401" in message and "mcpgate login" in message, message
    assert "mcpg_wrong" not in message


class _Always401(BaseHTTPRequestHandler):
    """A resource server that wants a token and names no metadata."""

    def _refuse(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer realm="test"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_DELETE = _refuse  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


async def test_no_credential_is_a_clear_json_rpc_error(remote: Remote) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Always401)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
        with mcp_error() as errors:
            async with connect(bridge(remote, url, "--non-interactive"), LEGACY) as client:
                await client.list_tools()
        message = str(errors[0])
        assert url in message, message
    finally:
        server.shutdown()
        server.server_close()


# ---- resuming a cut stream -------------------------------------------------------


@dataclass
class Proxy:
    """Forwards to the gateway; cuts the first SSE answer after its first event with an id."""

    upstream: str
    cut: bool = True
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: each body ends when the connection closes.
            protocol_version = "HTTP/1.0"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                with proxy.lock:
                    proxy.seen.append((self.command, {k.lower(): v for k, v in headers.items()}))
                target = urlsplit(proxy.upstream)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Connection", "close")
                self.end_headers()
                is_sse = (resp.getheader("Content-Type") or "").startswith("text/event-stream")
                cut_this = False
                with proxy.lock:
                    if proxy.cut and is_sse and self.command == "POST" and body and b'"slow_count"' in body:
                        proxy.cut = False
                        cut_this = True
                event_has_id = False
                while True:
                    line = resp.readline()
                    if not line:
                        break
                    self.wfile.write(line)
                    self.wfile.flush()
                    if line.startswith(b"id:"):
                        event_has_id = True
                    if line in (b"\n", b"\r\n") and cut_this and event_has_id:
                        break  # drop the rest of this stream
                conn.close()

            do_GET = do_POST = do_DELETE = _forward  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


async def test_cut_stream_is_resumed_with_last_event_id(remote: Remote) -> None:
    proxy = Proxy(upstream=remote.gw.base)
    server = ThreadingHTTPServer(("127.0.0.1", 0), proxy.handler())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen_progress: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen_progress.append(progress)

    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
        transport = bridge(remote, url, "--header-file", str(remote.header_file))
        async with connect(transport, LEGACY) as client:
            result = await client.call_tool("slow_count", {"steps": 4, "delay_ms": 150}, progress_callback=on_progress)
            assert structured(result) == {"completed": 4, "requested": 4, "reported_progress": True}
        assert not proxy.cut, "the proxy never cut a stream"
        with proxy.lock:
            seen = list(proxy.seen)
        resumes = [h for m, h in seen if m == "GET" and "last-event-id" in h]
        assert resumes, f"no GET with Last-Event-ID: {seen}"
        session = resumes[0].get("mcp-session-id")
        assert session, resumes[0]
        # The GET stream for server-initiated messages, and DELETE on exit.
        assert any(m == "GET" and "last-event-id" not in h for m, h in seen), seen
        deletes = [h for m, h in seen if m == "DELETE"]
        assert deletes and deletes[0].get("mcp-session-id") == session, seen
        assert sorted(seen_progress) == seen_progress and seen_progress[-1] == 4, seen_progress
    finally:
        server.shutdown()
        server.server_close()


# ---- mcpgate config --------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "root", "where"),
    [("claude", "mcpServers", "claude_desktop_config.json"), ("cursor", "mcpServers", ".cursor/mcp.json"), ("vscode", "servers", ".vscode/mcp.json")],
)
def test_config_snippets(remote: Remote, app: str, root: str, where: str) -> None:
    binary = _mcpgate_bin()
    out = subprocess.run(
        [str(binary), "config", app, remote.url, "--name", "demo", "--header-file", str(remote.header_file)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MCPGATE_HOME": str(remote.home)},
    )
    doc = json.loads(out.stdout)
    assert list(doc) == [root]
    server = doc[root]["demo"]
    assert server["command"] == str(binary)
    assert server["args"] == ["bridge", remote.url, "--header-file", str(remote.header_file)]
    if app == "vscode":
        assert server["type"] == "stdio"
    else:
        assert "type" not in server
    assert where in out.stderr, out.stderr
    assert remote.key not in out.stdout + out.stderr


async def test_config_snippet_runs(remote: Remote) -> None:
    """The printed command and args, started the way an app starts them, work."""
    out = subprocess.run(
        [str(_mcpgate_bin()), "config", "claude", remote.url, "--header-file", str(remote.header_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    server = next(iter(json.loads(out.stdout)["mcpServers"].values()))
    params = StdioServerParameters(command=server["command"], args=server["args"], env={"MCPGATE_HOME": str(remote.home)})
    async with connect(stdio_client(params), LEGACY) as client:
        assert ok_text(await client.call_tool("echo", {"text": "from the snippet"})) == "from the snippet"


# ---- OAuth sign-in through the bridge -----------------------------------------------


@pytest.fixture
def oauth_peer() -> Iterator[dict[str, str]]:
    """panva's oidc-provider (issuer with a path, DCR) guarding the MCP TypeScript
    SDK's server (`tests/node/oauth-peers.mjs`), which approves without a person."""
    peers = Path(__file__).resolve().parents[1] / "node"
    if not (peers / "node_modules" / "oidc-provider").exists():
        pytest.fail("run `npm ci` in tests/node (scripts/test does)", pytrace=False)
    proc = subprocess.Popen(
        [_node(), str(peers / "oauth-peers.mjs"), json.dumps({"as": "oidc", "issuerPath": "/t1", "prm": "path"})],
        cwd=peers,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready: dict[str, str] | None = None
        for line in proc.stdout:
            try:
                ready = json.loads(line)
                break
            except ValueError:
                continue
        assert ready is not None, "the OAuth peer exited before it was ready"
        yield ready
    finally:
        proc.kill()
        proc.wait(5)


def _stats(url: str) -> dict[str, int]:
    return json.loads(httpx2.get(url, timeout=10).text)


async def test_oauth_sign_in_step_up_and_reuse(remote: Remote, oauth_peer: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"MCPGATE_HOME": str(home), "MCPGATE_LOG": "info"}

    def transport() -> Any:
        return stdio_client(
            StdioServerParameters(
                command=str(_mcpgate_bin()), args=["bridge", oauth_peer["mcp"], "--non-interactive"], env=env
            )
        )

    # First run: 401 → discovery, registration, sign-in; then a 403
    # insufficient_scope → step-up to "mcp admin" and one retry.
    async with connect(transport(), LEGACY) as client:
        assert {t.name for t in (await client.list_tools()).tools} >= {"whoami", "admin_op"}
        assert ok_text(await client.call_tool("whoami", {})) == "mcp"
        assert ok_text(await client.call_tool("admin_op", {})) == "admin ok"
    after_first = _stats(oauth_peer["stats"])
    assert after_first["registrations"] == 1 and after_first["authorizations"] >= 2, after_first

    # Second run: the stored sign-in is used as is, no new authorization.
    async with connect(transport(), LEGACY) as client:
        assert "admin" in ok_text(await client.call_tool("whoami", {})).split()
    after_second = _stats(oauth_peer["stats"])
    assert after_second["authorizations"] == after_first["authorizations"], after_second
    assert after_second["registrations"] == 1

    # A scope no sign-in can get: one step-up, then a clear error, not a loop.
    with mcp_error() as errors:
        async with connect(transport(), LEGACY) as client:
            await client.call_tool("always_forbidden", {})
    assert "insufficient_scope" in str(errors[0]), errors


# ---- a legacy SSE server nobody here wrote ----------------------------------------

_PY_SSE_SERVER = """
import sys
from mcp.server.mcpserver import MCPServer

server = MCPServer("py-legacy-sse")

@server.tool()
def shout(text: str) -> str:
    # Upper-cases the text.
    return text.upper()

server.run("sse", host="127.0.0.1", port=int(sys.argv[1]))
"""


async def test_python_sdk_legacy_sse_server(remote: Remote) -> None:
    """The Python SDK's own HTTP+SSE server (2024-11-05): auto falls back to it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _PY_SSE_SERVER, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Python SSE server did not start: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.1)
        async with connect(bridge(remote, f"http://127.0.0.1:{port}/sse"), LEGACY) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["shout"]
            assert ok_text(await client.call_tool("shout", {"text": "legacy"})) == "LEGACY"
    finally:
        proc.kill()
        proc.wait(5)
