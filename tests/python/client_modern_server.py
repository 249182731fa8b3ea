"""An MCP server that speaks only 2026-07-28, for `mcpgate call` and
`mcpgate bridge` as clients: the Python `mcp` SDK's own 2026-07-28 serving
path (its `server/discover`, `_meta` and header validation, and
`input_required` rounds with a sealed `requestState`), behind a front that
refuses every request of the handshake eras the way a 2026-07-28-only server
does — `initialize` without `MCP-Protocol-Version` gets 400 `-32020 Missing
MCP-Protocol-Version header`, a handshake-era version 400 `-32022`.

Every POST's method and routing headers are kept; `GET /seen` returns them.

`python client_modern_server.py PORT` serves http://127.0.0.1:PORT/mcp.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import uvicorn
from mcp.server.mcpserver import Elicit, ListRoots, MCPServer, Resolve, Sample
from mcp_types import CreateMessageResult, ListRootsResult, SamplingMessage, TextContent
from pydantic import BaseModel

MODERN = "2026-07-28"

server = MCPServer("modern-only", instructions="A server of the 2026-07-28 revision only.")


@server.tool()
def echo(message: str) -> str:
    """Echoes the message."""
    return f"echo: {message}"


class Table(BaseModel):
    name: str


class Time(BaseModel):
    hour: int


def ask_name() -> Elicit[Table]:
    return Elicit("Whose name is the table under?", Table)


def ask_hour(table: Annotated[Table, Resolve(ask_name)]) -> Elicit[Time]:
    # Asked only once the name is known: a second round.
    return Elicit(f"What time, {table.name}?", Time)


@server.tool()
def book_table(
    party: int,
    table: Annotated[Table, Resolve(ask_name)],
    time: Annotated[Time, Resolve(ask_hour)],
) -> str:
    """Books a table, asking the user for a name and then a time (two rounds)."""
    return f"booked {party} for {table.name} at {time.hour}:00"


def get_roots() -> ListRoots:
    return ListRoots()


@server.tool()
def my_roots(roots: Annotated[ListRootsResult, Resolve(get_roots)]) -> str:
    """Lists the client's roots."""
    return " ".join(str(r.uri) for r in roots.roots) or "(none)"


def sample_it() -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text="Say hi"))], max_tokens=20)


@server.tool()
def ask_model(answer: Annotated[CreateMessageResult, Resolve(sample_it)]) -> str:
    """Asks the client's model to say hi."""
    content = answer.content
    return f"the model said: {content.text if isinstance(content, TextContent) else content}"


SEEN: list[dict[str, Any]] = []


def modern_only(app: Any) -> Any:
    """Refuses what a 2026-07-28-only server does not serve; records the rest."""

    async def front(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"] == "/seen":
            await _reply(send, 200, SEEN)
            return
        if scope["method"] != "POST":
            await _reply(send, 405, {"error": "POST only"}, [(b"allow", b"POST")])
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            msg = json.loads(body)
        except ValueError:
            msg = {}
        SEEN.append(
            {
                "method": msg.get("method"),
                "id": msg.get("id"),
                "version": headers.get("mcp-protocol-version"),
                "mcp-method": headers.get("mcp-method"),
                "mcp-name": headers.get("mcp-name"),
                "meta": (msg.get("params") or {}).get("_meta"),
                "rounds": "requestState" in (msg.get("params") or {}),
            }
        )
        version = headers.get("mcp-protocol-version")
        if version is None:
            error = {"code": -32020, "message": "Missing MCP-Protocol-Version header"}
            await _reply(send, 400, {"jsonrpc": "2.0", "id": msg.get("id"), "error": error})
            return
        if version != MODERN:
            error = {
                "code": -32022,
                "message": "Unsupported protocol version",
                "data": {"supported": [MODERN], "requested": version},
            }
            await _reply(send, 400, {"jsonrpc": "2.0", "id": msg.get("id"), "error": error})
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send)

    return front


async def _reply(send: Any, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    port = int(sys.argv[1])
    app = server.streamable_http_app(json_response=True)
    uvicorn.run(modern_only(app), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
