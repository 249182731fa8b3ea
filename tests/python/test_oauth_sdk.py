"""The Python MCP SDK's OAuth client (``OAuthClientProvider``) against mcpgate's
built-in authorization server, headless, ending in ``tools/call`` through the
gateway:

- dynamic registration (the SDK registers itself) → authorization URL → the
  test's browser signs in and allows on the real pages → code exchange with
  PKCE and the RFC 9207 ``iss`` check → calls, in the legacy and 2026-07-28 eras;
- refresh: access tokens live 4 s; the SDK refreshes by itself (rotation) and a
  restart of the gateway in the middle (same data directory and port) loses
  nothing: the held token, the refresh token and the registration still work;
- step-up: the upstream requires only ``notes:read``, so the SDK first asks for
  that; ``create_secure_note`` answers 403 ``insufficient_scope`` and the SDK
  re-authorizes for ``notes:read notes:write``;
- client ID metadata documents (CIMD): the SDK's ``client_metadata_url`` on an
  https test server on 127.0.0.1 (its own CA, trusted by the gateway through
  ``SSL_CERT_FILE``), allowed by ``[authserver.cimd] allow_hosts`` in the test
  config only; a document on a host that is not allowed, and one whose
  ``client_id`` is not its URL, are refused without a redirect.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx2
import pytest
from conftest import _free_port, _mcpgate_bin, _toml_str
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from support import (
    LEGACY,
    MODERN,
    Browser,
    Gateway,
    MemoryTokenStorage,
    add_user,
    connect,
    start_gateway_at,
    stop_gateway,
    structured,
)

pytestmark = pytest.mark.anyio

USER, PASSWORD = "alice", "sdk-test correct horse"
ACCESS_TTL_S = 4
# The gateway accepts a token this long past its `exp` (clock skew).
LEEWAY_S = 5


# ---- a CA and an https server for client metadata documents -------------------------


def _make_tls(root: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 and localhost signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcpgate test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = root / "ca.pem", root / "cert.pem", root / "key.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_pem, cert_pem, key_pem


@dataclass
class DocServer:
    """An https server on 127.0.0.1 serving client metadata documents by path."""

    port: int
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetches: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"


def _serve_docs(cert: Path, key: Path) -> tuple[DocServer, ThreadingHTTPServer]:
    state = DocServer(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            state.fetches.append(self.path)
            doc = state.docs.get(self.path)
            body = json.dumps(doc).encode() if doc is not None else b'{"error":"not found"}'
            self.send_response(200 if doc is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server


# ---- the gateway -----------------------------------------------------------------------


@dataclass
class OAuthGateway:
    """The gateway under test, restartable on the same port and data directory."""

    gw: Gateway
    root: Path
    config: str
    listen: str
    data: Path
    env: dict[str, str]
    docs: DocServer

    @property
    def base(self) -> str:
        return self.gw.base

    def url(self, upstream: str = "demo") -> str:
        return self.gw.url(upstream)

    def restart(self) -> None:
        stop_gateway(self.gw)
        self.gw = start_gateway_at(_mcpgate_bin(), self.root, self.config, self.listen, self.data, self.env)


@pytest.fixture(scope="module")
def oauth_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthGateway]:
    binary = _mcpgate_bin()
    root = tmp_path_factory.mktemp("oauth-sdk")
    data = root / "data"
    add_user(binary, data, USER, PASSWORD, "notes:read notes:write")
    ca, cert, key = _make_tls(root)
    docs, doc_server = _serve_docs(cert, key)
    listen = f"127.0.0.1:{_free_port()}"
    config = f"""\
[server]
request_timeout = "30s"

[auth]
mode = "required"

[authserver]
enabled = true
access_token_ttl = "{ACCESS_TTL_S}s"
refresh_grace = "1s"

[authserver.cimd]
# Loopback is refused for client metadata documents unless allowed: only this test's server.
allow_hosts = ["127.0.0.1:{docs.port}"]

