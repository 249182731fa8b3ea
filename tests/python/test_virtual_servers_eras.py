"""A virtual server (`[[virtual_server]]`) to clients of the other eras: the
Python SDK's 2026-07-28 client (stateless, per-request `_meta`, `input_required`
rounds) and its legacy HTTP+SSE client (2024-11-05). Members: the demo over
stdio, `@modelcontextprotocol/server-everything` over stdio (`tools.rename`,
`tools.deny`) and the demo over Streamable HTTP (`prefix = false`,
`tools.allow`). Checks merged lists, routing with the prefix removed, a
member's elicitation and sampling, `server/discover`, `subscriptions/listen`,
and that a `requestState` is good for its own member only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from conftest import _everything_entry, _mcpgate_bin, _node, _start_gateway, _stop_gateway, _toml_list, _toml_str
from mcp.shared.exceptions import MCPError
from support import FIXED_SUMMARY, MODERN, Asked, Gateway, connect, connect_sse, ok_text, resource_text, structured, text_of

pytestmark = pytest.mark.anyio

META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
}


@pytest.fixture(scope="module")
def virtual(tmp_path_factory: pytest.TempPathFactory, http_demo: str) -> Iterator[Gateway]:
    binary = _mcpgate_bin()
    root = tmp_path_factory.mktemp("mcpgate-virtual-eras")
    demo_data = root / "demo-data"
    demo_data.mkdir()
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(root / "gateway-data")}

[auth]
mode = "disabled"

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", demo_data])}

[[upstream]]
name = "everything"
command = {_toml_list([_node(), _everything_entry(), "stdio"])}
tools.deny = ["get-tiny-image", "get-env"]
tools.rename = {{ echo = "say" }}

[[upstream]]
name = "web"
url = {_toml_str(http_demo)}
transport = "streamable-http"
prefix = false
tools.allow = ["whoami", "health_check"]

[[virtual_server]]
name = "work"
upstreams = ["demo", "everything", "web"]
"""
    gw, log = _start_gateway(binary, root, config)
    yield gw
    _stop_gateway(gw, log)


def _refused(error: BaseException) -> MCPError:
    pending: list[BaseException] = [error]
    while pending:
        e = pending.pop()
        if isinstance(e, MCPError):
            return e
        if isinstance(e, BaseExceptionGroup):
            pending.extend(e.exceptions)
    raise error


async def _post(gw: Gateway, path: str, method: str, params: dict[str, Any], caps: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One raw 2026-07-28 POST; the status and the last JSON-RPC message."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
    }
    if "name" in params:
        headers["Mcp-Name"] = params["name"]
    meta = {**META, "io.modelcontextprotocol/clientCapabilities": caps or {}}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await http.post(gw.url(path), json=body, headers=headers)
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return r.status_code, json.loads(datas[-1])
    return r.status_code, r.json()


@pytest.mark.parametrize("client", ["modern", "sse"])
async def test_merged_lists_and_routing(virtual: Gateway, client: str) -> None:
    opened = connect(virtual.url("work"), MODERN) if client == "modern" else connect_sse(virtual.sse_url("work"))
    async with opened as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        prompts = {p.name for p in (await c.list_prompts()).prompts}
        templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
        # Each member's names, prefixed; `web` unprefixed and only what it allows.
        assert {"demo_whoami", "demo_confirm_action", "everything_get-sum", "everything_say", "whoami", "health_check"} <= tools
        assert "everything_echo" not in tools and "everything_get-env" not in tools and "create_secure_note" not in tools
        assert "everything_simple-prompt" in prompts
        assert "demo://resource/dynamic/text/{resourceId}" in templates
        # Routed with the prefix removed (and the rename undone).
        assert ok_text(await c.call_tool("everything_say", {"message": "hi"})) == "Echo: hi"
        assert ok_text(await c.call_tool("everything_get-sum", {"a": 2, "b": 40})) == "The sum of 2 and 40 is 42."
        assert "ok" in text_of(await c.call_tool("health_check", {})).lower()
        prompt = await c.get_prompt("everything_args-prompt", {"city": "Lisbon", "state": "Portugal"})
        assert "Lisbon" in prompt.messages[0].content.text  # type: ignore[union-attr]
        text = resource_text(await c.read_resource("demo://resource/dynamic/text/7"))
        assert text.startswith("Resource 7: This is a plaintext resource")
        # A hidden or unknown name does not exist.
        for name in ("everything_get-env", "nobody_whoami"):
            with pytest.raises(BaseException) as raised:  # noqa: PT011 - unwrapped below
                await c.call_tool(name, {})
            refused = _refused(raised.value)
            assert refused.error.code == -32602
            assert f"Unknown tool: {name}" in str(refused)


