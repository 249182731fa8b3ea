"""`subscriptions/listen` (2026-07-28) bridged to an older upstream: the gateway
acknowledges what the upstream can honour and forwards the opted-in
notifications, tagged with the subscription id."""

from __future__ import annotations

import json
from typing import Any

import httpx2
from support import Gateway

MODERN = "2026-07-28"


def _modern_post(client: httpx2.Client, url: str, method: str, params: dict[str, Any], name: str | None = None) -> httpx2.Response:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
    }
    if name:
        headers["Mcp-Name"] = name
    params = {**params, "_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }}
    return client.post(url, json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params}, headers=headers)


def test_listen_acknowledges_and_forwards_resource_updates(gateway: Gateway) -> None:
    # server-everything supports resource subscriptions; its toggle-subscriber-updates
    # tool sends notifications/resources/updated for subscribed URIs at once, then every 5 s.
    uri = "demo://resource/static/document/architecture.md"
    body = {
        "jsonrpc": "2.0",
        "id": "sub-1",
        "method": "subscriptions/listen",
        "params": {
            "notifications": {"toolsListChanged": True, "promptsListChanged": True, "resourceSubscriptions": [uri]},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "subscriptions/listen",
    }
    url = gateway.url("everything")
    with httpx2.Client(timeout=30) as client, httpx2.Client(timeout=30) as caller:
        with client.stream("POST", url, json=body, headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            ack = _next_event(lines)
            toggled = _modern_post(caller, url, "tools/call", {"name": "toggle-subscriber-updates", "arguments": {}}, "toggle-subscriber-updates")
            assert toggled.status_code == 200, toggled.text
            update = _next_event(lines, method="notifications/resources/updated")
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
    honoured = ack["params"]["notifications"]
    # The gateway only promises what the upstream declared it can do.
    assert honoured["toolsListChanged"] is True
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