[[upstream]]
name = "demo"
command = [{_toml_str(binary)}, "demo-server", "--data-dir", {_toml_str(root / "notes")}]
isolation = "session"
required_scopes = "notes:read"
tool_scopes = {{ "create_*" = "notes:write", "list_secure_notes" = "notes:read" }}
"""
    # The gateway trusts the test CA (rustls reads SSL_CERT_FILE) to fetch documents over https.
    env = {"SSL_CERT_FILE": str(ca)}
    gw = start_gateway_at(binary, root, config, listen, data, env)
    holder = OAuthGateway(gw=gw, root=root, config=config, listen=listen, data=data, env=env, docs=docs)
    try:
        yield holder
    finally:
        stop_gateway(holder.gw)
        doc_server.shutdown()


# ---- the SDK's OAuth client, headless ----------------------------------------------------


@dataclass
class Headless:
    """The SDK's redirect and callback handlers, with the test's browser as the user."""

    browser: Browser
    redirect_uri: str
    authorization_urls: list[str] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)

    async def redirect_handler(self, url: str) -> None:
        self.authorization_urls.append(url)
        self.callbacks.append(await self.browser.authorize(url))

    async def callback_handler(self) -> AuthorizationCodeResult:
        q = parse_qs(urlparse(self.callbacks[-1]).query)
        assert "error" not in q, self.callbacks[-1]
        return AuthorizationCodeResult(code=q["code"][0], state=q["state"][0], iss=q.get("iss", [None])[0])


def _provider(
    og: OAuthGateway, storage: MemoryTokenStorage, name: str, client_metadata_url: str | None = None
) -> tuple[OAuthClientProvider, Headless]:
    redirect_uri = f"http://127.0.0.1:{_free_port()}/callback"
    headless = Headless(Browser(og.base, USER, PASSWORD), redirect_uri)
    provider = OAuthClientProvider(
        server_url=og.url(),
        client_metadata=OAuthClientMetadata(
            client_name=name,
            redirect_uris=[redirect_uri],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=headless.redirect_handler,
        callback_handler=headless.callback_handler,
        client_metadata_url=client_metadata_url,
    )
    return provider, headless


def _client(
    og: OAuthGateway, provider: OAuthClientProvider, mode: str = LEGACY, seen: list[tuple[int, str]] | None = None
) -> Any:
    """An SDK client whose HTTP client authenticates with `provider`; every response's
    status and `WWW-Authenticate` is appended to `seen`."""

    async def record(response: httpx2.Response) -> None:
        if seen is not None:
            seen.append((response.status_code, response.headers.get("www-authenticate", "")))

    http = httpx2.AsyncClient(auth=provider, timeout=30.0, event_hooks={"response": [record]})
    return connect(streamable_http_client(og.url(), http_client=http), mode)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def _scopes(scope: str | None) -> set[str]:
    """The scopes that matter here (offline_access only asks for a refresh token)."""
    return set((scope or "").split()) - {"offline_access"}


async def _status_with(og: OAuthGateway, access_token: str) -> int:
    """The HTTP status of an initialize presenting `access_token`."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    async with httpx2.AsyncClient(timeout=10.0) as http:
        r = await http.post(
            og.url(),
            json=body,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json, text/event-stream"},
        )
        return r.status_code


# ---- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [LEGACY, MODERN])
async def test_dcr_then_calls(oauth_gateway: OAuthGateway, mode: str) -> None:
    storage = MemoryTokenStorage()
    provider, headless = _provider(oauth_gateway, storage, f"python sdk dcr {mode}")
    async with _client(oauth_gateway, provider, mode) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == USER
        notes = structured(await client.call_tool("list_secure_notes", {}))
        assert isinstance(notes, dict), notes

    # The SDK registered itself (DCR) and the user went through both pages once.
    assert storage.client_info is not None and not storage.client_info.client_id.startswith("http")
    assert headless.browser.pages == ["login", "consent"], headless.browser.pages
    assert f"python sdk dcr {mode}" in headless.browser.consent_html[0]
    q = _query(headless.authorization_urls[0])
    assert q["code_challenge_method"] == "S256" and q["client_id"] == storage.client_info.client_id
    assert q["resource"].rstrip("/") == oauth_gateway.url(), q
    # The challenge asked for the upstream's required scope only (the SDK adds
    # offline_access, which the authorization server advertises, to get a refresh token).
    assert _scopes(q["scope"]) == {"notes:read"}, q
    assert _query(headless.callbacks[0])["iss"] == oauth_gateway.base
    assert storage.tokens is not None and storage.tokens.refresh_token
    await headless.browser.aclose()


async def test_refresh_and_a_restart_in_the_middle(oauth_gateway: OAuthGateway) -> None:
    storage = MemoryTokenStorage()
    provider, headless = _provider(oauth_gateway, storage, "python sdk refresh")
    async with _client(oauth_gateway, provider) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == USER
    first = storage.tokens
    issued_at = time.monotonic()
    assert first is not None and first.expires_in == ACCESS_TTL_S, first

    # The gateway restarts (same data dir and port): keys, grant and registration are kept.
    oauth_gateway.restart()
    async with _client(oauth_gateway, provider) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == USER

    # After expiry the SDK refreshes by itself; the refresh token rotates.
    time.sleep(max(0.0, issued_at + ACCESS_TTL_S + 0.5 - time.monotonic()))
    writes = storage.token_writes
    async with _client(oauth_gateway, provider) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == USER
        assert structured(await client.call_tool("list_secure_notes", {})) is not None
    assert storage.token_writes > writes, "the SDK refreshed"
    assert storage.tokens.access_token != first.access_token
    assert storage.tokens.refresh_token != first.refresh_token, "refresh tokens rotate"
    assert len(headless.authorization_urls) == 1, "no second sign-in: refresh did it"
    assert headless.browser.pages == ["login", "consent"]

    # The first access token is refused once past its expiry and the skew allowance
    # (whole seconds: `exp` and the verifier's clock are truncated, hence the extra second).
    time.sleep(max(0.0, issued_at + ACCESS_TTL_S + LEEWAY_S + 1.2 - time.monotonic()))
    assert await _status_with(oauth_gateway, first.access_token) == 401
    # The rotated-away refresh token is refused too (past the 1 s grace window) …
    async with httpx2.AsyncClient() as http:
        r = await http.post(
            f"{oauth_gateway.base}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first.refresh_token,
                "client_id": storage.client_info.client_id,
            },
        )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    await headless.browser.aclose()