@pytest.mark.parametrize("client", ["modern", "sse"])
async def test_elicitation_and_sampling_through_a_member(virtual: Gateway, client: str) -> None:
    asked = Asked()
    opened = (
        connect(virtual.url("work"), MODERN, asked)
        if client == "modern"
        else connect_sse(virtual.sse_url("work"), elicitation_callback=asked.elicitation, sampling_callback=asked.sampling)
    )
    async with opened as c:
        reply = structured(await c.call_tool("demo_confirm_action", {"action": "drop the table"}))
        summary = await c.call_tool("demo_summarize", {"text": "a long text about virtual servers"})
    assert reply == {"action": "accept", "confirmed": True, "outcome": "confirmed: drop the table"}
    assert len(asked.elicitations) == 1 and "drop the table" in asked.elicitations[0].message
    assert ok_text(summary) == FIXED_SUMMARY
    assert len(asked.samplings) == 1


async def test_request_state_is_good_for_its_member_only(virtual: Gateway) -> None:
    caps = {"elicitation": {"form": {}}}
    call = {"name": "demo_confirm_action", "arguments": {"action": "rotate keys"}}
    status, first = await _post(virtual, "work", "tools/call", call, caps)
    assert status == 200, first
    result = first["result"]
    assert result["resultType"] == "input_required", first
    state = result["requestState"]
    answers = {k: {"action": "accept", "content": {"confirm": True}} for k in result["inputRequests"]}
    # Carried to another member of the same virtual server, or to the member's own endpoint: refused.
    status, moved = await _post(virtual, "work", "tools/call", {"name": "everything_say", "arguments": {"message": "x"}, "requestState": state, "inputResponses": answers}, caps)
    assert moved["error"]["code"] == -32602, moved
    assert "requestState belongs to another caller or upstream" in moved["error"]["message"], moved
    status, direct = await _post(virtual, "demo", "tools/call", {"name": "confirm_action", "arguments": {"action": "rotate keys"}, "requestState": state, "inputResponses": answers}, caps)
    assert "requestState belongs to another caller or upstream" in direct["error"]["message"], direct
    # Altered: not the gateway's.
    status, forged = await _post(virtual, "work", "tools/call", {**call, "requestState": state[:-4] + "AAAA", "inputResponses": answers}, caps)
    assert "requestState was not issued by this gateway" in forged["error"]["message"], forged
    # The real retry still finds its parked call at the demo member.
    status, done = await _post(virtual, "work", "tools/call", {**call, "requestState": state, "inputResponses": answers}, caps)
    assert status == 200, done
    assert done["result"]["structuredContent"] == {"action": "accept", "confirmed": True, "outcome": "confirmed: rotate keys"}, done
    assert "refused a requestState" in virtual.log_path.read_text(errors="replace")


async def test_a_call_needing_an_undeclared_capability_is_refused(virtual: Gateway) -> None:
    status, answer = await _post(virtual, "work", "tools/call", {"name": "demo_confirm_action", "arguments": {"action": "x"}}, {})
    assert answer["error"]["code"] == -32021, answer
    assert "elicitation" in answer["error"]["message"], answer


async def test_discover_describes_the_virtual_server(virtual: Gateway) -> None:
    status, answer = await _post(virtual, "work", "server/discover", {})
    assert status == 200, answer
    result = answer["result"]
    assert result["supportedVersions"] == [MODERN]
    assert {"tools", "prompts", "resources"} <= set(result["capabilities"]), result
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcpgate virtual server work"
    assert "demo, everything, web" in result["instructions"]
    status, answer = await _post(virtual, "work", "ping", {})
    assert answer["error"]["code"] == -32601, answer


def test_listen_forwards_a_members_resource_updates(virtual: Gateway) -> None:
    # server-everything's toggle-subscriber-updates sends notifications/resources/updated
    # for subscribed URIs at once, then every 5 s.
    uri = "demo://resource/static/document/architecture.md"
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
    }
    meta = {**META, "io.modelcontextprotocol/clientCapabilities": {}}
    listen = {
        "jsonrpc": "2.0",
        "id": "sub-1",
        "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": True, "resourceSubscriptions": [uri, "nowhere://x"]}, "_meta": meta},
    }
    toggle = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "everything_toggle-subscriber-updates", "arguments": {}, "_meta": meta},
    }
    url = virtual.url("work")
    with httpx2.Client(timeout=30) as client, httpx2.Client(timeout=30) as caller:
        with client.stream("POST", url, json=listen, headers={**headers, "Mcp-Method": "subscriptions/listen"}) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            ack = _next_event(lines)
            toggled = caller.post(url, json=toggle, headers={**headers, "Mcp-Method": "tools/call", "Mcp-Name": "everything_toggle-subscriber-updates"})
            assert toggled.status_code == 200, toggled.text
            update = _next_event(lines, method="notifications/resources/updated")
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    honoured = ack["params"]["notifications"]
    assert honoured["toolsListChanged"] is True
    # The URI no member lists is not promised.
    assert honoured["resourceSubscriptions"] == [uri]
    assert update["params"]["uri"] == uri
    assert update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"


def _next_event(lines: Any, method: str | None = None) -> dict[str, Any]:
    for line in lines:
        if line.startswith("data:") and line[5:].strip():
            event = json.loads(line[5:].strip())
            if method is None or event.get("method") == method:
                return event
    raise AssertionError(f"the stream ended before {method or 'an event'}")
