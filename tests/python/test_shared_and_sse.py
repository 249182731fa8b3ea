"""The `shared` upstream (one demo child for every client: the gateway must
remap request ids so concurrent sessions never see each other's answers) and
the legacy HTTP+SSE front (2024-11-05) with the SDK's SSE client."""

from __future__ import annotations

import uuid

import anyio
import pytest
from support import DEMO_TOOLS, LEGACY, MODERN, Asked, Gateway, connect, connect_sse, ok_text, structured

pytestmark = pytest.mark.anyio


async def test_shared_child_serves_concurrent_sessions(gateway: Gateway) -> None:
    progress: list[float] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(p)

    results: dict[str, object] = {}
    async with connect(gateway.url("shared"), LEGACY) as a, connect(gateway.url("shared"), LEGACY) as b:
        # Both sessions start their request ids at the same number: without
        # remapping in the gateway, the shared child would mix the answers.
        async def slow() -> None:
            results["slow"] = structured(
                await a.call_tool("slow_count", {"steps": 3, "delay_ms": 100}, progress_callback=on_progress)
            )

        async def echoes() -> None:
            results["echo"] = [ok_text(await b.call_tool("echo", {"text": f"b-{i}"})) for i in range(5)]

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            tg.start_soon(echoes)

        # One child and one data dir: a note made by one session is seen by the other.
        title = f"shared {uuid.uuid4().hex[:8]}"
        created = structured(await a.call_tool("create_secure_note", {"title": title, "content": "x"}))
        listed = structured(await b.call_tool("list_secure_notes", {}))
        assert created["id"] in [n["id"] for n in listed["notes"]]

    assert results["slow"] == {"completed": 3, "requested": 3, "reported_progress": True}
    assert results["echo"] == [f"b-{i}" for i in range(5)]
    assert progress == [1.0, 2.0, 3.0]


async def test_shared_child_with_modern_client(gateway: Gateway) -> None:
    asked = Asked()
    async with connect(gateway.url("shared"), MODERN, asked) as client:
        assert {t.name for t in (await client.list_tools()).tools} == DEMO_TOOLS
        assert ok_text(await client.call_tool("echo", {"text": "modern on shared"})) == "modern on shared"
        reply = structured(await client.call_tool("confirm_action", {"action": "share"}))
        assert reply["action"] == "accept" and reply["confirmed"] is True


@pytest.mark.parametrize("upstream", ["demo", "everything"])
async def test_legacy_sse_front(gateway: Gateway, upstream: str) -> None:
    async with connect_sse(gateway.sse_url(upstream)) as client:
        assert client.protocol_version in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
        names = {t.name for t in (await client.list_tools()).tools}
        if upstream == "demo":
            assert names == DEMO_TOOLS
            assert ok_text(await client.call_tool("echo", {"text": "over sse ✓"})) == "over sse ✓"
        else:
            assert {"echo", "get-sum"} <= names
            assert ok_text(await client.call_tool("echo", {"message": "over sse"})) == "Echo: over sse"


async def test_legacy_sse_front_relays_server_requests(gateway: Gateway) -> None:
    seen: list[float] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        seen.append(p)

    asked = Asked()
    async with connect_sse(gateway.sse_url("demo"), asked=asked) as client:
        reply = structured(await client.call_tool("confirm_action", {"action": "over sse"}))
        assert reply == {"action": "accept", "confirmed": True, "outcome": "confirmed: over sse"}
        counted = structured(
            await client.call_tool("slow_count", {"steps": 3, "delay_ms": 30}, progress_callback=on_progress)
        )
        assert counted["completed"] == 3
    assert seen == [1.0, 2.0, 3.0]
