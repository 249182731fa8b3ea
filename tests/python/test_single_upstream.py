"""A gateway with exactly one upstream: the demo served over Streamable HTTP
(`mcpgate demo-server --http`). It is reachable at `/mcp/web` and, being the
only upstream, also at `/mcp` and (legacy HTTP+SSE) `/sse`. This exercises
the gateway's HTTP upstream connector in each client era."""

from __future__ import annotations

import httpx2
import pytest
from mcp.client.streamable_http import streamable_http_client
from support import (
    DEMO_TOOLS,
    FIXED_SUMMARY,
    MODES,
    Asked,
    Gateway,
    connect,
    connect_sse,
    ok_text,
    structured,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("path", ["/mcp", "/mcp/web"])
async def test_http_upstream_basic_calls(single_gateway: Gateway, mode: str, path: str) -> None:
    async with connect(single_gateway.base + path, mode) as client:
        assert {t.name for t in (await client.list_tools()).tools} == DEMO_TOOLS
        assert ok_text(await client.call_tool("echo", {"text": f"via {path} ✓"})) == f"via {path} ✓"
        me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "anonymous"


async def test_http_upstream_progress_elicitation_sampling(single_gateway: Gateway, mode: str) -> None:
    seen: list[float] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        seen.append(p)

    asked = Asked()
    async with connect(single_gateway.base + "/mcp", mode, asked) as client:
        counted = structured(
            await client.call_tool("slow_count", {"steps": 3, "delay_ms": 50}, progress_callback=on_progress)
        )
        assert counted == {"completed": 3, "requested": 3, "reported_progress": True}
        reply = structured(await client.call_tool("confirm_action", {"action": "use http"}))
        assert reply == {"action": "accept", "confirmed": True, "outcome": "confirmed: use http"}
        assert ok_text(await client.call_tool("summarize", {"text": "some text"})) == FIXED_SUMMARY
    assert seen == [1.0, 2.0, 3.0]
    assert len(asked.elicitations) == 1 and len(asked.samplings) == 1


async def test_client_cannot_claim_an_identity(single_gateway: Gateway, mode: str) -> None:
    # x-mcpgate-subject is how the gateway names the caller to an HTTP
    # upstream; one sent by the client must never reach the upstream.
    async with httpx2.AsyncClient(headers={"X-Mcpgate-Subject": "mallory"}, timeout=30.0) as http:
        async with connect(streamable_http_client(single_gateway.base + "/mcp", http_client=http), mode) as client:
            me = structured(await client.call_tool("whoami", {}))
    assert me["subject"] != "mallory", me


async def test_sse_alias(single_gateway: Gateway) -> None:
    async with connect_sse(single_gateway.base + "/sse") as client:
        assert {t.name for t in (await client.list_tools()).tools} == DEMO_TOOLS
        assert ok_text(await client.call_tool("echo", {"text": "sse alias"})) == "sse alias"
