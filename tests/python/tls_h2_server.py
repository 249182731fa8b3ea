"""An MCP server (Python SDK, Streamable HTTP) served by hypercorn over TLS,
offering HTTP/2 and HTTP/1.1 by ALPN, as many public MCP servers behind a CDN
do. Its tool `http_version` answers with the HTTP version of the request that
called it, so a test sees which protocol the gateway spoke.

`python tls_h2_server.py PORT CERT_PEM KEY_PEM` serves https://127.0.0.1:PORT/mcp.
"""

from __future__ import annotations

import asyncio
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("tls-h2")


@server.tool()
def echo(text: str) -> str:
    """Returns its argument."""
    return text


@server.tool()
def http_version(ctx: Context) -> str:
    """The HTTP version of the request that carried this call ("1.1" or "2")."""
    request = ctx.request_context.request
    return str(request.scope.get("http_version")) if request is not None else "unknown"


if __name__ == "__main__":
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile = cert
    config.keyfile = key
    config.alpn_protocols = ["h2", "http/1.1"]
    config.loglevel = "WARNING"
    asyncio.run(serve(server.streamable_http_app(), config))
