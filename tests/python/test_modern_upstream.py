"""Upstreams that speak 2026-07-28 themselves (docs/ERA-BRIDGING.md).

`native` is tests/python/modern_only_server.py in its dual-era form (the Python
SDK's server: multi-round-trip requests through its resolvers, `requestState`
sealed by the SDK); `only` is the same server refusing `initialize`, as a
2026-07-28-only server does. `demo` is the stdio demo server, an older
upstream the gateway bridges.

- 2026-07-28 clients reach a 2026-07-28 upstream natively: `input_required`
  with the upstream's own keys and `requestState`, cache hints, the client's
  capabilities and `Mcp-Param-*` headers all pass through.
- the gateway validates like a 2026-07-28 server (status and JSON-RPC code).
- clients of the handshake eras (2025-11-25 sessions, legacy SSE) are bridged
  to the 2026-07-28-only upstream: the questions of its `input_required`
  results come to them as server→client requests.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import os

import httpx2 as httpx
import store
import mcp.types as types
import pytest
from conftest import _free_port, _mcpgate_bin, _start_gateway, _stop_gateway, _toml_list, _toml_str
from mcp.client import ClientRequestContext
from support import LEGACY, MODERN, Asked, Gateway, connect, connect_sse, ok_text

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).resolve().parent / "modern_only_server.py"
V = "2026-07-28"


def _serve(root: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    log_path = root / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(port), *flags],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"modern_only_server.py did not listen\n{log_path.read_text()[-3000:]}", pytrace=False)
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
def modern_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("mcpgate-modern")
    native, native_url = _serve(root)
    only, only_url = _serve(root, "--modern-only")
    demo_data = root / "demo-data"
    demo_data.mkdir()
    binary = _mcpgate_bin()
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(root / "gateway-data")}

[auth]
mode = "disabled"

[[upstream]]
name = "native"
url = {_toml_str(native_url)}
transport = "streamable-http"

[[upstream]]
name = "only"
url = {_toml_str(only_url)}

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", demo_data])}
isolation = "shared"
"""
    try:
        gw, log = _start_gateway(binary, root, config)
        yield gw
        _stop_gateway(gw, log)
    finally:
        for p in (native, only):
            p.terminate()
            p.wait(10)


def _meta(**caps: Any) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": caps,
    }


async def _post(
    gw: Gateway,
    upstream: str,
    method: str,
    params: dict[str, Any],
    *,
    name: str | None = None,
    headers: dict[str, str] | None = None,
    rid: int = 1,
) -> tuple[int, dict[str, Any]]:
    """One 2026-07-28 POST; returns the status and the JSON-RPC answer (JSON
    or the last message of an SSE answer)."""
    h = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": V,
        "Mcp-Method": method,
    }
    if name is not None:
        h["Mcp-Name"] = name
    h.update(headers or {})
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(gw.url(upstream), json=body, headers=h)
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return r.status_code, json.loads(datas[-1])
    return r.status_code, r.json()


async def _call(gw: Gateway, upstream: str, tool: str, args: dict[str, Any], caps: dict[str, Any], **extra: Any):
    params = {"name": tool, "arguments": args, "_meta": _meta(**caps), **extra}
    return await _post(gw, upstream, "tools/call", params, name=tool)


# --- native pass-through ---------------------------------------------------


async def test_input_required_reaches_the_client_as_the_upstream_wrote_it(modern_gateway: Gateway) -> None:
    status, first = await _call(modern_gateway, "native", "confirm_delete", {"item": "a.txt"}, {"elicitation": {}})
    assert status == 200, first
    result = first["result"]
    assert result["resultType"] == "input_required"
    # The upstream's own key and sealed state, not a gateway's.
    (key,) = result["inputRequests"]
    assert key.endswith("_ask_confirm"), key
    assert result["inputRequests"][key]["method"] == "elicitation/create"
    assert result["requestState"].startswith("v1."), result["requestState"]
    status, done = await _call(
        modern_gateway,
        "native",
        "confirm_delete",
        {"item": "a.txt"},
        {"elicitation": {}},
        inputResponses={key: {"action": "accept", "content": {"confirm": True}}},
        requestState=result["requestState"],
    )
    assert status == 200, done
    assert done["result"]["resultType"] == "complete"
    assert done["result"]["content"][0]["text"] == "deleted a.txt"


