"""What crosses protocol eras (docs/ERA-BRIDGING.md, docs/BRIDGE.md).

## Cancellation

A session client cancels with `notifications/cancelled`; a 2026-07-28 client
over HTTP cancels by closing its request stream (over stdio it still sends the
notification). Wherever mcpgate stands between two eras, the cancellation must
reach the upstream in the upstream's own way. `cancel_server.py` (the Python
SDK's server) records each `hold` call whose handler the SDK cancelled; each
case starts one, waits for its progress, cancels it in the client, and then
expects the server to report it cancelled:

- through the gateway: a session client against a 2026-07-28-only upstream, a
  2026-07-28 client against a session-only upstream, and a 2026-07-28 client
  against a 2026-07-28 upstream (native pass-through);
- through `mcpgate bridge` with the SDK's stdio client: the same three pairs.

## Resource subscriptions

A session client subscribes with `resources/subscribe` and gets
`notifications/resources/updated`; a 2026-07-28 server has no
`resources/subscribe` and sends updates on a `subscriptions/listen` stream.
A session client of the gateway (and a handshake app of the bridge) against
the 2026-07-28-only upstream subscribes to `note://one`, sees the update that
`touch` causes, unsubscribes, and sees no update after that.

## The era found out again

An upstream that spoke 2026-07-28 is restarted, on the same port, as a server
of the session era only: the gateway's cached `server/discover` answer must
not outlive it. Its first refusal makes the gateway ask again, and the
2026-07-28 client's next request reaches it through a session; a session
client bridged to it meanwhile gets 404 and its new session is a plain one.

## A cut answer stream

A 2026-07-28 app over the bridge to a session-era server that ends its answer
streams early (`polling_server.py`, 2025-11-25 SSE polling): the bridge, which
holds the session for the app, comes back with `Last-Event-ID` and the app
gets the whole answer.

## `Mcp-Param-*` toward a session-era upstream

A 2026-07-28 client's `Mcp-Param-*` headers are checked by the gateway against
the arguments (as the upstream, which knows no such headers, cannot) once it
has relayed the tool's listing, and are not sent on.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import mcp.types as types
import pytest
from conftest import _free_port, _mcpgate_bin, _start_gateway, _stop_gateway, _toml_str
from mcp.client.stdio import StdioServerParameters, stdio_client
from support import LEGACY, MODERN, Gateway, connect, ok_text

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).resolve().parent / "era_server.py"


@dataclass
class Upstream:
    url: str
    proc: subprocess.Popen[bytes]

    def state(self) -> dict[str, list[str]]:
        with urllib.request.urlopen(self.url.replace("/mcp", "/state"), timeout=5) as r:
            return json.loads(r.read())


def _serve(root: Path, flag: str, port: int | None = None) -> Upstream:
    port = port or _free_port()
    log_path = root / f"era-server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(port), flag],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return Upstream(f"http://127.0.0.1:{port}/mcp", proc)
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"era_server.py did not listen\n{log_path.read_text()[-3000:]}", pytrace=False)
        time.sleep(0.1)


@dataclass
class World:
    gw: Gateway
    upstreams: dict[str, Upstream]
    home: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mcpgate-cancel")
    ups = {"only": _serve(root, "--modern-only"), "old": _serve(root, "--handshake-only")}
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(root / "gateway-data")}

[auth]
mode = "disabled"

[[upstream]]
name = "only"
url = {_toml_str(ups["only"].url)}

[[upstream]]
name = "old"
url = {_toml_str(ups["old"].url)}
"""
    try:
        gw, log = _start_gateway(_mcpgate_bin(), root, config)
        yield World(gw, ups, root)
        _stop_gateway(gw, log)
    finally:
        for u in ups.values():
            u.proc.terminate()
            u.proc.wait(10)


def _target(world: World, via: str, upstream: str) -> Any:
    if via == "gateway":
        return world.gw.url(upstream)
    return stdio_client(
        StdioServerParameters(
            command=str(_mcpgate_bin()),
            args=["bridge", world.upstreams[upstream].url],
            env={"MCPGATE_HOME": str(world.home / "client"), "MCPGATE_LOG": "info"},
        )
    )


