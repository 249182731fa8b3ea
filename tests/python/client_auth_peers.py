"""The peers of `test_client_auth_details.py`: a protected MCP server (the
Python `mcp` SDK's server behind an HTTP-level bearer check) and two mock
authorization servers, A and B, mocked at the HTTP level the way a public
IdP would be. Everything the client sends to an authorization server is kept.

`python client_auth_peers.py MCP_PORT A_PORT B_PORT` serves
http://127.0.0.1:MCP_PORT/mcp, and A and B at their ports.

The MCP port also answers:
- `POST /control` with a JSON object changing how the server behaves:
  `prm` ("A", "B" or null: no protected-resource metadata, as a 2025-03-26
  server), `origin_metadata` (with no PRM, whether the server's own origin
  serves RFC 8414 metadata), `challenge_scope` (the `scope` of the 401);
- `GET /log`: every request an authorization server (A, B, or the one at
  the MCP server's origin, "M") received, in order.

A token is good only at the authorization server the server names now, and
only for its scopes: the tool `write_note` needs `notes:write`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from typing import Any
from urllib.parse import parse_qs, urlencode

import uvicorn
from mcp.server.mcpserver import MCPServer

LOG: list[dict[str, Any]] = []
TOKENS: dict[str, dict[str, Any]] = {}
CODES: dict[str, dict[str, Any]] = {}
STATE: dict[str, Any] = {"prm": "A", "origin_metadata": True, "challenge_scope": "notes:read"}
COUNTER = itertools.count(1)
ISSUERS: dict[str, str] = {}

server = MCPServer("protected")


@server.tool()
def read_notes() -> str:
    """Reads notes (needs notes:read)."""
    return "notes: none yet"


@server.tool()
def write_note(text: str) -> str:
    """Writes a note (needs notes:write)."""
    return f"wrote: {text}"


async def body_of(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def reply(
    send: Any, status: int, body: Any = None, headers: list[tuple[bytes, bytes]] | None = None, form: bool = False
) -> None:
    data = b"" if body is None else json.dumps(body).encode()
    hs = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": hs + (headers or [])})
    await send({"type": "http.response.body", "body": data})


def auth_server(name: str, offline: bool) -> Any:
    """A mock authorization server; `offline`: whether it lists offline_access."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await serve_as(name, offline, scope, receive, send)

    return app


async def serve_as(name: str, offline: bool, scope: dict[str, Any], receive: Any, send: Any) -> None:
    issuer = ISSUERS[name]
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    if path == "/.well-known/oauth-authorization-server":
        if name == "M" and not STATE["origin_metadata"]:
            await reply(send, 404, {"error": "not here"})
            return
        LOG.append({"as": name, "path": path})
        scopes = ["notes:read", "notes:write"] + (["offline_access"] if offline else [])
        await reply(
            send,
            200,
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "registration_endpoint": f"{issuer}/register",
                "scopes_supported": scopes,
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"],
            },
        )
        return
    if path == "/register":
        req = json.loads(await body_of(receive))
        n = next(COUNTER)
        LOG.append({"as": name, "path": path, "body": req})
        await reply(
            send,
            201,
            {
                **req,
                "client_id": f"{name}-client-{n}",
                "token_endpoint_auth_method": "none",
            },
        )
        return
    if path == "/authorize":
        LOG.append({"as": name, "path": path, "query": query})
        code = f"{name}-code-{next(COUNTER)}"
        CODES[code] = {"scope": query.get("scope", ""), "client_id": query.get("client_id")}
        target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query.get("state", ""), "iss": issuer})
        await send({"type": "http.response.start", "status": 302, "headers": [(b"location", target.encode())]})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/token":
        form = {k: v[0] for k, v in parse_qs((await body_of(receive)).decode()).items()}
        LOG.append({"as": name, "path": path, "form": {k: v for k, v in form.items() if k != "code_verifier"}})
        if form.get("grant_type") == "authorization_code":
            granted = CODES.pop(form.get("code", ""), None)
        else:
            granted = TOKENS.get(form.get("refresh_token", ""))
        if granted is None:
            await reply(send, 400, {"error": "invalid_grant"})
            return
        n = next(COUNTER)
        access, refresh = f"{name}-at-{n}", f"{name}-rt-{n}"
        TOKENS[access] = {"as": name, "scope": granted["scope"]}
        TOKENS[refresh] = {"as": name, "scope": granted["scope"]}
        await reply(
            send,
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": refresh,
                "scope": granted["scope"],
            },
            [(b"cache-control", b"no-store")],
        )
        return
    await reply(send, 404, {"error": "not found"})


def protected(app: Any) -> Any:
    """The SDK's MCP app behind a bearer check that speaks RFC 9728 and RFC 6750."""

    async def front(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path = scope["path"]
        origin = ISSUERS["M"]
        if path == "/control":
            STATE.update(json.loads(await body_of(receive)))
            await reply(send, 200, STATE)
            return
        if path == "/log":
            await reply(send, 200, LOG)
            return
        if path.startswith("/.well-known/oauth-protected-resource"):
            if STATE["prm"] is None:
                await reply(send, 404, {"error": "no metadata"})
                return
            await reply(
                send,
                200,
                {
                    "resource": f"{origin}/mcp",
                    "authorization_servers": [ISSUERS[STATE["prm"]]],
                    "scopes_supported": ["notes:read", "notes:write"],
                },
            )
            return
        if path in ("/authorize", "/token", "/register", "/.well-known/oauth-authorization-server"):
            await serve_as("M", False, scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await body_of(receive)
        token = headers.get("authorization", "").removeprefix("Bearer ")
        info = TOKENS.get(token)
        expected = STATE["prm"] or "M"
        metadata = f'resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp"' if STATE["prm"] else ""
        if info is None or info["as"] != expected:
            params = [p for p in (metadata, f'scope="{STATE["challenge_scope"]}"' if STATE["challenge_scope"] else "") if p]
            challenge = "Bearer " + ", ".join(params) if params else "Bearer"
            await reply(send, 401, {"error": "unauthorized"}, [(b"www-authenticate", challenge.encode())])
            return
        try:
            msg = json.loads(body)
        except ValueError:
            msg = {}
        name = (msg.get("params") or {}).get("name")
        if msg.get("method") == "tools/call" and name == "write_note" and "notes:write" not in info["scope"].split():
            params = ", ".join(p for p in ('error="insufficient_scope"', 'scope="notes:write"', metadata) if p)
            await reply(send, 403, {"error": "insufficient_scope"}, [(b"www-authenticate", f"Bearer {params}".encode())])
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


async def main(mcp_port: int, a_port: int, b_port: int) -> None:
    ISSUERS.update(
        {"M": f"http://127.0.0.1:{mcp_port}", "A": f"http://127.0.0.1:{a_port}", "B": f"http://127.0.0.1:{b_port}"}
    )
    app = server.streamable_http_app(json_response=True)
    servers = [
        uvicorn.Server(uvicorn.Config(protected(app), host="127.0.0.1", port=mcp_port, log_level="warning")),
        uvicorn.Server(uvicorn.Config(auth_server("A", True), host="127.0.0.1", port=a_port, log_level="warning", lifespan="off")),
        uvicorn.Server(uvicorn.Config(auth_server("B", False), host="127.0.0.1", port=b_port, log_level="warning", lifespan="off")),
    ]
    await asyncio.gather(*(s.serve() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
