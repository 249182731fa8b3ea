"""The Streamable HTTP front's rules, checked with raw HTTP (httpx2, the HTTP
client the mcp SDK ships with): statuses, headers and bodies, per
/work/shared/MCP-AUTH.md "Streamable HTTP transport"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from support import Gateway

LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
BOTH = "application/json, text/event-stream"


def rpc(method: str, params: dict[str, Any] | None = None, id: int | str | None = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        message["id"] = id
    if params is not None:
        message["params"] = params
    return message


INITIALIZE = rpc(
    "initialize",
    {
        "protocolVersion": LEGACY_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "mcpgate-raw-http-test", "version": "0"},
    },
)


def modern_meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "mcpgate-raw-http-test", "version": "0"},
    }


def messages_of(response: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages in a JSON or SSE response body."""
    ctype = response.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        body = response.json()
        return body if isinstance(body, list) else [body]
    assert ctype.startswith("text/event-stream"), f"unexpected Content-Type {ctype!r}: {response.text[:300]!r}"
    out: list[dict[str, Any]] = []
    for event in response.text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:"))
        if data.strip():
            out.append(json.loads(data))
    return out


def answer_to(response: httpx2.Response, id: int | str) -> dict[str, Any]:
    """The JSON-RPC response with `id` in `response`."""
    for message in messages_of(response):
        if message.get("id") == id and ("result" in message or "error" in message):
            return message
    raise AssertionError(f"no answer to id {id!r} in {response.text[:500]!r}")


def assert_error_body(response: httpx2.Response, *words: str) -> None:
    """The error response explains itself: non-empty, and names one of `words`."""
    text = response.text
    assert text.strip(), f"HTTP {response.status_code} with an empty body"
    lowered = text.lower()
    assert any(w.lower() in lowered for w in words), f"body {text[:300]!r} mentions none of {words}"
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if "jsonrpc" in body:
            assert body["jsonrpc"] == "2.0"
            assert isinstance(body["error"]["code"], int)
            assert body["error"]["message"]


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=30.0, follow_redirects=False) as client:
        yield client


class LegacySession:
    """A raw 2025-11-25 session on one upstream."""

    def __init__(self, http: httpx2.Client, url: str) -> None:
        self.http = http
        self.url = url
        r = http.post(url, json=INITIALIZE, headers={"Accept": BOTH})
        assert r.status_code == 200, f"initialize: HTTP {r.status_code} {r.text[:300]!r}"
        self.init_response = r
        self.result = answer_to(r, 1)["result"]
        self.id = r.headers.get("mcp-session-id")
        assert self.id, f"initialize answered without Mcp-Session-Id: {dict(r.headers)}"
        r = self.post(rpc("notifications/initialized", id=None))
        assert r.status_code == 202, f"notifications/initialized: HTTP {r.status_code} {r.text[:300]!r}"

    def headers(self, **extra: str) -> dict[str, str]:
        h = {
            "Accept": BOTH,
            "Content-Type": "application/json",
            "Mcp-Session-Id": self.id,
            "MCP-Protocol-Version": LEGACY_VERSION,
        }
        h.update({k.replace("_", "-"): v for k, v in extra.items()})
        return h

    def post(self, message: dict[str, Any], **extra: str) -> httpx2.Response:
        return self.http.post(self.url, content=json.dumps(message).encode(), headers=self.headers(**extra))


@pytest.fixture
def session(http: httpx2.Client, gateway: Gateway) -> Iterator[LegacySession]:
    s = LegacySession(http, gateway.url("demo"))
    yield s
    http.delete(s.url, headers=s.headers())


def test_initialize_and_call(session: LegacySession) -> None:
    assert session.result["protocolVersion"] == LEGACY_VERSION
    assert "tools" in session.result["capabilities"]
    r = session.post(rpc("tools/call", {"name": "echo", "arguments": {"text": "raw ✓"}}, id=2))
    assert r.status_code == 200
    answer = answer_to(r, 2)
    assert answer["result"]["content"] == [{"type": "text", "text": "raw ✓"}]


@pytest.mark.parametrize("accept", [None, "application/json", "text/event-stream", "text/html"])
def test_accept_must_name_both_types(http: httpx2.Client, gateway: Gateway, accept: str | None) -> None:
    request = http.build_request(
        "POST", gateway.url("demo"), content=json.dumps(INITIALIZE).encode(), headers={"Content-Type": "application/json"}
    )
    # httpx2 adds `Accept: */*` by default: replace or drop it.
    del request.headers["Accept"]
    if accept is not None:
        request.headers["Accept"] = accept
    r = http.send(request)
    assert r.status_code == 406, f"Accept {accept!r}: HTTP {r.status_code} {r.text[:200]!r}"
    assert_error_body(r, "accept")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_content_type_must_be_json(http: httpx2.Client, gateway: Gateway, ctype: str | None) -> None:
    headers = {"Accept": BOTH}
    if ctype is not None:
        headers["Content-Type"] = ctype
    r = http.post(gateway.url("demo"), content=json.dumps(INITIALIZE).encode(), headers=headers)
    assert r.status_code == 415, f"Content-Type {ctype!r}: HTTP {r.status_code} {r.text[:200]!r}"
    assert_error_body(r, "content-type", "application/json")


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_other_methods_are_405_with_allow(http: httpx2.Client, gateway: Gateway, method: str) -> None:
    r = http.request(method, gateway.url("demo"), content=b"{}", headers={"Accept": BOTH, "Content-Type": "application/json"})
    assert r.status_code == 405, f"{method}: HTTP {r.status_code}"
    allow = {m.strip().upper() for m in r.headers.get("allow", "").split(",")}
    assert "POST" in allow, f"Allow: {r.headers.get('allow')!r}"
    assert method not in allow