CASES = [
    # (via, the client's era, the upstream)
    ("gateway", LEGACY, "only"),
    ("gateway", MODERN, "old"),
    ("gateway", MODERN, "only"),
    ("bridge", LEGACY, "only"),
    ("bridge", MODERN, "old"),
    ("bridge", MODERN, "only"),
]


@pytest.mark.parametrize(("via", "mode", "upstream"), CASES)
async def test_a_cancelled_call_is_cancelled_upstream(world: World, via: str, mode: str, upstream: str) -> None:
    server = world.upstreams[upstream]
    tag = f"{via}-{mode}-{upstream}-{uuid.uuid4().hex[:8]}"
    progressed = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progressed.set()

    async with connect(_target(world, via, upstream), mode) as client:
        with anyio.move_on_after(20) as waited:
            async with anyio.create_task_group() as tg:

                async def held() -> None:
                    await client.call_tool("hold", {"tag": tag}, progress_callback=on_progress)

                tg.start_soon(held)
                await progressed.wait()
                # The SDK cancels in its era's way: `notifications/cancelled`
                # in a session and over stdio, a closed request over HTTP.
                tg.cancel_scope.cancel()
        assert not waited.cancelled_caught, "hold never reported progress"
        assert tag in server.state()["started"]
        deadline = time.monotonic() + 10
        while tag not in server.state()["cancelled"]:
            assert time.monotonic() < deadline, f"the upstream never saw {tag} cancelled: {server.state()}"
            await anyio.sleep(0.1)
        # The connection stays usable.
        assert ok_text(await client.call_tool("echo", {"text": "after"})) == "after"


@pytest.mark.parametrize("via", ["gateway", "bridge"])
@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_a_session_client_follows_a_resource_of_a_2026_only_upstream(world: World, via: str) -> None:
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    async def updated(n: int) -> bool:
        with anyio.move_on_after(10):
            while len(updates) < n:
                await anyio.sleep(0.05)
        return len(updates) >= n

    async with connect(_target(world, via, "only"), LEGACY, message_handler=on_message) as client:
        await client.subscribe_resource("note://one")
        assert ok_text(await client.call_tool("touch", {"text": "second"})) == "touched"
        assert await updated(1), "no notifications/resources/updated reached the client"
        assert updates == ["note://one"]
        read = await client.read_resource("note://one")
        assert [c.text for c in read.contents if isinstance(c, types.TextResourceContents)] == ["second"]
        await client.unsubscribe_resource("note://one")
        assert ok_text(await client.call_tool("touch", {"text": "third"})) == "touched"
        await anyio.sleep(1)
        assert updates == ["note://one"], "an update arrived after unsubscribing"


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_the_bridge_reopens_a_listen_stream_the_server_ended(world: World, tmp_path: Path) -> None:
    """A handshake app subscribed through the bridge to a 2026-07-28-only server: when
    the server ends the `subscriptions/listen` stream, the bridge opens it again."""
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    errlog = tmp_path / "bridge.log"
    params = StdioServerParameters(
        command=str(_mcpgate_bin()),
        args=["bridge", world.upstreams["only"].url],
        env={"MCPGATE_HOME": str(world.home / "client"), "MCPGATE_LOG": "info"},
    )
    with open(errlog, "w") as err:
        async with connect(stdio_client(params, errlog=err), LEGACY, message_handler=on_message) as client:
            await client.subscribe_resource("note://one")
            assert ok_text(await client.call_tool("end_listens", {})) == "ended"
            # Updates published before the stream is open again are lost (no
            # replay); touch until one arrives.
            with anyio.move_on_after(15):
                while not updates:
                    assert ok_text(await client.call_tool("touch", {"text": "again"})) == "touched"
                    await anyio.sleep(0.5)
            assert updates and set(updates) == {"note://one"}, errlog.read_text()
            await client.unsubscribe_resource("note://one")
    text = errlog.read_text()
    assert "the server ended the subscriptions/listen stream; reopening it" in text, text
    assert "the subscriptions/listen stream is open again" in text, text


