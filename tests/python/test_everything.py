"""`@modelcontextprotocol/server-everything` (a legacy-only Node server, run
over stdio from tests/node/node_modules) through the gateway, with the
client in each era: legacy passes through, 2026-07-28 and auto need the
gateway's bridge."""

from __future__ import annotations

import pytest
from support import MODES, Gateway, connect, ok_text, resource_text

pytestmark = pytest.mark.anyio


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_lists(gateway: Gateway, mode: str) -> None:
    async with connect(gateway.url("everything"), mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"echo", "get-sum", "get-tiny-image", "trigger-long-running-operation"} <= tools

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"simple-prompt", "args-prompt", "resource-prompt"} <= prompts

        resources = [r.uri for r in (await client.list_resources()).resources]
        assert "demo://resource/static/document/features.md" in [str(u) for u in resources]

        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        assert "demo://resource/dynamic/text/{resourceId}" in templates


async def test_echo_and_sum(gateway: Gateway, mode: str) -> None:
    async with connect(gateway.url("everything"), mode) as client:
        assert ok_text(await client.call_tool("echo", {"message": f"hi {mode}"})) == f"Echo: hi {mode}"
        assert ok_text(await client.call_tool("get-sum", {"a": 2, "b": 40})) == "The sum of 2 and 40 is 42."


async def test_resource_read_and_prompt(gateway: Gateway, mode: str) -> None:
    async with connect(gateway.url("everything"), mode) as client:
        text = resource_text(await client.read_resource("demo://resource/dynamic/text/7"))
        assert text.startswith("Resource 7: This is a plaintext resource")

        prompt = await client.get_prompt("args-prompt", {"city": "Lisbon", "state": "Portugal"})
        assert len(prompt.messages) == 1
        assert "Lisbon" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_progress(gateway: Gateway, mode: str) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with connect(gateway.url("everything"), mode) as client:
        result = await client.call_tool(
            "trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress
        )
        assert "Long running operation completed" in ok_text(result)
    assert seen == [1.0, 2.0, 3.0]
