"""An MCP server (Python SDK, Streamable HTTP) that answers a tool call the
2025-11-25 way of SSE polling: it ends the POST's answer stream after a
progress notification and expects the client to come back with a GET carrying
`Last-Event-ID`, after the `retry:` interval its priming event set.

`python polling_server.py PORT [--handshake-only]` serves
http://127.0.0.1:PORT/mcp; `--handshake-only` refuses 2026-07-28 requests, as a
server of the session era does.
"""

from __future__ import annotations

import itertools
import sys

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.types import JSONRPCMessage

# Short enough for a quick test, long enough that the client really waits; the
# tool pauses well beyond it, so the client is back before the next event
# (the SDK has a window between replay and live events on a resumed stream).
RETRY_MS = 200


class MemoryEventStore(EventStore):
    """Every event of every stream, in order; ids are a counter (this server
    only ever sees the gateway, so guessable ids harm no one here)."""

    def __init__(self) -> None:
        self._events: list[tuple[EventId, StreamId, JSONRPCMessage | None]] = []
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        at = next((i for i, (eid, _, _) in enumerate(self._events) if eid == last_event_id), None)
        if at is None:
            return None
        stream_id = self._events[at][1]
        for event_id, sid, message in self._events[at + 1 :]:
            if sid == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


server = MCPServer("polling")


@server.tool()
async def poll_twice(ctx: Context) -> str:
    """Reports progress, ends the answer stream, reports again, ends the
    resumed stream too, then answers: the client must come back twice."""
    await ctx.report_progress(1, 3, "started")
    await ctx.close_sse_stream()
    await anyio.sleep(1.0)
    await ctx.report_progress(2, 3, "halfway")
    await ctx.close_sse_stream()
    await anyio.sleep(1.0)
    await ctx.report_progress(3, 3, "finishing")
    return "polled to the end"


if __name__ == "__main__":
    port = int(sys.argv[1])
    if "--handshake-only" in sys.argv[2:]:
        # Refuses 2026-07-28 requests as a 2025-11-25 server does (era_server.py).
        import uvicorn
        from era_server import guarded

        app = server.streamable_http_app(event_store=MemoryEventStore(), retry_interval=RETRY_MS)
        uvicorn.run(guarded(app, "modern"), host="127.0.0.1", port=port, log_level="warning")
    else:
        anyio.run(
            lambda: server.run_streamable_http_async(
                host="127.0.0.1", port=port, event_store=MemoryEventStore(), retry_interval=RETRY_MS
            )
        )
