"""Helpers shared by the end-to-end tests: client construction, callbacks that
record what the server asked, and result decoding."""

from __future__ import annotations

import json
import subprocess
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcp.types as types
from mcp.client import Client, ClientRequestContext
from mcp.client.sse import sse_client

# The three ways the Python SDK 2.3 client negotiates the protocol era.
LEGACY = "legacy"  # initialize handshake + Mcp-Session-Id (2025-11-25)
MODERN = "2026-07-28"  # pinned: stateless, per-request _meta, Mcp-Method/Mcp-Name headers
AUTO = "auto"  # server/discover first, falls back to initialize
MODES = [LEGACY, MODERN, AUTO]

# Every tool `mcpgate demo-server` offers.
DEMO_TOOLS = {
    "whoami",
    "create_secure_note",
    "list_secure_notes",
    "get_api_usage",
    "health_check",
    "slow_count",
    "confirm_action",
    "summarize",
    "echo",
}

READ_TIMEOUT_S = 30.0
FIXED_SUMMARY = "FIXED SUMMARY: a canned answer from the test's sampling callback"


@dataclass
class Asked:
    """Records the server→client requests (sampling, elicitation) a client answered."""

    elicit_action: str = "accept"
    elicit_content: dict[str, Any] | None = field(default_factory=lambda: {"confirm": True})
    sampling_text: str = FIXED_SUMMARY
    elicitations: list[types.ElicitRequestParams] = field(default_factory=list)
    samplings: list[types.CreateMessageRequestParams] = field(default_factory=list)

    async def elicitation(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicitations.append(params)
        content = self.elicit_content if self.elicit_action == "accept" else None
        return types.ElicitResult(action=self.elicit_action, content=content)  # type: ignore[arg-type]

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.samplings.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=self.sampling_text),
            model="mcpgate-test-model",
            stop_reason="endTurn",
        )


@dataclass
class Gateway:
    """A running `mcpgate serve`."""

    base: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    def url(self, upstream: str) -> str:
        """The Streamable HTTP endpoint of one upstream."""
        return f"{self.base}/mcp/{upstream}"

    def sse_url(self, upstream: str) -> str:
        """The legacy HTTP+SSE endpoint of one upstream."""
        return f"{self.base}/mcp/{upstream}/sse"

    @property
    def origin(self) -> str:
        """The gateway's own origin, which it must allow."""
        return self.base

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(text.splitlines()[-lines:])


def connect(
    target: str | AbstractAsyncContextManager[Any],
    mode: str,
    asked: Asked | None = None,
    **kwargs: Any,
) -> Client:
    """A client for `target` (a Streamable HTTP URL or a transport) in `mode`.

    The response cache is off so that every call really goes over the wire.
    """
    if asked is not None:
        kwargs.setdefault("elicitation_callback", asked.elicitation)
        kwargs.setdefault("sampling_callback", asked.sampling)
    return Client(
        target,  # type: ignore[arg-type]
        mode=mode,
        cache=None,
        read_timeout_seconds=READ_TIMEOUT_S,
        client_info=types.Implementation(name="mcpgate-e2e", version="0.0.0"),
        **kwargs,
    )


def connect_sse(url: str, **kwargs: Any) -> Client:
    """A legacy (2024-11-05 HTTP+SSE) client for `url`."""
    return connect(sse_client(url, timeout=READ_TIMEOUT_S), LEGACY, **kwargs)


def text_of(result: types.CallToolResult | types.GetPromptResult) -> str:
    """All text blocks of a tool result, joined by newlines."""
    if isinstance(result, types.GetPromptResult):
        blocks = [m.content for m in result.messages]
    else:
        blocks = list(result.content)
    return "\n".join(b.text for b in blocks if isinstance(b, types.TextContent))


def ok_text(result: types.CallToolResult) -> str:
    """The text of a successful tool result; fails with the error text otherwise."""
    assert not result.is_error, f"tool call failed: {text_of(result)!r}"
    return text_of(result)


def structured(result: types.CallToolResult) -> dict[str, Any]:
    """The structured content of a successful tool result (or its JSON text)."""
    assert not result.is_error, f"tool call failed: {text_of(result)!r}"
    if result.structured_content is not None:
        assert isinstance(result.structured_content, dict), result.structured_content
        return result.structured_content
    return json.loads(text_of(result))


def resource_text(result: types.ReadResourceResult) -> str:
    """The text of a one-item resource read."""
    assert len(result.contents) == 1, result.contents
    item = result.contents[0]
    assert isinstance(item, types.TextResourceContents), item
    return item.text