async def test_a_2026_app_listens_through_the_bridge_to_a_session_server(world: World) -> None:
    """The bridge turns the app's `subscriptions/listen` into `resources/subscribe`
    on its own session, and ending the listen into `resources/unsubscribe`."""
    server = world.upstreams["old"]
    async with connect(_target(world, "bridge", "old"), MODERN) as client:
        async with client.listen(resource_subscriptions=["note://one"]) as sub:
            assert sub.honored.resource_subscriptions == ["note://one"], sub.honored
            assert server.state()["subscribers"] == {"note://one": 1}
            assert ok_text(await client.call_tool("touch", {"text": "listened"})) == "touched"
            with anyio.fail_after(10):
                event = await sub.__anext__()
            assert getattr(event, "uri", None) == "note://one", event
        deadline = time.monotonic() + 10
        while server.state()["subscribers"]:
            assert time.monotonic() < deadline, f"the bridge never unsubscribed: {server.state()}"
            await anyio.sleep(0.1)
        # The connection stays usable.
        assert ok_text(await client.call_tool("echo", {"text": "after"})) == "after"


async def test_a_parked_call_is_cancelled_by_the_app(world: World, tmp_path: Path) -> None:
    """A 2026-07-28 app (raw JSON lines on the bridge's stdin, as the SDK's client
    answers `input_required` inside its own driver and sends no cancellation for
    it) gets `input_required` for a call whose session-era server asked a question,
    then cancels the call by its id: the server sees it cancelled, the call gets no
    answer, and a retry with its `requestState` finds nothing."""
    server = world.upstreams["old"]
    tag = f"parked-{uuid.uuid4().hex[:8]}"
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    }
    errlog = tmp_path / "bridge.log"
    with open(errlog, "w") as err:
        proc = await anyio.open_process(
            [str(_mcpgate_bin()), "bridge", server.url],
            env={"MCPGATE_HOME": str(world.home / "client"), "MCPGATE_LOG": "info"},
            stderr=err,
        )
    assert proc.stdin is not None and proc.stdout is not None
    buffered = b""

    async def send(msg: dict[str, Any]) -> None:
        assert proc.stdin is not None
        await proc.stdin.send((json.dumps(msg) + "\n").encode())

    async def receive(seconds: float) -> dict[str, Any] | None:
        nonlocal buffered
        assert proc.stdout is not None
        with anyio.move_on_after(seconds):
            while b"\n" not in buffered:
                buffered += await proc.stdout.receive()
            line, buffered = buffered.split(b"\n", 1)
            return json.loads(line)
        return None

    try:
        call = {"name": "ask", "arguments": {"tag": tag}, "_meta": meta}
        await send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
        first = await receive(20)
        assert first is not None and first.get("id") == 1, first
        result = first["result"]
        assert result["resultType"] == "input_required", first
        await send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": "gave up"}})
        deadline = time.monotonic() + 10
        while tag not in server.state()["cancelled"]:
            assert time.monotonic() < deadline, f"the server never saw {tag} cancelled: {server.state()}"
            await anyio.sleep(0.1)
        answers = {k: {"action": "accept", "content": {"text": "late"}} for k in result["inputRequests"]}
        retry = {**call, "inputResponses": answers, "requestState": result["requestState"]}
        await send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": retry})
        second = await receive(10)
        assert second is not None and second.get("id") == 2, second
        assert "requestState is unknown or expired" in second["error"]["message"], second
        assert await receive(1) is None, "the cancelled call was answered"
    finally:
        await proc.stdin.aclose()
        with anyio.move_on_after(10):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
    assert "the app cancelled a request: passing notifications/cancelled to the server" in errlog.read_text()


async def _modern_post(gw: Gateway, upstream: str, method: str, params: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
    """One 2026-07-28 POST with the routing headers; the status and the last JSON-RPC message."""
    h = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
        **headers,
    }
    if "name" in params:
        h["Mcp-Name"] = params["name"]
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(gw.url(upstream), json=body, headers=h)
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return r.status_code, json.loads(datas[-1])
    return r.status_code, r.json()