def test_request_without_session_is_400(http: httpx2.Client, gateway: Gateway) -> None:
    r = http.post(
        gateway.url("demo"),
        content=json.dumps(rpc("tools/list", id=5)).encode(),
        headers={"Accept": BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": LEGACY_VERSION},
    )
    assert r.status_code == 400, f"HTTP {r.status_code} {r.text[:200]!r}"
    assert_error_body(r, "session", "initialize")


def test_unknown_session_is_404(http: httpx2.Client, gateway: Gateway) -> None:
    r = http.post(
        gateway.url("demo"),
        content=json.dumps(rpc("tools/list", id=5)).encode(),
        headers={
            "Accept": BOTH,
            "Content-Type": "application/json",
            "MCP-Protocol-Version": LEGACY_VERSION,
            "Mcp-Session-Id": "no-such-session-0123456789abcdef",
        },
    )
    assert r.status_code == 404, f"HTTP {r.status_code} {r.text[:200]!r}"
    assert_error_body(r, "session")


@pytest.mark.parametrize("version", ["1999-01-01", "not-a-version", "2025-11-25, 2025-06-18"])
def test_unsupported_protocol_version_is_400(session: LegacySession, version: str) -> None:
    r = session.post(rpc("tools/list", id=6), MCP_Protocol_Version=version)
    assert r.status_code == 400, f"MCP-Protocol-Version {version!r}: HTTP {r.status_code} {r.text[:200]!r}"
    assert_error_body(r, "protocol", "version")


def test_missing_protocol_version_header_is_accepted(session: LegacySession) -> None:
    # Missing MCP-Protocol-Version after initialize means 2025-03-26: still served.
    headers = session.headers()
    del headers["MCP-Protocol-Version"]
    r = session.http.post(session.url, content=json.dumps(rpc("tools/list", id=7)).encode(), headers=headers)
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:200]!r}"
    assert "tools" in answer_to(r, 7)["result"]


@pytest.mark.parametrize("origin", ["http://evil.example", "https://127.0.0.1.evil.example", "null"])
def test_foreign_origin_is_403(http: httpx2.Client, gateway: Gateway, origin: str) -> None:
    r = http.post(
        gateway.url("demo"),
        content=json.dumps(INITIALIZE).encode(),
        headers={"Accept": BOTH, "Content-Type": "application/json", "Origin": origin},
    )
    assert r.status_code == 403, f"Origin {origin!r}: HTTP {r.status_code} {r.text[:200]!r}"
    assert_error_body(r, "origin")
    assert "mcp-session-id" not in r.headers


def test_foreign_host_is_rejected(http: httpx2.Client, gateway: Gateway) -> None:
    # DNS rebinding: a loopback listener must not answer for another host name.
    r = http.post(
        gateway.url("demo"),
        content=json.dumps(INITIALIZE).encode(),
        headers={"Accept": BOTH, "Content-Type": "application/json", "Host": "evil.example"},
    )
    assert r.status_code in (400, 403, 421), f"Host evil.example: HTTP {r.status_code} {r.text[:200]!r}"
    assert "mcp-session-id" not in r.headers


def test_preflight_from_allowed_origin(http: httpx2.Client, gateway: Gateway) -> None:
    origin = gateway.origin
    r = http.options(
        gateway.url("demo"),
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, mcp-session-id, mcp-protocol-version",
        },
    )
    assert 200 <= r.status_code < 300, f"OPTIONS: HTTP {r.status_code} {r.text[:200]!r}"
    assert r.headers.get("access-control-allow-origin") in (origin, "*"), dict(r.headers)
    methods = r.headers.get("access-control-allow-methods", "").upper()
    assert "POST" in methods or methods.strip() == "*", dict(r.headers)
    allowed = r.headers.get("access-control-allow-headers", "").lower()
    assert allowed.strip() == "*" or all(h in allowed for h in ("content-type", "mcp-session-id", "mcp-protocol-version")), (
        dict(r.headers)
    )


