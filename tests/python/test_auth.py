"""The guard with the Python SDK client, in the legacy (initialize + session)
and 2026-07-28 (stateless) eras:

- ``mcpgate serve --demo`` with authentication on: the API key it prints on
  first start (read from its stdout), as ``Authorization: Bearer`` and as
  ``X-API-Key``; 401 without a key; a read-only key created with
  ``mcpgate keys create`` gets the 403 step-up answer for ``create_*``;
- a gateway trusting a JWT issuer whose JWKS a tiny Python HTTP server on
  127.0.0.1 serves: an ES256 token signed here (PyJWT, a dependency of mcp)
  works; expired and wrong-audience tokens get 401.

Every response the client receives is recorded (httpx2 event hook), so the
status codes and ``WWW-Authenticate`` challenges the SDK saw are checked, not
just that something failed.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
import store
from conftest import _free_port, _mcpgate_bin, _stop_gateway, _toml_str
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from mcp.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from support import DEMO_TOOLS, LEGACY, MODERN, READ_TIMEOUT_S, Gateway, connect, structured

pytestmark = pytest.mark.anyio

START_TIMEOUT_S = 60.0


@pytest.fixture(params=[LEGACY, MODERN])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


# ---- starting gateways --------------------------------------------------------


def _drain(stream: Any, lines: queue.Queue[str | None]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", errors="replace").rstrip("\n"))
    lines.put(None)


def _serve(args: list[str], root: Path, until: str) -> tuple[Gateway, Any]:
    """`mcpgate serve args…`; returns once stdout has a line containing `until`
    and /healthz answers. Every stdout line is kept in `Gateway.stdout_lines`."""
    log_path = root / "mcpgate.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by _stop_gateway
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
    data_dir = store.data_dir_of(args)
    if data_dir is not None:
        env = store.apply(env, data_dir)
    env.setdefault("RUST_LOG", "info")
    proc = subprocess.Popen(
        [str(_mcpgate_bin()), "serve", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=root,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_drain, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    gw = Gateway(base="", port=0, proc=proc, log_path=log_path, config_path=root / "mcpgate.toml", stdout_lines=seen)

    def fail(why: str) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
        pytest.fail(f"{why}\nstdout: {seen!r}\nstderr:\n{gw.log_tail()}", pytrace=False)

    deadline = time.monotonic() + START_TIMEOUT_S
    while not any(until in line for line in seen):
        if time.monotonic() > deadline:
            fail(f"mcpgate printed no {until!r} within {START_TIMEOUT_S:.0f} s")
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                fail(f"mcpgate exited with status {proc.returncode}")
            continue
        if line is None:
            fail(f"mcpgate closed stdout (status {proc.poll()})")
            break
        seen.append(line)
    listening = next(line for line in seen if line.startswith("mcpgate: listening on "))
    gw.base = listening.removeprefix("mcpgate: listening on ").strip().rstrip("/")
    gw.port = int(gw.base.rsplit(":", 1)[1])
    while True:
        try:
            if httpx2.get(f"{gw.base}/healthz", timeout=2.0).status_code == 200:
                break
        except httpx2.HTTPError:
            pass
        if time.monotonic() > deadline:
            fail("/healthz never answered 200")
        time.sleep(0.1)
    return gw, log


def _create_key(data_dir: Path, name: str, scopes: str) -> str:
    out = subprocess.run(
        [str(_mcpgate_bin()), "keys", "create", "--name", name, "--scopes", scopes, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
        env=store.apply(dict(os.environ), data_dir),
    )
    key = out.stdout.strip()
    assert key.startswith("mcpg_") and "\n" not in key, out
    return key


@dataclass
class AuthDemo:
    gw: Gateway
    key: str  # printed by the first start: notes:read notes:write, subject demo-user
    reader: str  # notes:read only, subject "reader"

    @property
    def url(self) -> str:
        return self.gw.url("demo")


@pytest.fixture(scope="module")
def auth_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthDemo]:
    """`mcpgate serve --demo` (authentication on) with a fresh data directory."""
    root = tmp_path_factory.mktemp("auth-demo")
    data = root / "data"
    gw, log = _serve(["--demo", "--listen", "127.0.0.1:0", "--data-dir", str(data)], root, "Stop with Ctrl-C")
    try:
        lines = gw.stdout_lines
        at = next(i for i, line in enumerate(lines) if "Your demo API key" in line)
        key = lines[at + 1].strip()
        assert key.startswith("mcpg_") and len(key) >= 37, lines
        reader = _create_key(data, "reader", "notes:read")
        yield AuthDemo(gw=gw, key=key, reader=reader)
    finally:
        _stop_gateway(gw, log)


# ---- clients that present credentials and record the answers -------------------


@dataclass
class Seen:
    """One HTTP response the SDK client received."""

    status: int
    www_authenticate: str
    body: Any


@asynccontextmanager
async def client_as(url: str, mode: str, headers: dict[str, str], seen: list[Seen] | None = None) -> AsyncIterator[Client]:
    """A Python SDK client for `url` sending `headers` on every request."""

    async def record(response: httpx2.Response) -> None:
        if seen is None:
            return
        body: Any = None
        if response.status_code >= 400:
            await response.aread()
            try:
                body = json.loads(response.content)
            except ValueError:
                body = response.text
        seen.append(Seen(response.status_code, response.headers.get("www-authenticate", ""), body))

    async with httpx2.AsyncClient(
        headers=headers,
        timeout=httpx2.Timeout(30.0, read=300.0),
        event_hooks={"response": [record]},
    ) as http:
        async with connect(streamable_http_client(url, http_client=http), mode) as client:
            yield client


@contextmanager
def mcp_error() -> Iterator[list[MCPError]]:
    """Expects the block to fail with an MCPError (possibly inside exception groups)."""
    found: list[MCPError] = []
    try:
        yield found
    except BaseException as error:  # noqa: BLE001 - re-raised unless it is the expected error
        pending: list[BaseException] = [error]
        while pending:
            e = pending.pop()
            if isinstance(e, MCPError):
                found.append(e)
            elif isinstance(e, BaseExceptionGroup):
                pending.extend(e.exceptions)
        if not found:
            raise
    else:
        pytest.fail("the client was not refused")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refusals(seen: list[Seen], status: int) -> list[Seen]:
    return [s for s in seen if s.status == status]


def init_request() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "mcpgate-e2e-raw", "version": "0"},
        },
    }


def raw_post(url: str, headers: dict[str, str], body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        url,
        headers={"accept": "application/json, text/event-stream", "content-type": "application/json", **headers},
        content=json.dumps(body),
        timeout=READ_TIMEOUT_S,
    )


# ---- API keys against the demo -------------------------------------------------


async def test_printed_key_as_bearer_and_x_api_key(auth_demo: AuthDemo, mode: str) -> None:
    content = f"python {mode} {uuid.uuid4()}"
    async with client_as(auth_demo.url, mode, bearer(auth_demo.key)) as client:
        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == DEMO_TOOLS
        me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "demo-user", me
        note = structured(await client.call_tool("create_secure_note", {"title": mode, "content": content}))
        listed = structured(await client.call_tool("list_secure_notes", {}))
        assert any(n["id"] == note["id"] and n["content"] == content for n in listed["notes"]), listed
    async with client_as(auth_demo.url, mode, {"X-API-Key": auth_demo.key}) as client:
        me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "demo-user", me
        listed = structured(await client.call_tool("list_secure_notes", {}))
        assert any(n["content"] == content for n in listed["notes"]), listed


async def test_no_key_is_401_with_a_bearer_challenge(auth_demo: AuthDemo, mode: str) -> None:
    seen: list[Seen] = []
    with mcp_error():
        async with client_as(auth_demo.url, mode, {}, seen) as client:
            await client.list_tools()
    got = refusals(seen, 401)
    assert got, [s.status for s in seen]
    for s in got:
        assert s.www_authenticate.startswith("Bearer "), s
        assert s.body["error"] == "unauthorized", s
        assert "Authorization: Bearer" in s.body["error_description"], s
    assert not [s for s in seen if s.status < 300], "something was answered without a key"

    # A wrong key: 401 invalid_token, the key not echoed.
    wrong = "mcpg_" + "x" * 40
    r = raw_post(auth_demo.url, bearer(wrong), init_request())
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token", r.text
    assert wrong not in r.text and wrong not in r.headers.get("www-authenticate", "")


async def test_read_only_key_gets_the_step_up_answer(auth_demo: AuthDemo, mode: str) -> None:
    seen: list[Seen] = []
    async with client_as(auth_demo.url, mode, bearer(auth_demo.reader), seen) as client:
        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == DEMO_TOOLS - {"create_secure_note"}
        me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "reader", me
        listed = structured(await client.call_tool("list_secure_notes", {}))
        assert not any(n["content"].startswith("python ") for n in listed["notes"]), listed
        with mcp_error():
            await client.call_tool("create_secure_note", {"title": "x", "content": "y"})
    forbidden = refusals(seen, 403)
    assert len(forbidden) == 1, [(s.status, s.body) for s in seen]
    s = forbidden[0]
    assert s.www_authenticate.startswith("Bearer "), s
    assert 'error="insufficient_scope"' in s.www_authenticate, s
    assert 'scope="notes:write"' in s.www_authenticate, s
    assert s.body["error"] == "insufficient_scope", s
    assert "notes:write" in s.body["error_description"], s


async def test_legacy_sse_with_a_key(auth_demo: AuthDemo) -> None:
    async with connect(sse_client(f"{auth_demo.url}/sse", headers=bearer(auth_demo.key), timeout=READ_TIMEOUT_S), LEGACY) as client:
        me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "demo-user", me
    r = httpx2.get(f"{auth_demo.url}/sse", headers={"accept": "text/event-stream"}, timeout=READ_TIMEOUT_S)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"


# ---- JWT from a JWKS served here -----------------------------------------------


class Issuer:
    """An ES256 key and a JWKS server on 127.0.0.1."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = f"py-{uuid.uuid4().hex[:8]}"
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        body = json.dumps({"keys": [jwk]}).encode()
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                issuer.fetches += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class JwtGateway:
    gw: Gateway
    issuer: Issuer
    resource: str

    @property
    def url(self) -> str:
        return self.gw.url("notes")

    def token(self, *, aud: str | None = None, scope: str = "notes:read notes:write", exp_in: int = 300) -> str:
        now = int(time.time())
        return self.issuer.sign(
            {
                "iss": self.issuer.url,
                "aud": aud or self.resource,
                "sub": "py-alice",
                "client_id": "python-e2e",
                "scope": scope,
                "iat": now - 5,
                "exp": now + exp_in,
            }
        )