async def test_a_tampered_request_state_stays_refused(modern_gateway: Gateway) -> None:
    _, first = await _call(modern_gateway, "native", "confirm_delete", {"item": "b"}, {"elicitation": {}})
    state = first["result"]["requestState"]
    (key,) = first["result"]["inputRequests"]
    flipped = state[:-3] + ("A" if state[-3] != "A" else "B") + state[-2:]
    status, answer = await _call(
        modern_gateway,
        "native",
        "confirm_delete",
        {"item": "b"},
        {"elicitation": {}},
        inputResponses={key: {"action": "accept", "content": {"confirm": True}}},
        requestState=flipped,
    )
    assert status == 400, answer
    assert answer["error"]["code"] == -32602
    assert "requestState" in answer["error"]["message"]


async def test_results_keep_their_cache_hints_and_meta(modern_gateway: Gateway) -> None:
    status, answer = await _post(modern_gateway, "native", "tools/list", {"_meta": _meta()})
    assert status == 200, answer
    result = answer["result"]
    assert result["resultType"] == "complete"
    assert result["ttlMs"] == 0 and result["cacheScope"] == "private"
    # Only a 2026-07-28 answer carries the server info in `_meta`.
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "modern-upstream"


async def test_the_clients_declared_capabilities_reach_the_upstream(modern_gateway: Gateway) -> None:
    status, answer = await _call(modern_gateway, "native", "seen", {}, {"sampling": {}})
    assert status == 200, answer
    seen = json.loads(answer["result"]["content"][0]["text"])
    assert seen["capabilities"] == ["sampling"], seen
    assert seen["version"] == V


async def test_the_routing_headers_reach_the_upstream_as_the_client_sent_them(modern_gateway: Gateway) -> None:
    params = {"name": "seen", "arguments": {}, "_meta": _meta()}
    for name in ("seen", "=?base64?" + base64.b64encode(b"seen").decode() + "?="):
        status, answer = await _post(modern_gateway, "native", "tools/call", params, name=name)
        assert status == 200, answer
        seen = json.loads(answer["result"]["content"][0]["text"])
        # Checked against the body, then passed on as written (the encoded form too).
        assert seen["routing"] == {"method": "tools/call", "name": name}, seen


async def test_mcp_param_headers_are_checked_and_forwarded(modern_gateway: Gateway) -> None:
    await _post(modern_gateway, "native", "tools/list", {"_meta": _meta()})
    args = {"region": "eu-west", "amount": 5}
    params = {"name": "routed", "arguments": args, "_meta": _meta()}
    good = {"Mcp-Param-Region": "eu-west", "Mcp-Param-Amount": "5"}
    status, answer = await _post(modern_gateway, "native", "tools/call", params, name="routed", headers=good)
    assert status == 200, answer
    seen = json.loads(answer["result"]["content"][0]["text"])
    assert seen["params"] == {"mcp-param-region": "eu-west", "mcp-param-amount": "5"}, seen
    bad = {"Mcp-Param-Region": "us-east", "Mcp-Param-Amount": "5"}
    status, answer = await _post(modern_gateway, "native", "tools/call", params, name="routed", headers=bad)
    assert status == 400, answer
    assert answer["error"]["code"] == -32020
    assert "Mcp-Param-Region" in answer["error"]["message"]


async def _roots(context: ClientRequestContext) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/a"), types.Root(uri="file:///work/b")])


