"""An MCP server that speaks 2026-07-28 natively (the Python SDK's MCPServer,
multi-round-trip requests through its resolvers) for the era tests.

`python modern_only_server.py PORT [--modern-only]` serves
http://127.0.0.1:PORT/mcp. The SDK's server is dual-era; with `--modern-only`
it refuses everything of the handshake eras — a POST without a 2026-07-28
`MCP-Protocol-Version` (an `initialize`) gets 400 -32020, and GET/DELETE 405 —
which is what a 2026-07-28-only server does.

Every tool's answer also reports the request headers the gateway is expected to
send upstream (`Mcp-Param-*`, the client capabilities it declared), so a test
can check them.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, ListRoots, Resolve, Sample
from mcp.types import CreateMessageResult, ListRootsResult, SamplingMessage, TextContent
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

MODERN = "2026-07-28"

server = MCPServer("modern-upstream")


class Confirm(BaseModel):
    confirm: bool


class Colour(BaseModel):
    colour: str


def _ask_confirm(item: str) -> Elicit[Confirm]:
    return Elicit(f"Really delete {item}?", Confirm)


def _ask_colour() -> Elicit[Colour]:
    return Elicit("Which colour?", Colour)


def _ask_summary(text: str) -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=f"Summarize: {text}"))], max_tokens=50)


def _list_roots() -> ListRoots:
    return ListRoots()


def _ask_size(colour: Annotated[Colour, Resolve(_ask_colour)]) -> Elicit[Colour]:
    # Depends on the first answer: asked in a second round.
    return Elicit(f"How big should the {colour.colour} one be?", Colour)


def _seen(ctx: Context) -> dict[str, Any]:
    headers = ctx.headers or {}
    params = {k.lower(): v for k, v in headers.items() if k.lower().startswith("mcp-param-")}
    caps = ctx.client_capabilities
    return {
        "params": params,
        "static_header": headers.get("x-upstream-key"),
        "authorization": "authorization" in {k.lower() for k in headers},
        "capabilities": sorted(caps.model_dump(exclude_none=True)) if caps is not None else [],
        "version": ctx.protocol_version,
        "routing": {"method": headers.get("mcp-method"), "name": headers.get("mcp-name")},
    }


@server.tool()
async def confirm_delete(item: str, ok: Annotated[Confirm, Resolve(_ask_confirm)], ctx: Context) -> str:
    """Asks the user (elicitation) before deleting `item`."""
    return f"deleted {item}" if ok.confirm else f"kept {item}"


@server.tool()
async def summarize(text: str, sampled: Annotated[CreateMessageResult, Resolve(_ask_summary)]) -> str:
    """Summarizes `text` with the client's model (sampling)."""
    content = sampled.content
    return f"summary: {content.text if isinstance(content, TextContent) else '?'}"


@server.tool()
async def count_roots(roots: Annotated[ListRootsResult, Resolve(_list_roots)]) -> str:
    """Counts the client's roots (roots/list)."""
    return f"{len(roots.roots)} roots: " + ",".join(str(r.uri) for r in roots.roots)


@server.tool()
async def two_at_once(
    colour: Annotated[Colour, Resolve(_ask_colour)],
    sampled: Annotated[CreateMessageResult, Resolve(lambda: _ask_summary("both"))],
) -> str:
    """Needs an elicitation and a sample, asked together in one round."""
    content = sampled.content
    return f"{colour.colour} + {content.text if isinstance(content, TextContent) else '?'}"


@server.tool()
async def two_rounds(size: Annotated[Colour, Resolve(_ask_size)]) -> str:
    """Asks a colour, then (another round) a size that depends on it."""
    return f"size {size.colour}"


@server.tool()
async def routed(
    region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
    amount: Annotated[int, Field(json_schema_extra={"x-mcp-header": "Amount"})],
    ctx: Context,
) -> str:
    """Reports the Mcp-Param-* headers it was called with."""
    return json.dumps({"region": region, "amount": amount, **_seen(ctx)}, sort_keys=True)


@server.tool()
async def seen(ctx: Context) -> str:
    """Reports what the server saw of the request: headers, capabilities, version."""
    return json.dumps(_seen(ctx), sort_keys=True)


@server.tool()
async def change_tools(ctx: Context) -> str:
    """Tells subscribers the tool list changed."""
    await ctx.notify_tools_changed()
    return "changed"


def modern_only(app: Any) -> Any:
    """Refuses the handshake eras the way a 2026-07-28-only server does."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] in ("GET", "DELETE"):
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"POST")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if headers.get("mcp-protocol-version") != MODERN:
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32020, "message": "Missing MCP-Protocol-Version header"},
                }
            ).encode()
            await send(
                {"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapped


if __name__ == "__main__":
    port = int(sys.argv[1])
    app: Any = server.streamable_http_app(json_response=False)
    if "--modern-only" in sys.argv[2:]:
        inner = app

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            # Lifespan goes to the Starlette app (it runs the session manager).
            if scope["type"] == "lifespan":
                await inner(scope, receive, send)
            else:
                await modern_only(inner)(scope, receive, send)

        app = guarded
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
