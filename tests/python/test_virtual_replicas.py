"""A virtual server (`[[virtual_server]]`) served by several replicas with no
sticky routing: three `mcpgate serve` on one PostgreSQL database of the test's
own, sharing the master key and the session key, each with its own internal
listener. Members: the demo over stdio (a child in each replica that opens a
member session) and the demo over Streamable HTTP (`prefix = false`).

- A session opened on replica A continues on replica B with the Python SDK's
  client: B forwards each request to A, which holds the member sessions (the
  stdio child among them): merged lists, a call on each member, and a
  member's elicitation answered through B.
- B forwards the GET stream and DELETE; after the DELETE every replica
  answers 404. An altered id, another server's or another subject's is 404.
- The owner killed: its sessions are 404 on the others, and a 2026-07-28 call
  it parked is "requestState is unknown".
- A 2026-07-28 call parked on A (a member's elicitation as `input_required`)
  is answered by the retry sent to B.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import _free_port, _mcpgate_bin, _toml_list, _toml_str
from mcp.client.streamable_http import streamable_http_client
from replicas import postgres_database, random_key
from support import LEGACY, MODERN, Asked, Gateway, connect, ok_text, start_gateway_at, stop_gateway, structured, text_of

pytestmark = pytest.mark.anyio

SERVER = "work"
SESSION_VERSION = "2025-11-25"


@dataclass
class Replicas:
    gateways: list[Gateway]
    keys: dict[str, str]  # subject → API key

    def port(self, i: int) -> int:
        return self.gateways[i].port

    def url(self, i: int, path: str = SERVER) -> str:
        return self.gateways[i].url(path)


def _config(store_url: str, binary: Path, demo_data: Path, http_demo: str) -> str:
    return f"""\
[server]
request_timeout = "30s"

[auth]
mode = "required"

[store]
url = {_toml_str(store_url)}

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", demo_data])}

[[upstream]]
name = "web"
url = {_toml_str(http_demo)}
transport = "streamable-http"
prefix = false
tools.allow = ["whoami", "health_check"]