@pytest.fixture(scope="module")
def jwt_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwtGateway]:
    """A gateway trusting one JWT issuer, in front of the demo (one child per session)."""
    issuer = Issuer()
    root = tmp_path_factory.mktemp("auth-jwt")
    notes = root / "notes-data"
    notes.mkdir()
    port = _free_port()
    resource = f"http://127.0.0.1:{port}/mcp/notes"
    binary = _mcpgate_bin()
    config = f"""\
[server]
request_timeout = "30s"

[[auth.jwt]]
name = "python-idp"
issuer = {_toml_str(issuer.url)}
audience = {_toml_str(resource)}
jwks_uri = {_toml_str(issuer.url + "/jwks.json")}
allow_http = true
algorithms = ["ES256"]

[[upstream]]
name = "notes"
command = [{_toml_str(binary)}, "demo-server", "--data-dir", {_toml_str(notes)}]
isolation = "session"
tool_scopes = {{ "create_*" = "notes:write", "list_secure_notes" = "notes:read" }}
"""
    (root / "mcpgate.toml").write_text(config)
    gw, log = _serve(
        ["--config", str(root / "mcpgate.toml"), "--listen", f"127.0.0.1:{port}", "--data-dir", str(root / "data")],
        root,
        "mcpgate: listening on ",
    )
    try:
        assert gw.base == f"http://127.0.0.1:{port}"
        yield JwtGateway(gw=gw, issuer=issuer, resource=resource)
    finally:
        _stop_gateway(gw, log)
        issuer.close()