@pytest.mark.parametrize("upstream", ["native", "only"])
async def test_the_sdk_client_runs_every_kind_of_question_through_the_gateway(
    modern_gateway: Gateway, upstream: str
) -> None:
    asked = Asked(elicit_content={"confirm": True})
    async with connect(modern_gateway.url(upstream), MODERN, asked, list_roots_callback=_roots) as client:
        assert ok_text(await client.call_tool("confirm_delete", {"item": "x"})) == "deleted x"
        assert ok_text(await client.call_tool("summarize", {"text": "long"})).startswith("summary: FIXED SUMMARY")
        assert ok_text(await client.call_tool("count_roots", {})) == "2 roots: file:///work/a,file:///work/b"
        asked.elicit_content = {"colour": "red"}
        both = ok_text(await client.call_tool("two_at_once", {}))
        assert both.startswith("red + FIXED SUMMARY"), both
        assert ok_text(await client.call_tool("two_rounds", {})) == "size red"
    # confirm, colour (with the sample), colour then size (two rounds).
    assert len(asked.elicitations) == 4
    assert len(asked.samplings) == 2


@pytest.fixture(scope="module")
def guarded_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    """Authentication on, a per-tool scope, and a static upstream header,
    in front of the 2026-07-28 upstream; yields the gateway and a key that
    lacks the tool's scope."""
    root = tmp_path_factory.mktemp("mcpgate-modern-guarded")
    native, native_url = _serve(root)
    data = root / "gateway-data"
    data.mkdir()
    binary = _mcpgate_bin()
    out = subprocess.run(
        [str(binary), "keys", "create", "--name", "reader", "--scopes", "notes:read", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
        env=store.apply(dict(os.environ), data),
    )
    key = out.stdout.strip()
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(data)}
request_timeout = "2s"

[auth]
mode = "required"

