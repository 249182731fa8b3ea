"""Cancellation across protocol eras (docs/ERA-BRIDGING.md, docs/BRIDGE.md).

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
import pytest
from conftest import _free_port, _mcpgate_bin, _start_gateway, _stop_gateway, _toml_str
from mcp.client.stdio import StdioServerParameters, stdio_client
from support import LEGACY, MODERN, Gateway, connect, ok_text

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).resolve().parent / "cancel_server.py"


@dataclass
class Upstream:
    url: str
    proc: subprocess.Popen[bytes]

    def state(self) -> dict[str, list[str]]:
        with urllib.request.urlopen(self.url.replace("/mcp", "/state"), timeout=5) as r:
            return json.loads(r.read())


def _serve(root: Path, flag: str) -> Upstream:
    port = _free_port()
    log_path = root / f"cancel-server-{port}.log"
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
            pytest.fail(f"cancel_server.py did not listen\n{log_path.read_text()[-3000:]}", pytrace=False)
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