[[virtual_server]]
name = "{SERVER}"
upstreams = ["demo", "web"]
"""


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, http_demo: str) -> Iterator[Replicas]:
    binary = _mcpgate_bin()
    root = tmp_path_factory.mktemp("mcpgate-virtual-replicas")
    with postgres_database("virtrep") as store_url:
        master_key = random_key()
        env = {"MCPGATE_MASTER_KEY": master_key, "MCPGATE_SERVER__SESSION_KEY": random_key()}
        gateways: list[Gateway] = []
        try:
            for i in range(3):
                home = root / f"replica-{i}"
                (home / "demo-data").mkdir(parents=True)
                config = _config(store_url, binary, home / "demo-data", http_demo)
                listen = f"127.0.0.1:{_free_port()}"
                gateways.append(start_gateway_at(binary, home, config, listen, home / "data", env, own_store=False))
            keys = {}
            for subject in ("alice", "bob"):
                cli_env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
                cli_env["MCPGATE_MASTER_KEY"] = master_key
                argv = [str(binary), "keys", "create", "--name", subject, "--scopes", "notes:read"]
                argv += ["--subject", subject, "--store-url", store_url, "--data-dir", str(root / "cli-data")]
                out = subprocess.run(argv, capture_output=True, timeout=60, env=cli_env)
                assert out.returncode == 0, out.stderr.decode(errors="replace")
                keys[subject] = out.stdout.decode().strip()
            yield Replicas(gateways, keys)
        finally:
            for gw in gateways:
                if gw.proc.poll() is None:
                    stop_gateway(gw)


class Switch(httpx2.AsyncBaseTransport):
    """Sends each request to the replica `port` names now (a load balancer with
    no affinity, steered by the test); records (method, port, status)."""

    def __init__(self, port: int) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.port = port
        self.seen: list[tuple[str, int, int]] = []
        self.session_id: str | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(port=self.port)
        request.headers["Host"] = f"127.0.0.1:{self.port}"
        response = await self.inner.handle_async_request(request)
        self.seen.append((request.method, self.port, response.status_code))
        if sid := response.headers.get("mcp-session-id"):
            self.session_id = sid
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _headers(key: str, sid: str | None = None) -> dict[str, str]:
    h = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": SESSION_VERSION,
    }
    if sid is not None:
        h["Mcp-Session-Id"] = sid
    return h


def _last_message(r: httpx2.Response) -> dict[str, Any]:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return json.loads(datas[-1])
    return r.json()


def _open_session(c: Replicas, i: int, subject: str = "alice") -> str:
    """A virtual session initialized on replica `i` (raw HTTP); its id."""
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": SESSION_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    r = httpx2.post(c.url(i), json=init, headers=_headers(c.keys[subject]), timeout=30)
    assert r.status_code == 200, r.text
    sid = r.headers["mcp-session-id"]
    assert sid.startswith("v1."), sid
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    r = httpx2.post(c.url(i), json=done, headers=_headers(c.keys[subject], sid), timeout=30)
    assert r.status_code == 202, r.text
    return sid


def _list_tools(c: Replicas, i: int, sid: str, subject: str = "alice") -> httpx2.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    return httpx2.post(c.url(i), json=body, headers=_headers(c.keys[subject], sid), timeout=30)


async def test_a_session_opened_on_one_replica_continues_on_another(replicas: Replicas) -> None:
    c = replicas
    switch = Switch(c.port(0))
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {c.keys['alice']}"}, timeout=30.0, transport=switch)
    asked = Asked()
    async with connect(streamable_http_client(c.url(0), http_client=http), LEGACY, asked) as client:
        assert switch.session_id is not None and switch.session_id.startswith("v1.")
        switch.port = c.port(1)
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"demo_whoami", "demo_health_check", "demo_confirm_action", "whoami", "health_check"} <= tools
        # The stdio member (its child in A) and the HTTP member, both through B.
        assert "ok" in text_of(await client.call_tool("demo_health_check", {})).lower()
        assert "ok" in text_of(await client.call_tool("health_check", {})).lower()
        # A member's question comes back on the answer stream B relays; the
        # client's answer is a POST to B, forwarded to A, which asked.
        reply = structured(await client.call_tool("demo_confirm_action", {"action": "drop the table"}))
        assert reply == {"action": "accept", "confirmed": True, "outcome": "confirmed: drop the table"}
    assert len(asked.elicitations) == 1
    on_b = [(m, s) for m, p, s in switch.seen if p == c.port(1)]
    assert ("POST", 200) in on_b and all(s < 400 for _, s in on_b), on_b
    # The SDK ends its session with a DELETE, here sent to B.
    assert ("DELETE", 200) in on_b, on_b
    for i in (0, 1, 2):
        assert _list_tools(c, i, switch.session_id).status_code == 404


async def test_get_stream_and_delete_on_another_replica_and_refusals(replicas: Replicas) -> None:
    c = replicas
    sid = _open_session(c, 0)
    r = _list_tools(c, 1, sid)
    assert r.status_code == 200, r.text
    assert "demo_whoami" in {t["name"] for t in _last_message(r)["result"]["tools"]}
    # The GET stream, through B.
    get = {k: v for k, v in _headers(c.keys["alice"], sid).items() if k != "Content-Type"}
    get["Accept"] = "text/event-stream"
    with httpx2.stream("GET", c.url(1), headers=get, timeout=httpx2.Timeout(30.0, read=2.0)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    # Another subject, an altered id, another server's route: 404 on the owner and elsewhere.
    for i in (0, 1):
        assert _list_tools(c, i, sid, subject="bob").status_code == 404
        altered = sid[:-4] + ("AAAA" if not sid.endswith("AAAA") else "BBBB")
        assert _list_tools(c, i, altered).status_code == 404
        assert _list_tools(c, i, "v1.forged").status_code == 404
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        r = httpx2.post(c.url(i, "demo"), json=body, headers=_headers(c.keys["alice"], sid), timeout=30)
        assert r.status_code == 404, r.text
    # The session is still there for its subject.
    assert _list_tools(c, 2, sid).status_code == 200
    # DELETE on B ends it everywhere.
    r = httpx2.delete(c.url(1), headers=_headers(c.keys["alice"], sid), timeout=30)
    assert r.status_code == 200, r.text
    for i in (0, 1, 2):
        assert _list_tools(c, i, sid).status_code == 404
    log_a = c.gateways[0].log_path.read_text(errors="replace")
    assert "forwarded here, but this replica no longer holds it" in log_a
    log_b = c.gateways[1].log_path.read_text(errors="replace")
    assert "refused a virtual session this replica does not hold" in log_b


def _modern_headers(key: str, method: str, name: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
        "Mcp-Name": name,
    }


def _modern_call(c: Replicas, i: int, params: dict[str, Any]) -> httpx2.Response:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {**params, "_meta": meta}}
    headers = _modern_headers(c.keys["alice"], "tools/call", params["name"])
    return httpx2.post(c.url(i), json=body, headers=headers, timeout=30)


def _parked(c: Replicas, i: int, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A 2026-07-28 call of demo_confirm_action parked on replica `i`: the
    retry's params, with the answer to the member's elicitation."""
    call = {"name": "demo_confirm_action", "arguments": {"action": action}}
    r = _modern_call(c, i, call)
    assert r.status_code == 200, r.text
    result = _last_message(r)["result"]
    assert result["resultType"] == "input_required", result
    answers = {k: {"action": "accept", "content": {"confirm": True}} for k in result["inputRequests"]}
    return {**call, "requestState": result["requestState"], "inputResponses": answers}, result


async def test_a_stateless_call_parked_on_one_replica_is_answered_through_another(replicas: Replicas) -> None:
    c = replicas
    retry, _ = _parked(c, 0, "rotate keys")
    r = _modern_call(c, 1, retry)
    assert r.status_code == 200, r.text
    done = _last_message(r)
    assert done["result"]["structuredContent"] == {"action": "accept", "confirmed": True, "outcome": "confirmed: rotate keys"}, done
    # Spent: the same state again is unknown (forwarded to A, which no longer holds it).
    again = _last_message(_modern_call(c, 1, retry))
    assert "requestState" in again["error"]["message"], again


async def test_the_owner_gone_is_404_and_its_parked_calls_unknown(replicas: Replicas) -> None:
    c = replicas
    victim = c.gateways[2]
    sid = _open_session(c, 2)
    assert _list_tools(c, 0, sid).status_code == 200
    retry, _ = _parked(c, 2, "rename the bucket")
    victim.proc.kill()
    victim.proc.wait(10)
    for i in (0, 1):
        assert _list_tools(c, i, sid).status_code == 404
        gone = _last_message(_modern_call(c, i, retry))
        assert gone["error"]["code"] == -32602, gone
        assert "requestState is unknown here or expired" in gone["error"]["message"], gone
    assert "the replica that holds this session is gone" in c.gateways[0].log_path.read_text(errors="replace")