async def test_jwt_signed_here_is_accepted(jwt_gateway: JwtGateway, mode: str) -> None:
    content = f"jwt {mode} {uuid.uuid4()}"
    async with client_as(jwt_gateway.url, mode, bearer(jwt_gateway.token())) as client:
        tools = await client.list_tools()
        assert {t.name for t in tools.tools} == DEMO_TOOLS
        me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "py-alice", me
        note = structured(await client.call_tool("create_secure_note", {"title": "jwt", "content": content}))
        listed = structured(await client.call_tool("list_secure_notes", {}))
        assert any(n["id"] == note["id"] and n["content"] == content for n in listed["notes"]), listed
    assert jwt_gateway.issuer.fetches >= 1


async def test_jwt_metadata_and_challenge(jwt_gateway: JwtGateway, mode: str) -> None:
    metadata_url = f"{jwt_gateway.gw.base}/.well-known/oauth-protected-resource/mcp/notes"
    meta = httpx2.get(metadata_url, timeout=READ_TIMEOUT_S).json()
    assert meta["resource"] == jwt_gateway.resource, meta
    assert meta["authorization_servers"] == [jwt_gateway.issuer.url], meta
    seen: list[Seen] = []
    with mcp_error():
        async with client_as(jwt_gateway.url, mode, {}, seen) as client:
            await client.list_tools()
    got = refusals(seen, 401)
    assert got, [s.status for s in seen]
    assert all(f'resource_metadata="{metadata_url}"' in s.www_authenticate for s in got), got


