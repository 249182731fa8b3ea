"""An MCP server (the Python SDK's MCPServer) for the tests of what crosses
protocol eras: its tool `hold` reports progress once and then waits until its
request is cancelled; `touch` changes the resource `note://one` and tells its
2026-07-28 subscribers (`subscriptions/listen`) and the sessions that sent
`resources/subscribe` for it that it was updated; `ask` asks the client a question (elicitation) and is recorded like
`hold`; `end_listens` ends every
open `subscriptions/listen` stream gracefully, as a server going away does; `routed`
has a parameter marked `x-mcp-header` and reports the `Mcp-Param-*` headers
it was sent.

`python era_server.py PORT [--modern-only | --handshake-only]` serves
http://127.0.0.1:PORT/mcp, and `GET /state` answers which `hold` calls
started and which were cancelled (their `tag`s), and how many sessions
follow each URI with `resources/subscribe`. The SDK's server is
dual-era; `--modern-only` refuses the handshake eras as a 2026-07-28-only
server does (400 -32020 without the 2026-07-28 version header, GET/DELETE
405), and `--handshake-only` refuses 2026-07-28 requests as a 2025-11-25
server does (400, the header's version is not one it speaks), so a session
is the only way in. Cancelled means the SDK cancelled the tool's handler:
on `notifications/cancelled` in a session, on the closed request stream in
2026-07-28.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.subscriptions import ListenHandler
from mcp_types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

MODERN = "2026-07-28"

server = MCPServer("cancel-upstream")
STARTED: list[str] = []
CANCELLED: list[str] = []


@server.tool()
async def hold(tag: str, ctx: Context) -> str:
    """Reports progress, then waits (60 s) for its request to be cancelled."""
    STARTED.append(tag)
    await ctx.report_progress(0, 1, "holding")
    try:
        await anyio.sleep(60)
    except anyio.get_cancelled_exc_class():
        CANCELLED.append(tag)
        raise
    return f"held {tag}"


class Answer(BaseModel):
    text: str


@server.tool()
async def ask(tag: str, ctx: Context) -> str:
    """Asks the client a question (elicitation) and waits for its answer."""
    STARTED.append(tag)
    try:
        answer = await ctx.elicit("say something", schema=Answer)
    except anyio.get_cancelled_exc_class():
        CANCELLED.append(tag)
        raise
    return f"{tag}: {answer.action}"


NOTE = {"text": "first"}
# Sessions that sent `resources/subscribe`, by URI and then by session id
# (the handshake eras' way).
SUBSCRIBERS: dict[str, dict[str, Any]] = {}


def _session_id(ctx: Any) -> str:
    return ctx.request.headers.get("mcp-session-id", "") if ctx.request is not None else ""


async def _subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
    SUBSCRIBERS.setdefault(str(params.uri), {})[_session_id(ctx)] = ctx.session
    return EmptyResult()


async def _unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
    SUBSCRIBERS.get(str(params.uri), {}).pop(_session_id(ctx), None)
    return EmptyResult()


server._lowlevel_server.add_request_handler("resources/subscribe", SubscribeRequestParams, _subscribe)
server._lowlevel_server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)


@server.resource("note://one")
def note() -> str:
    """A note that `touch` rewrites."""
    return NOTE["text"]


@server.tool()
async def touch(text: str, ctx: Context) -> str:
    """Rewrites note://one and publishes its update to listen streams."""
    NOTE["text"] = text
    await ctx.notify_resource_updated("note://one")
    for session in list(SUBSCRIBERS.get("note://one", {}).values()):
        await session.send_resource_updated("note://one")
    return "touched"


@server.tool()
async def end_listens() -> str:
    """Ends every open `subscriptions/listen` stream with its final result."""
    entry = server._lowlevel_server._request_handlers["subscriptions/listen"]
    handler = entry.handler
    assert isinstance(handler, ListenHandler), handler
    handler.close()
    return "ended"


@server.tool()
async def routed(
    region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
    ctx: Context,
) -> str:
    """A parameter marked `x-mcp-header`: reports the `Mcp-Param-*` headers it got."""
    headers = ctx.headers or {}
    got = {k.lower(): v for k, v in headers.items() if k.lower().startswith("mcp-param-")}
    return json.dumps({"region": region, "params": got}, sort_keys=True)


@server.tool()
async def echo(text: str) -> str:
    """Says `text` back."""
    return text


async def _answer(send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] = []) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def guarded(app: Any, refuse: str | None) -> Any:
    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["path"] == "/state":
            subscribers = {uri: len(sessions) for uri, sessions in SUBSCRIBERS.items() if sessions}
            await _answer(send, 200, {"started": STARTED, "cancelled": CANCELLED, "subscribers": subscribers})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        modern = headers.get("mcp-protocol-version") == MODERN
        if refuse == "handshake" and scope["method"] in ("GET", "DELETE"):
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"POST")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if refuse == "handshake" and not modern:
            error = {"code": -32020, "message": "Missing MCP-Protocol-Version header"}
            await _answer(send, 400, {"jsonrpc": "2.0", "id": None, "error": error})
            return
        if refuse == "modern" and modern:
            error = {"code": -32600, "message": f"Bad Request: Unsupported protocol version: {MODERN}"}
            await _answer(send, 400, {"jsonrpc": "2.0", "id": None, "error": error})
            return
        await app(scope, receive, send)

    return serve


if __name__ == "__main__":
    port = int(sys.argv[1])
    flags = sys.argv[2:]
    refuse = "handshake" if "--modern-only" in flags else "modern" if "--handshake-only" in flags else None
    uvicorn.run(
        guarded(server.streamable_http_app(json_response=False), refuse),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
