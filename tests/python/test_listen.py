"""`subscriptions/listen` (2026-07-28) bridged to an older upstream: the gateway
acknowledges what the upstream can honour and forwards the opted-in
notifications, tagged with the subscription id."""

from __future__ import annotations

import json
from typing import Any

import httpx2
from support import Gateway

MODERN = "2026-07-28"


def _events(response: httpx2.Response, want: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for line in response.iter_lines():
        if line.startswith("data:") and line[5:].strip():
            events.append(json.loads(line[5:].strip()))
            if len(events) >= want:
                break
    return events


def test_listen_acknowledges_and_forwards_list_changed(gateway: Gateway) -> None:
    # server-everything announces tools/list_changed and supports resource subscriptions.
    body = {
        "jsonrpc": "2.0",
        "id": "sub-1",
        "method": "subscriptions/listen",
        "params": {
            "notifications": {
                "toolsListChanged": True,
                "promptsListChanged": True,
                "resourceSubscriptions": ["demo://resource/static/document/architecture.md"],
            },
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
    with httpx2.Client(timeout=30) as client:
        with client.stream("POST", gateway.url("everything"), json=body, headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = _events(r, 2)
    ack, first = events
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
    honoured = ack["params"]["notifications"]
    assert honoured["toolsListChanged"] is True
    # The gateway only promises what the upstream declared it can do.
    assert honoured["resourceSubscriptions"] == ["demo://resource/static/document/architecture.md"]
    assert first["method"] in {"notifications/tools/list_changed", "notifications/resources/updated"}
    assert first["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
