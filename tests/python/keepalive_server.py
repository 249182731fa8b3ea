"""An MCP server (Python SDK, Streamable HTTP, served by uvicorn) that closes
an idle keep-alive connection after KEEP_ALIVE_S seconds, as many servers and
load balancers do: a client that keeps connections must notice and not send
on a closed one.

`python keepalive_server.py PORT [--json]` serves http://127.0.0.1:PORT/mcp;
`--json` answers requests with JSON bodies instead of SSE streams.
"""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

KEEP_ALIVE_S = 1

server = MCPServer("keepalive")


@server.tool()
def echo(text: str) -> str:
    """Returns its argument."""
    return text


if __name__ == "__main__":
    port = int(sys.argv[1])
    app = server.streamable_http_app(json_response="--json" in sys.argv[2:])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S)