[[upstream]]
name = "native"
url = {_toml_str(native_url)}
transport = "streamable-http"
headers = {{ "X-Upstream-Key" = "s3cret" }}
tool_scopes = {{ "confirm_delete" = "files:delete" }}
"""
    try:
        gw, log = _start_gateway(binary, root, config)
        yield gw, key
        _stop_gateway(gw, log)
    finally:
        native.terminate()
        native.wait(10)


async def test_policy_credentials_and_auth_still_apply_to_native_requests(
    guarded_gateway: tuple[Gateway, str],
) -> None:
    gw, key = guarded_gateway
    status, _ = await _post(gw, "native", "tools/list", {"_meta": _meta()})
    assert status == 401
    bearer = {"Authorization": f"Bearer {key}"}
    status, listed = await _post(gw, "native", "tools/list", {"_meta": _meta()}, headers=bearer)
    assert status == 200, listed
    names = {t["name"] for t in listed["result"]["tools"]}
    assert "seen" in names and "confirm_delete" not in names, names
    params = {"name": "confirm_delete", "arguments": {"item": "x"}, "_meta": _meta(elicitation={})}
    status, refused = await _post(gw, "native", "tools/call", params, name="confirm_delete", headers=bearer)
    assert status == 403, refused
    params = {"name": "seen", "arguments": {}, "_meta": _meta()}
    status, answer = await _post(gw, "native", "tools/call", params, name="seen", headers=bearer)
    assert status == 200, answer
    seen = json.loads(answer["result"]["content"][0]["text"])
    # The configured header went upstream; the client's credential did not.
    assert seen["static_header"] == "s3cret"
    assert seen["authorization"] is False


async def test_a_listen_stream_outlives_the_request_timeout(guarded_gateway: tuple[Gateway, str]) -> None:
    import anyio

    gw, key = guarded_gateway
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": V,
        "Mcp-Method": "subscriptions/listen",
        "Authorization": f"Bearer {key}",
    }
    body = {
        "jsonrpc": "2.0",
        "id": "sub-1",
        "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": True}, "_meta": _meta()},
    }
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("POST", gw.url("native"), json=body, headers=headers) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            async for line in lines:
                if line.startswith("data:") and line[5:].strip():
                    events.append(json.loads(line[5:]))
                    break
            # Longer than server.request_timeout (2 s) without a notification.
            await anyio.sleep(3)
            params = {"name": "change_tools", "arguments": {}, "_meta": _meta()}
            status, changed = await _post(
                gw, "native", "tools/call", params, name="change_tools", headers={"Authorization": f"Bearer {key}"}
            )
            assert status == 200, changed
            with anyio.fail_after(10):
                async for line in lines:
                    if line.startswith("data:") and line[5:].strip():
                        events.append(json.loads(line[5:]))
                        if events[-1].get("method") == "notifications/tools/list_changed":
                            break
    assert events[0]["method"] == "notifications/subscriptions/acknowledged", events
    assert events[-1]["method"] == "notifications/tools/list_changed", events


# --- validation -------------------------------------------------------------


async def test_meta_without_client_capabilities_is_invalid_params(modern_gateway: Gateway) -> None:
    params = {"_meta": {"io.modelcontextprotocol/protocolVersion": V}}
    for upstream in ("demo", "native"):
        status, answer = await _post(modern_gateway, upstream, "tools/list", params)
        assert status == 400, answer
        assert answer["error"]["code"] == -32602
        assert "clientCapabilities" in answer["error"]["message"]


async def test_an_unsupported_version_lists_the_supported_ones(modern_gateway: Gateway) -> None:
    h = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2099-01-01",
        "Mcp-Method": "tools/list",
    }
    params = {"_meta": {**_meta(), "io.modelcontextprotocol/protocolVersion": "2099-01-01"}}
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(
            modern_gateway.url("native"), json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}, headers=h
        )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == -32022
    assert V in error["data"]["supported"]
    assert error["data"]["requested"] == "2099-01-01"


async def test_a_duplicated_routing_header_is_a_header_mismatch(modern_gateway: Gateway) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": _meta()}}
    headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", V),
        ("Mcp-Method", "tools/list"),
        ("Mcp-Method", "tools/list"),
    ]
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(modern_gateway.url("demo"), content=json.dumps(body), headers=headers)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == -32020


@pytest.mark.parametrize("upstream,tool,args", [("demo", "confirm_action", {"action": "delete"}), ("native", "confirm_delete", {"item": "c"})])
async def test_an_undeclared_capability_the_call_needs_is_refused(
    modern_gateway: Gateway, upstream: str, tool: str, args: dict[str, Any]
) -> None:
    status, answer = await _call(modern_gateway, upstream, tool, args, {})
    assert status == 400, answer
    assert answer["error"]["code"] == -32021, answer
    assert "elicitation" in json.dumps(answer["error"].get("data", {})), answer


# --- handshake-era clients against a 2026-07-28-only upstream -----------------


@pytest.mark.filterwarnings("ignore:ping is removed")  # a 2025-11-25 session still has it
async def test_a_session_client_is_asked_the_upstreams_questions(modern_gateway: Gateway) -> None:
    asked = Asked(elicit_content={"confirm": True})
    async with connect(modern_gateway.url("only"), LEGACY, asked, list_roots_callback=_roots) as client:
        await client.send_ping()
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"confirm_delete", "two_rounds", "routed"} <= tools
        assert ok_text(await client.call_tool("confirm_delete", {"item": "y"})) == "deleted y"
        assert ok_text(await client.call_tool("count_roots", {})).startswith("2 roots")
        asked.elicit_content = {"colour": "blue"}
        assert ok_text(await client.call_tool("two_rounds", {})) == "size blue"
        # The upstream requires the Mcp-Param-* headers of the tool's x-mcp-header parameters.
        routed = json.loads(ok_text(await client.call_tool("routed", {"region": "ap", "amount": 3})))
        assert routed["params"] == {"mcp-param-region": "ap", "mcp-param-amount": "3"}
        assert "elicitation" in routed["capabilities"]
    assert [e.message for e in asked.elicitations][0] == "Really delete y?"
    assert len(asked.elicitations) == 3


async def test_a_legacy_sse_client_is_asked_the_upstreams_questions(modern_gateway: Gateway) -> None:
    asked = Asked(elicit_content={"confirm": False})
    async with connect_sse(modern_gateway.sse_url("only"), elicitation_callback=asked.elicitation) as client:
        assert ok_text(await client.call_tool("confirm_delete", {"item": "z"})) == "kept z"
    assert len(asked.elicitations) == 1
