"""A virtual server behind authentication: the challenge and the RFC 9728
metadata name its own endpoint, its `required_scopes` and `tool_scopes`
(on the prefixed names) filter lists and refuse calls, and a virtual
session belongs to the subject that opened it. Raw JSON-RPC over httpx2
against a real `mcpgate serve` with the demo over stdio and over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from conftest import _mcpgate_bin, _start_gateway, _stop_gateway, _toml_list, _toml_str
from support import Gateway

pytestmark = pytest.mark.anyio

READER = "reader-token-0123456789abcdefghijklmnopqrstuvwxyz"
WRITER = "writer-token-0123456789abcdefghijklmnopqrstuvwxyz"
JSON_AND_SSE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, http_demo: str) -> Iterator[Gateway]:
    binary = _mcpgate_bin()
    root = tmp_path_factory.mktemp("mcpgate-virtual-auth")
    demo_data = root / "demo-data"
    demo_data.mkdir()
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(root / "gateway-data")}

max_sessions_per_subject = 4

[auth]
mode = "required"
authorization_servers = ["http://127.0.0.1:9"]

[[auth.static_tokens.tokens]]
token = {_toml_str(READER)}
subject = "reader"
scopes = "mcp"

[[auth.static_tokens.tokens]]
token = {_toml_str(WRITER)}
subject = "writer"
scopes = "mcp notes:write"

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", demo_data])}

[[upstream]]
name = "web"
url = {_toml_str(http_demo)}
transport = "streamable-http"

[[virtual_server]]
name = "work"
upstreams = ["demo", "web"]
required_scopes = "mcp"
tool_scopes = {{ "*_create_secure_note" = "notes:write" }}
"""
    gw, log = _start_gateway(binary, root, config)
    yield gw
    _stop_gateway(gw, log)


def _body(method: str, params: dict[str, Any] | None = None, id: int | None = 1) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if id is not None:
        msg["id"] = id
    return msg


def _answer(r: httpx2.Response) -> dict[str, Any]:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        for line in r.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                msg = json.loads(line[5:])
                if "id" in msg and ("result" in msg or "error" in msg):
                    return msg
        raise AssertionError(f"no response in the stream: {r.text!r}")
    return r.json()


async def _open(http: httpx2.AsyncClient, gw: Gateway, token: str) -> dict[str, str]:
    headers = {**JSON_AND_SSE, "Authorization": f"Bearer {token}"}
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    r = await http.post(gw.url("work"), json=_body("initialize", params), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["serverInfo"]["name"] == "mcpgate virtual server work"
    headers = {**headers, "Mcp-Session-Id": r.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    r = await http.post(gw.url("work"), json=_body("notifications/initialized", id=None), headers=headers)
    assert r.status_code == 202, r.text
    return headers


async def test_the_challenge_and_metadata_name_the_virtual_server(guarded: Gateway) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await http.post(guarded.url("work"), json=_body("initialize"), headers=JSON_AND_SSE)
        assert r.status_code == 401, r.text
        challenge = r.headers["www-authenticate"]
        assert f"{guarded.base}/.well-known/oauth-protected-resource/mcp/work" in challenge, challenge
        assert 'scope="mcp"' in challenge, challenge
        r = await http.get(f"{guarded.base}/.well-known/oauth-protected-resource/mcp/work")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["resource"] == f"{guarded.base}/mcp/work"
        assert {"mcp", "notes:write"} <= set(doc["scopes_supported"])
        r = await http.get(f"{guarded.base}/.well-known/oauth-protected-resource/mcp/nothing")
        assert r.status_code == 404


async def test_tool_scopes_apply_to_the_prefixed_names(guarded: Gateway) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        reader = await _open(http, guarded, READER)
        r = await http.post(guarded.url("work"), json=_body("tools/list", id=2), headers=reader)
        names = {t["name"] for t in _answer(r)["result"]["tools"]}
        assert {"demo_whoami", "web_whoami"} <= names
        assert "demo_create_secure_note" not in names and "web_create_secure_note" not in names
        call = _body("tools/call", {"name": "demo_create_secure_note", "arguments": {"title": "t", "body": "b"}}, 3)
        r = await http.post(guarded.url("work"), json=call, headers=reader)
        assert r.status_code == 403, r.text
        assert "insufficient_scope" in r.headers["www-authenticate"]
        assert "notes:write" in r.headers["www-authenticate"]

        writer = await _open(http, guarded, WRITER)
        r = await http.post(guarded.url("work"), json=_body("tools/list", id=2), headers=writer)
        names = {t["name"] for t in _answer(r)["result"]["tools"]}
        assert {"demo_create_secure_note", "web_create_secure_note"} <= names
        who = _body("tools/call", {"name": "web_whoami", "arguments": {}}, 4)
        r = await http.post(guarded.url("work"), json=who, headers=writer)
        answer = _answer(r)
        assert "result" in answer, answer
        # The HTTP member was told who the caller is, not given the token.
        assert "writer" in json.dumps(answer["result"])


async def test_a_virtual_session_belongs_to_its_subject(guarded: Gateway) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        reader = await _open(http, guarded, READER)
        stolen = {**reader, "Authorization": f"Bearer {WRITER}"}
        r = await http.post(guarded.url("work"), json=_body("tools/list", id=2), headers=stolen)
        assert r.status_code == 404, r.text
        r = await http.delete(guarded.url("work"), headers=reader)
        assert r.status_code == 200, r.text
        r = await http.post(guarded.url("work"), json=_body("tools/list", id=3), headers=reader)
        assert r.status_code == 404, r.text


async def test_virtual_sessions_count_against_the_subject_limit(guarded: Gateway) -> None:
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    headers = {**JSON_AND_SSE, "Authorization": f"Bearer {READER}"}
    opened: list[str] = []
    async with httpx2.AsyncClient(timeout=30) as http:
        refused = None
        for _ in range(5):
            r = await http.post(guarded.url("work"), json=_body("initialize", params), headers=headers)
            if r.status_code != 200:
                refused = r
                break
            opened.append(r.headers["mcp-session-id"])
        assert refused is not None and refused.status_code == 429, opened
        assert "max_sessions_per_subject = 4" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "30"
        r = await http.delete(guarded.url("work"), headers={**headers, "Mcp-Session-Id": opened[0]})
        assert r.status_code == 200, r.text
        r = await http.post(guarded.url("work"), json=_body("initialize", params), headers=headers)
        assert r.status_code == 200, r.text