@pytest.mark.parametrize(
    ("kind", "message"),
    [("expired", "Token expired at "), ("audience", "Token audience does not include")],
)
async def test_bad_jwt_is_401(jwt_gateway: JwtGateway, mode: str, kind: str, message: str) -> None:
    if kind == "expired":
        token = jwt_gateway.token(exp_in=-600)  # beyond the 60 s leeway
    else:
        token = jwt_gateway.token(aud=f"{jwt_gateway.gw.base}/mcp/elsewhere")
    seen: list[Seen] = []
    with mcp_error():
        async with client_as(jwt_gateway.url, mode, bearer(token), seen) as client:
            await client.list_tools()
    got = refusals(seen, 401)
    assert got, [(s.status, s.body) for s in seen]
    for s in got:
        assert s.body["error"] == "invalid_token", s
        assert message in s.body["error_description"], s
        assert 'error="invalid_token"' in s.www_authenticate, s
    assert not [s for s in seen if s.status < 300], "a bad token was answered"


async def test_jwt_without_write_scope_gets_the_step_up_answer(jwt_gateway: JwtGateway, mode: str) -> None:
    seen: list[Seen] = []
    async with client_as(jwt_gateway.url, mode, bearer(jwt_gateway.token(scope="notes:read")), seen) as client:
        tools = await client.list_tools()
        assert "create_secure_note" not in {t.name for t in tools.tools}
        with mcp_error():
            await client.call_tool("create_secure_note", {"title": "x", "content": "y"})
    forbidden = refusals(seen, 403)
    assert len(forbidden) == 1, [(s.status, s.body) for s in seen]
    www = forbidden[0].www_authenticate
    assert 'error="insufficient_scope"' in www and 'scope="notes:write"' in www, www
    assert "resource_metadata=" in www, www