async def test_step_up_to_notes_write(oauth_gateway: OAuthGateway) -> None:
    storage = MemoryTokenStorage()
    provider, headless = _provider(oauth_gateway, storage, "python sdk step-up")
    seen: list[tuple[int, str]] = []
    async with _client(oauth_gateway, provider, seen=seen) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == USER
        assert _scopes(storage.tokens.scope) == {"notes:read"}, storage.tokens
        created = structured(
            await client.call_tool("create_secure_note", {"title": "stepped up", "content": "via 403 and consent"})
        )
        assert "stepped up" in json.dumps(created)
        listed = structured(await client.call_tool("list_secure_notes", {}))
        assert "stepped up" in json.dumps(listed)
    # The SDK saw the 403 step-up challenge naming every scope still needed.
    forbidden = [w for status, w in seen if status == 403]
    assert forbidden and 'error="insufficient_scope"' in forbidden[0] and "notes:write" in forbidden[0], seen
    # Two authorizations: the first for notes:read, the second for the union.
    assert len(headless.authorization_urls) == 2, headless.authorization_urls
    assert _scopes(_query(headless.authorization_urls[1])["scope"]) == {"notes:read", "notes:write"}
    assert _scopes(storage.tokens.scope) == {"notes:read", "notes:write"}
    # Still signed in: the second time only the consent page.
    assert headless.browser.pages == ["login", "consent", "consent"], headless.browser.pages
    await headless.browser.aclose()


def _cimd_doc(url: str, name: str, redirect_uri: str) -> dict[str, Any]:
    return {
        "client_id": url,
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }


async def test_cimd_client_metadata_url(oauth_gateway: OAuthGateway) -> None:
    docs = oauth_gateway.docs
    url = docs.url("/clients/python-sdk.json")
    storage = MemoryTokenStorage()
    provider, headless = _provider(oauth_gateway, storage, "python sdk cimd", client_metadata_url=url)
    docs.docs["/clients/python-sdk.json"] = _cimd_doc(url, "Python SDK via CIMD", headless.redirect_uri)
    fetched = len(docs.fetches)
    async with _client(oauth_gateway, provider) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == USER
    # No registration: the client ID is the document's URL, fetched by the gateway.
    assert storage.client_info.client_id == url
    assert _query(headless.authorization_urls[0])["client_id"] == url
    assert docs.fetches[fetched:], "the gateway fetched the document"
    consent = headless.browser.consent_html[0]
    assert "Python SDK via CIMD" in consent, consent
    # The refresh grant works for the CIMD client too.
    time.sleep(ACCESS_TTL_S + 0.5)
    writes = storage.token_writes
    async with _client(oauth_gateway, provider) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == USER
    assert storage.token_writes > writes
    await headless.browser.aclose()


async def test_cimd_refusals_never_redirect(oauth_gateway: OAuthGateway) -> None:
    docs = oauth_gateway.docs
    redirect = "http://127.0.0.1:5555/callback"
    good = docs.url("/clients/ok.json")
    docs.docs["/clients/ok.json"] = _cimd_doc(good, "ok", redirect)
    # `localhost` resolves to loopback and is not in allow_hosts (only 127.0.0.1:PORT is).
    not_allowed = docs.url("/clients/ok.json", host="localhost")
    docs.docs["/clients/liar.json"] = _cimd_doc("https://elsewhere.example/client.json", "liar", redirect)
    liar = docs.url("/clients/liar.json")
    params = {
        "response_type": "code",
        "redirect_uri": redirect,
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    async with httpx2.AsyncClient(follow_redirects=False) as http:
        for client_id, why in [(not_allowed, "loopback"), (liar, "client_id")]:
            r = await http.get(f"{oauth_gateway.base}/authorize?" + urlencode({**params, "client_id": client_id}))
            assert r.status_code in (400, 401), (client_id, r.status_code, r.text[:500])
            assert "location" not in r.headers, r.headers
            assert why in r.text, r.text[:2000]
        # A redirect URI the document does not list: an error page, no redirect.
        r = await http.get(
            f"{oauth_gateway.base}/authorize?"
            + urlencode({**params, "client_id": good, "redirect_uri": "http://127.0.0.1:5555/other"})
        )
        assert r.status_code == 400 and "location" not in r.headers, r.text[:500]
        # The good document with its own redirect URI goes on to the login page.
        r = await http.get(f"{oauth_gateway.base}/authorize?" + urlencode({**params, "client_id": good}))
        assert r.status_code == 303 and "/login" in r.headers["location"], (r.status_code, r.headers)