async def test_mcp_param_headers_are_checked_and_not_sent_to_a_session_upstream(world: World) -> None:
    gw = world.gw
    call = {"name": "routed", "arguments": {"region": "eu-west"}}
    status, listed = await _modern_post(gw, "old", "tools/list", {})
    assert status == 200 and "routed" in {t["name"] for t in listed["result"]["tools"]}, listed
    status, answer = await _modern_post(gw, "old", "tools/call", call, **{"Mcp-Param-Region": "eu-west"})
    assert status == 200, answer
    seen = json.loads(answer["result"]["content"][0]["text"])
    assert seen == {"region": "eu-west", "params": {}}, "Mcp-Param headers reached a session-era upstream"
    for headers in ({"Mcp-Param-Region": "us-east"}, {}):
        status, answer = await _modern_post(gw, "old", "tools/call", call, **headers)
        assert status == 400, answer
        assert answer["error"]["code"] == -32020, answer
        assert "Mcp-Param-Region" in answer["error"]["message"], answer


async def test_an_upstream_restarted_as_an_older_era_is_found_out(tmp_path: Path) -> None:
    first = _serve(tmp_path, "--modern-only")
    port = int(first.url.split(":")[2].split("/")[0])
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(tmp_path / "gateway-data")}

[auth]
mode = "disabled"

[[upstream]]
name = "flip"
url = {_toml_str(first.url)}
"""
    gw, log = _start_gateway(_mcpgate_bin(), tmp_path, config)
    upstreams = [first]
    echo = {"name": "echo", "arguments": {"text": "hi"}}
    try:
        status, answer = await _modern_post(gw, "flip", "tools/call", echo)
        assert status == 200 and answer["result"]["content"][0]["text"] == "hi", answer
        async with connect(gw.url("flip"), LEGACY) as session:
            assert ok_text(await session.call_tool("echo", {"text": "bridged"})) == "bridged"
            assert "modern=true" in gw.log_path.read_text()
            # The same port, now a server of the session era only.
            first.proc.terminate()
            first.proc.wait(10)
            upstreams.append(_serve(tmp_path, "--handshake-only", port))
            with pytest.raises(Exception):
                await session.call_tool("echo", {"text": "gone"})
        # A 2026-07-28 client: at most one refusal passed on, then a session.
        answers = [await _modern_post(gw, "flip", "tools/call", echo) for _ in range(2)]
        assert answers[-1][0] == 200 and answers[-1][1]["result"]["content"][0]["text"] == "hi", answers
        async with connect(gw.url("flip"), LEGACY) as session:
            assert ok_text(await session.call_tool("echo", {"text": "plain"})) == "plain"
        text = gw.log_path.read_text()
        assert "the upstream refused a 2026-07-28 request without answering it" in text
        assert "modern=false" in text
    finally:
        _stop_gateway(gw, log)
        for u in upstreams:
            u.proc.terminate()
            u.proc.wait(10)


async def test_the_bridge_resumes_a_cut_stream_for_a_2026_app(tmp_path: Path) -> None:
    port = _free_port()
    server = Path(__file__).resolve().parent / "polling_server.py"
    proc = subprocess.Popen([sys.executable, str(server), str(port), "--handshake-only"], stdin=subprocess.DEVNULL)
    errlog = tmp_path / "bridge.log"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "polling_server.py did not listen"
                time.sleep(0.1)
        params = StdioServerParameters(
            command=str(_mcpgate_bin()),
            args=["bridge", f"http://127.0.0.1:{port}/mcp"],
            env={"MCPGATE_HOME": str(tmp_path), "MCPGATE_LOG": "info"},
        )
        with open(errlog, "w") as err:
            async with connect(stdio_client(params, errlog=err), MODERN) as client:
                assert ok_text(await client.call_tool("poll_twice", {})) == "polled to the end"
        text = errlog.read_text()
        assert "the bridge holds a 2025-11-25 session for the app" in text, text
        assert text.count("resuming the answer stream") == 2, text
    finally:
        proc.terminate()
        proc.wait(10)
