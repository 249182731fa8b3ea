"""mcpgate's own client in every era: `mcpgate call` and `mcpgate bridge`
(the real binary) against

- a server that speaks only 2026-07-28 (`client_modern_server.py`: the Python
  `mcp` SDK's native 2026-07-28 path, refusing `initialize`): `server/discover`
  first, `_meta` and `Mcp-Method`/`Mcp-Name` on every request, `input_required`
  rounds answered (`--elicit`, `--root`) and retried with `requestState`;
- a 2025-era server (`@modelcontextprotocol/server-everything` over Streamable
  HTTP), which refuses `server/discover`: `call` falls back to `initialize`,
  and answers the server's elicitation request on the session;
- the bridge serving the Python SDK's stdio client, in the handshake mode and
  in 2026-07-28 mode, over the 2026-07-28-only server: for the handshake app
  the bridge holds the handshake and turns `input_required` into elicitation,
  roots and sampling requests toward the app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from conftest import _everything_entry, _free_port, _mcpgate_bin, _node
from mcp.client import ClientRequestContext
from mcp.client.stdio import StdioServerParameters, stdio_client
from support import LEGACY, MODERN, Asked, connect, ok_text

HERE = Path(__file__).resolve().parent


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]

    def seen(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url.replace("/mcp", "/seen"), timeout=5) as r:
            return json.loads(r.read())


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start listening")


@pytest.fixture(scope="module")
def modern() -> Iterator[Server]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "client_modern_server.py"), str(port)])
    try:
        _wait_port(port, proc)
        yield Server(f"http://127.0.0.1:{port}/mcp", proc)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def everything() -> Iterator[Server]:
    port = _free_port()
    proc = subprocess.Popen(
        [_node(), str(_everything_entry()), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        yield Server(f"http://127.0.0.1:{port}/mcp", proc)
    finally:
        proc.terminate()
        proc.wait(10)


def call(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_mcpgate_bin()), "call", url, *args],
        env={**os.environ, "MCPGATE_HOME": str(tmp_path), "MCPGATE_LOG": "info"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def since(server: Server, mark: int) -> list[dict[str, Any]]:
    return server.seen()[mark:]


def test_call_speaks_2026_07_28_to_a_server_that_speaks_nothing_else(modern: Server, tmp_path: Path) -> None:
    mark = len(modern.seen())
    out = call(tmp_path, modern.url, "tools/call", '{"name": "echo", "arguments": {"message": "hi"}}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["content"][0]["text"] == "echo: hi"
    seen = since(modern, mark)
    assert [s["method"] for s in seen] == ["server/discover", "tools/call"]
    for s in seen:
        assert s["version"] == "2026-07-28"
        assert s["mcp-method"] == s["method"]
        assert s["meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
        assert "elicitation" in s["meta"]["io.modelcontextprotocol/clientCapabilities"]
        assert s["meta"]["io.modelcontextprotocol/clientInfo"]["name"] == "mcpgate"
    assert seen[1]["mcp-name"] == "echo"
    assert "initialize" not in out.stderr


def test_call_answers_two_elicitation_rounds_and_retries_with_request_state(modern: Server, tmp_path: Path) -> None:
    mark = len(modern.seen())
    out = call(
        tmp_path,
        modern.url,
        "tools/call",
        '{"name": "book_table", "arguments": {"party": 4}}',
        "--elicit",
        '{"name": "Ada", "hour": 19}',
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["content"][0]["text"] == "booked 4 for Ada at 19:00"
    calls = [s for s in since(modern, mark) if s["method"] == "tools/call"]
    # The first try, then one retry per question (the time is asked once the name is known).
    assert [c["rounds"] for c in calls] == [False, True, True]
    assert all(c["mcp-name"] == "book_table" for c in calls)
    assert out.stderr.count("The server asks") == 2


def test_call_declines_an_elicitation_it_cannot_ask_about(modern: Server, tmp_path: Path) -> None:
    out = call(tmp_path, modern.url, "tools/call", '{"name": "book_table", "arguments": {"party": 2}}')
    # stdin is not a terminal: declined, and the person is told how to answer.
    assert "--elicit" in out.stderr
    assert "booked" not in out.stdout


def test_call_offers_roots_from_the_command_line(modern: Server, tmp_path: Path) -> None:
    out = call(tmp_path, modern.url, "tools/call", '{"name": "my_roots", "arguments": {}}', "--root", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["content"][0]["text"] == tmp_path.resolve().as_uri()
    # Without --root, roots are not declared: the server says which capability it needs.
    out = call(tmp_path, modern.url, "tools/call", '{"name": "my_roots", "arguments": {}}')
    assert out.returncode == 1
    assert "-32021" in out.stderr and "roots" in out.stderr


def test_call_does_not_declare_sampling(modern: Server, tmp_path: Path) -> None:
    out = call(tmp_path, modern.url, "tools/call", '{"name": "ask_model", "arguments": {}}')
    assert out.returncode == 1
    assert "-32021" in out.stderr and "sampling" in out.stderr


def test_call_falls_back_to_initialize_on_a_2025_server(everything: Server, tmp_path: Path) -> None:
    out = call(tmp_path, everything.url, "tools/call", '{"name": "echo", "arguments": {"message": "old"}}')
    assert out.returncode == 0, out.stderr
    assert "Echo: old" in json.loads(out.stdout)["content"][0]["text"]
    assert "does not speak 2026-07-28" in out.stderr and "initializing a session" in out.stderr


def test_call_answers_a_2025_servers_elicitation_on_the_session(everything: Server, tmp_path: Path) -> None:
    out = call(
        tmp_path,
        everything.url,
        "tools/call",
        '{"name": "trigger-elicitation-request", "arguments": {}}',
        "--elicit",
        '{"name": "Ada Lovelace", "check": true}',
    )
    assert out.returncode == 0, out.stderr
    text = json.dumps(json.loads(out.stdout))
    assert "accept" in text and "Ada Lovelace" in text


def test_call_with_a_bad_elicit_flag_is_a_usage_error(modern: Server, tmp_path: Path) -> None:
    out = call(tmp_path, modern.url, "tools/list", "--elicit", "maybe")
    assert out.returncode == 2
    assert "--elicit takes" in out.stderr


def bridge_to(url: str, home: Path) -> Any:
    return stdio_client(
        StdioServerParameters(
            command=str(_mcpgate_bin()),
            args=["bridge", url],
            env={"MCPGATE_HOME": str(home), "MCPGATE_LOG": "info"},
        )
    )


@pytest.mark.anyio
@pytest.mark.parametrize("mode", [LEGACY, MODERN])
async def test_bridge_serves_an_app_of_either_era_over_a_2026_only_server(
    modern: Server, tmp_path: Path, mode: str
) -> None:
    asked = Asked(elicit_content={"name": "Grace", "hour": 20})
    roots_asked: list[bool] = []

    async def list_roots(context: ClientRequestContext) -> types.ListRootsResult:
        roots_asked.append(True)
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project")])

    mark = len(modern.seen())
    async with connect(bridge_to(modern.url, tmp_path), mode, asked, list_roots_callback=list_roots) as client:
        tools = await client.list_tools()
        assert {"echo", "book_table", "my_roots", "ask_model"} <= {t.name for t in tools.tools}
        assert ok_text(await client.call_tool("echo", {"message": "x"})) == "echo: x"
        assert ok_text(await client.call_tool("book_table", {"party": 3})) == "booked 3 for Grace at 20:00"
        assert ok_text(await client.call_tool("my_roots", {})) == "file:///work/project"
        said = ok_text(await client.call_tool("ask_model", {}))
        assert said.startswith("the model said: FIXED SUMMARY")
    assert len(asked.elicitations) == 2
    assert [e.message for e in asked.elicitations] == ["Whose name is the table under?", "What time, Grace?"]
    assert len(asked.samplings) == 1 and roots_asked
    seen = since(modern, mark)
    # A handshake app's initialize is tried once (and refused); after it, and
    # for a 2026-07-28 app from the start, the server sees only 2026-07-28.
    inits = [s for s in seen if s["method"] == "initialize"]
    assert len(inits) == (1 if mode == LEGACY else 0)
    rest = [s for s in seen if s["method"] != "initialize"]
    assert rest and all(s["version"] == "2026-07-28" and s["mcp-method"] == s["method"] for s in rest)
    booked = [s for s in rest if s["method"] == "tools/call" and s["mcp-name"] == "book_table"]
    assert [b["rounds"] for b in booked] == [False, True, True]


@pytest.mark.anyio
async def test_bridge_serves_a_2026_app_over_a_2025_server(everything: Server, tmp_path: Path) -> None:
    """The bridge opens a session of its own and turns the server's questions
    into `input_required` rounds for the app (the SDK client, pinned to 2026-07-28)."""
    asked = Asked(elicit_content={"name": "Ada Lovelace", "check": True})
    async with connect(bridge_to(everything.url, tmp_path), MODERN, asked) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        # Tools the server registers only for clients that declared elicitation and sampling.
        assert {"echo", "trigger-elicitation-request", "trigger-sampling-request"} <= names
        assert ok_text(await client.call_tool("echo", {"message": "new"})) == "Echo: new"
        elicited = await client.call_tool("trigger-elicitation-request", {})
        assert not elicited.is_error and "Ada Lovelace" in json.dumps(elicited.model_dump(mode="json"))
        sampled = await client.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 20})
        assert "FIXED SUMMARY" in json.dumps(sampled.model_dump(mode="json"))
    assert len(asked.elicitations) == 1 and len(asked.samplings) == 1


def test_call_asks_the_person_at_a_terminal(modern: Server, tmp_path: Path) -> None:
    """Without --elicit and with a terminal on stdin, each field is asked for."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [str(_mcpgate_bin()), "call", modern.url, "tools/call", '{"name": "book_table", "arguments": {"party": 2}}'],
        env={**os.environ, "MCPGATE_HOME": str(tmp_path)},
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(slave)
    try:
        # The name (first round), then an hour that is not a number, then one that is.
        os.write(master, b"Ada\nseven\n19\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert proc.returncode == 0, err
    assert json.loads(out)["content"][0]["text"] == "booked 2 for Ada at 19:00"
    assert "Whose name is the table under?" in err and "What time, Ada?" in err
    assert "that is not a valid integer" in err