def test_allowed_origin_gets_cors_on_post(http: httpx2.Client, gateway: Gateway) -> None:
    origin = gateway.origin
    r = http.post(
        gateway.url("demo"),
        content=json.dumps(INITIALIZE).encode(),
        headers={"Accept": BOTH, "Content-Type": "application/json", "Origin": origin},
    )
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:200]!r}"
    assert r.headers.get("access-control-allow-origin") in (origin, "*"), dict(r.headers)
    # A browser client can read the session id only if it is exposed.
    exposed = r.headers.get("access-control-expose-headers", "").lower()
    assert "mcp-session-id" in exposed or exposed.strip() == "*", dict(r.headers)
    sid = r.headers["mcp-session-id"]
    http.delete(gateway.url("demo"), headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": LEGACY_VERSION})


def test_notification_is_202_without_body(session: LegacySession) -> None:
    r = session.post(rpc("notifications/roots/list_changed", id=None))
    assert r.status_code == 202, f"HTTP {r.status_code} {r.text[:200]!r}"
    assert r.content == b""
    # The session still works afterwards.
    r = session.post(rpc("ping", id=9))
    assert r.status_code == 200
    assert answer_to(r, 9)["result"] == {}


def test_delete_ends_the_session(http: httpx2.Client, gateway: Gateway) -> None:
    s = LegacySession(http, gateway.url("demo"))
    r = http.delete(s.url, headers=s.headers())
    assert r.status_code in (200, 202, 204), f"DELETE: HTTP {r.status_code} {r.text[:200]!r}"
    r = s.post(rpc("tools/list", id=3))
    assert r.status_code == 404, f"after DELETE: HTTP {r.status_code} {r.text[:200]!r}"
    r = http.delete(s.url, headers=s.headers())
    assert r.status_code == 404, f"second DELETE: HTTP {r.status_code}"


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"jsonrpc": "2.0", "id": 1, "method": '])
def test_invalid_json_is_parse_error(session: LegacySession, body: bytes) -> None:
    r = session.http.post(session.url, content=body, headers=session.headers())
    assert r.status_code == 400, f"HTTP {r.status_code} {r.text[:200]!r}"
    assert r.headers.get("content-type", "").startswith("application/json"), dict(r.headers)
    error = r.json()
    assert error["jsonrpc"] == "2.0"
    assert error["id"] is None
    assert error["error"]["code"] == -32700
    assert error["error"]["message"]


def test_invalid_json_before_initialize_is_parse_error(http: httpx2.Client, gateway: Gateway) -> None:
    r = http.post(gateway.url("demo"), content=b"[1, 2", headers={"Accept": BOTH, "Content-Type": "application/json"})
    assert r.status_code == 400, f"HTTP {r.status_code} {r.text[:200]!r}"
    assert r.json()["error"]["code"] == -32700


def test_unknown_upstream_is_404(http: httpx2.Client, gateway: Gateway) -> None:
    r = http.post(
        gateway.url("no-such-upstream"),
        content=json.dumps(INITIALIZE).encode(),
        headers={"Accept": BOTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 404, f"HTTP {r.status_code} {r.text[:200]!r}"


def test_healthz(http: httpx2.Client, gateway: Gateway) -> None:
    r = http.get(f"{gateway.base}/healthz")
    assert r.status_code == 200


# --- 2026-07-28 (stateless) --------------------------------------------------


def modern_post(http: httpx2.Client, url: str, message: dict[str, Any], **headers: str) -> httpx2.Response:
    h = {
        "Accept": BOTH,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN_VERSION,
        "Mcp-Method": message["method"],
    }
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    return http.post(url, content=json.dumps(message).encode(), headers=h)


def test_modern_discover(http: httpx2.Client, gateway: Gateway) -> None:
    r = modern_post(http, gateway.url("demo"), rpc("server/discover", {"_meta": modern_meta()}, id="d1"))
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]!r}"
    assert "mcp-session-id" not in r.headers
    result = answer_to(r, "d1")["result"]
    assert MODERN_VERSION in result["supportedVersions"]
    assert "tools" in result["capabilities"]
    assert isinstance(result["ttlMs"], int) and result["ttlMs"] >= 0
    assert result["cacheScope"] in ("public", "private")


def test_modern_call_without_session(http: httpx2.Client, gateway: Gateway) -> None:
    msg = rpc("tools/call", {"name": "echo", "arguments": {"text": "stateless"}, "_meta": modern_meta()}, id=11)
    r = modern_post(http, gateway.url("demo"), msg, Mcp_Name="echo")
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]!r}"
    result = answer_to(r, 11)["result"]
    assert result["content"] == [{"type": "text", "text": "stateless"}]
    assert result.get("resultType", "complete") == "complete"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Mcp_Name": "summarize"}, "Mcp-Name differs from params.name"),
        ({}, "Mcp-Name missing on tools/call"),
        ({"Mcp_Name": "echo", "Mcp_Method": "tools/list"}, "Mcp-Method differs from method"),
    ],
)
def test_modern_header_mismatch_is_400(
    http: httpx2.Client, gateway: Gateway, headers: dict[str, str], why: str
) -> None:
    msg = rpc("tools/call", {"name": "echo", "arguments": {"text": "x"}, "_meta": modern_meta()}, id=12)
    r = modern_post(http, gateway.url("demo"), msg, **headers)
    assert r.status_code == 400, f"{why}: HTTP {r.status_code} {r.text[:300]!r}"
