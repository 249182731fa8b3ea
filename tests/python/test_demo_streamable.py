"""The demo server (stdio, one child per session) through the gateway's
Streamable HTTP front, with the Python SDK client in each protocol era:

- ``legacy``: initialize + Mcp-Session-Id, server→client requests on the SSE stream;
- ``2026-07-28`` (pinned): stateless requests with per-request ``_meta``; the
  gateway bridges to the stdio child, elicitation/sampling become
  ``input_required`` results the client answers by retrying;
- ``auto``: ``server/discover`` first; the gateway is dual-era, so the client
  must end up on 2026-07-28.
"""

from __future__ import annotations

import json
import uuid

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from support import (
    AUTO,
    DEMO_TOOLS,
    FIXED_SUMMARY,
    Gateway,
    LEGACY,
    MODERN,
    MODES,
    Asked,
    connect,
    ok_text,
    resource_text,
    structured,
    text_of,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_connect_negotiates_the_era(gateway: Gateway, mode: str) -> None:
    async with connect(gateway.url("demo"), mode) as client:
        if mode == LEGACY:
            assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
            assert client.protocol_version == "2025-11-25"
        else:
            # Pinned adopts it; auto must find it through server/discover.
            assert client.protocol_version == "2026-07-28"
        if mode != MODERN:
            # initialize / server/discover results are relayed from the demo.
            assert client.server_capabilities.tools is not None
            assert client.server_capabilities.resources is not None
            assert client.server_capabilities.prompts is not None
            assert client.instructions is not None and "mcpgate demo server" in client.instructions


async def test_list_tools(gateway: Gateway, mode: str) -> None:
    async with connect(gateway.url("demo"), mode) as client:
        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == DEMO_TOOLS
        assert tools.next_cursor is None
        echo = next(t for t in tools.tools if t.name == "echo")
        assert "text" in echo.input_schema["properties"]


async def test_echo(gateway: Gateway, mode: str) -> None:
    text = f"hello through the gateway, {mode} ✓ {uuid.uuid4()}"
    async with connect(gateway.url("demo"), mode) as client:
        result = await client.call_tool("echo", {"text": text})
        assert ok_text(result) == text


async def test_whoami_is_anonymous_without_auth(gateway: Gateway, mode: str) -> None:
    async with connect(gateway.url("demo"), mode) as client:
        me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "anonymous"
        assert me["source"] == "anonymous"


async def test_notes_profile_and_prompt(gateway: Gateway, mode: str) -> None:
    title = f"note {mode} {uuid.uuid4().hex[:8]}"
    content = f"The content of {title}: remember the milk."
    async with connect(gateway.url("demo"), mode) as client:
        created = structured(await client.call_tool("create_secure_note", {"title": title, "content": content}))
        assert created["title"] == title
        assert created["content"] == content
        note_id = created["id"]
        assert isinstance(note_id, int)
        assert created["uri"] == f"user://notes/{note_id}"

        listed = structured(await client.call_tool("list_secure_notes", {}))
        assert listed["subject"] == "anonymous"
        mine = [n for n in listed["notes"] if n["id"] == note_id]
        assert len(mine) == 1 and mine[0]["title"] == title and mine[0]["content"] == content

        profile = json.loads(resource_text(await client.read_resource("user://profile")))
        assert profile["subject"] == "anonymous"
        assert profile["note_count"] >= 1
        assert profile["note_count"] == len(listed["notes"])

        note = json.loads(resource_text(await client.read_resource(created["uri"])))
        assert note == {"id": note_id, "title": title, "content": content, "created_at": created["created_at"]}

        prompts = await client.list_prompts()
        assert [p.name for p in prompts.prompts] == ["note_summary"]
        prompt = await client.get_prompt("note_summary", {"note_id": str(note_id)})
        assert len(prompt.messages) >= 1
        rendered = text_of(prompt)
        assert title in rendered and content in rendered


async def test_slow_count_reports_progress(gateway: Gateway, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connect(gateway.url("demo"), mode) as client:
        result = await client.call_tool("slow_count", {"steps": 4, "delay_ms": 50}, progress_callback=on_progress)
        reply = structured(result)
        assert reply == {"completed": 4, "requested": 4, "reported_progress": True}
    assert len(seen) >= 2, f"expected at least 2 progress notifications, got {seen}"
    progresses = [p for p, _, _ in seen]
    assert progresses == sorted(progresses) and progresses[-1] == 4
    assert all(total == 4 for _, total, _ in seen)


@pytest.mark.parametrize(
    ("answer", "content", "want_action", "want_confirmed", "want_outcome"),
    [
        ("accept", {"confirm": True}, "accept", True, "confirmed: "),
        ("decline", None, "decline", False, "declined: "),
    ],
)
async def test_confirm_action_elicitation(
    gateway: Gateway,
    mode: str,
    answer: str,
    content: dict[str, bool] | None,
    want_action: str,
    want_confirmed: bool,
    want_outcome: str,
) -> None:
    asked = Asked(elicit_action=answer, elicit_content=content)
    action = f"delete the {mode} test data"
    async with connect(gateway.url("demo"), mode, asked) as client:
        reply = structured(await client.call_tool("confirm_action", {"action": action}))
    assert reply == {"action": want_action, "confirmed": want_confirmed, "outcome": want_outcome + action}
    assert len(asked.elicitations) == 1
    assert action in asked.elicitations[0].message
    assert asked.samplings == []


async def test_summarize_sampling(gateway: Gateway, mode: str) -> None:
    asked = Asked()
    text = f"A long text about gateways ({mode}) that the model should summarize."
    async with connect(gateway.url("demo"), mode, asked) as client:
        result = await client.call_tool("summarize", {"text": text})
    assert ok_text(result) == FIXED_SUMMARY
    assert len(asked.samplings) == 1
    sent = asked.samplings[0]
    prompt = "\n".join(getattr(m.content, "text", "") for m in sent.messages)
    assert text in prompt
    assert sent.max_tokens > 0
    assert asked.elicitations == []


async def test_elicitation_without_capability_is_refused(gateway: Gateway, mode: str) -> None:
    # No elicitation callback: the client declares no elicitation capability,
    # so the call is refused instead of hanging: by the demo (a tool error) in a
    # session, by the gateway like a 2026-07-28 server (-32021) without one.
    async with connect(gateway.url("demo"), mode) as client:
        if mode == LEGACY:
            result = await client.call_tool("confirm_action", {"action": "anything"})
            assert result.is_error
            assert "elicitation" in text_of(result)
            return
        with pytest.raises(MCPError) as raised:
            await client.call_tool("confirm_action", {"action": "anything"})
    assert raised.value.error.code == -32021
    assert "elicitation" in str(raised.value)


@pytest.mark.parametrize("other", [LEGACY, AUTO])
async def test_sessions_are_independent(gateway: Gateway, mode: str, other: str) -> None:
    # Two clients at once on the same upstream, in possibly different eras.
    async with connect(gateway.url("demo"), mode) as a, connect(gateway.url("demo"), other) as b:
        assert ok_text(await a.call_tool("echo", {"text": "from a"})) == "from a"
        assert ok_text(await b.call_tool("echo", {"text": "from b"})) == "from b"
        assert ok_text(await a.call_tool("echo", {"text": "a again"})) == "a again"
