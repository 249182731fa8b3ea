"""The device authorization grant (RFC 8628) end to end.

Neither the Python MCP SDK (2.3) nor rmcp (3.9) implements the device flow, so
the device side is plain httpx2 speaking RFC 8628: it registers (DCR) for the
device_code grant, asks ``/device_authorization`` for a device and user code,
and polls ``/token`` (``authorization_pending``, then ``slow_down`` when it
polls too fast). The user side is the test's browser on the real pages: the
verification URI, the sign-in, the code entry and the approval. The access
token it obtains is then used by the Python SDK client as a bearer header for
``tools/call`` through the gateway. A denied request ends in
``access_denied``; a code cannot be exchanged twice or by another client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import _free_port, _mcpgate_bin, _toml_str
from mcp.client.streamable_http import streamable_http_client
from support import LEGACY, MODERN, Browser, Gateway, add_user, connect, start_gateway_at, stop_gateway, structured

pytestmark = pytest.mark.anyio

USER, PASSWORD = "dora", "device flow pass phrase"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def device_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    binary = _mcpgate_bin()
    root: Path = tmp_path_factory.mktemp("oauth-device")
    data = root / "data"
    add_user(binary, data, USER, PASSWORD, "notes:read notes:write")
    config = f"""\
[server]
request_timeout = "30s"

[auth]
mode = "required"

[authserver]
enabled = true
device_poll_interval = 3

[[upstream]]
name = "demo"
command = [{_toml_str(binary)}, "demo-server", "--data-dir", {_toml_str(root / "notes")}]
isolation = "session"
tool_scopes = {{ "create_*" = "notes:write", "list_secure_notes" = "notes:read" }}
"""
    gw = start_gateway_at(binary, root, config, f"127.0.0.1:{_free_port()}", data)
    try:
        yield gw
    finally:
        stop_gateway(gw)


async def _register(http: httpx2.AsyncClient, base: str, name: str) -> str:
    r = await http.post(
        f"{base}/register",
        json={
            "client_name": name,
            "redirect_uris": ["http://127.0.0.1/unused"],
            "grant_types": [DEVICE_GRANT, "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["client_id"]


async def _start(http: httpx2.AsyncClient, base: str, client_id: str, scope: str) -> dict[str, Any]:
    r = await http.post(
        f"{base}/device_authorization",
        data={"client_id": client_id, "scope": scope, "resource": f"{base}/mcp/demo"},
    )
    assert r.status_code == 200, r.text
    assert r.headers.get("cache-control") == "no-store"
    d = r.json()
    for key in ("device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in", "interval"):
        assert key in d, d
    return d


async def _poll(http: httpx2.AsyncClient, base: str, client_id: str, device_code: str) -> httpx2.Response:
    return await http.post(
        f"{base}/token",
        data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id},
    )


@pytest.mark.parametrize("mode", [LEGACY, MODERN])
async def test_device_flow_then_sdk_tools_call(device_gateway: Gateway, mode: str) -> None:
    base = device_gateway.base
    async with httpx2.AsyncClient(timeout=30.0) as http:
        client_id = await _register(http, base, f"device e2e {mode}")
        d = await _start(http, base, client_id, "notes:read notes:write")
        assert d["verification_uri"] == f"{base}/device", d

        # Before the user acts: authorization_pending; polling again at once: slow_down.
        # The interval is 3 s, not 1: the last poll is stored in whole seconds, so with a
        # 1 s interval a second poll on a loaded machine could fall outside the window.
        r = await _poll(http, base, client_id, d["device_code"])
        assert r.status_code == 400 and r.json()["error"] == "authorization_pending", r.text
        r = await _poll(http, base, client_id, d["device_code"])
        assert r.status_code == 400 and r.json()["error"] == "slow_down", r.text

        # The user: the verification page, sign-in, the code, approval.
        browser = Browser(base, USER, PASSWORD)
        done = await browser.enter_user_code(d["verification_uri"], d["user_code"])
        await browser.aclose()
        assert "connected" in done, done
        # Signed out, the verification page sends the user to sign in first.
        assert browser.pages == ["login", "device", "device-approve", "message"], browser.pages

        # The device polls within its (now longer) interval and gets the tokens.
        token: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while not token:
            assert time.monotonic() < deadline, "the device never got a token"
            time.sleep(d["interval"] + 5.2)
            r = await _poll(http, base, client_id, d["device_code"])
            if r.status_code == 200:
                token = r.json()
            else:
                assert r.json()["error"] in ("authorization_pending", "slow_down"), r.text
        assert r.headers.get("cache-control") == "no-store"
        assert token["token_type"] == "Bearer" and set(token["scope"].split()) >= {"notes:read", "notes:write"}
        assert token.get("refresh_token"), token

        # Single use: the same device code again is invalid_grant.
        r = await _poll(http, base, client_id, d["device_code"])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text

    # The Python SDK with the obtained token as a bearer header: tools/call through the gateway.
    bearer = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=30.0)
    async with connect(streamable_http_client(device_gateway.url("demo"), http_client=bearer), mode) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == USER
        created = structured(
            await client.call_tool("create_secure_note", {"title": f"from a device ({mode})", "content": "rfc 8628"})
        )
        assert "from a device" in str(created)


async def test_device_flow_denied_and_wrong_client(device_gateway: Gateway) -> None:
    base = device_gateway.base
    async with httpx2.AsyncClient(timeout=30.0) as http:
        client_id = await _register(http, base, "device e2e denied")
        other = await _register(http, base, "device e2e other")
        d = await _start(http, base, client_id, "notes:read")

        # Another client cannot use this device code.
        r = await _poll(http, base, other, d["device_code"])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text

        browser = Browser(base, USER, PASSWORD, decision="deny")
        done = await browser.enter_user_code(d["verification_uri_complete"], d["user_code"])
        await browser.aclose()
        assert "denied" in done, done

        time.sleep(d["interval"] + 0.2)
        r = await _poll(http, base, client_id, d["device_code"])
        assert r.status_code == 400 and r.json()["error"] == "access_denied", r.text

        # A wrong user code is refused on the page, which asks for it again.
        browser = Browser(base, USER, PASSWORD)
        page = await browser.enter_user_code(f"{base}/device", "BCDF-GHJK")
        await browser.aclose()
        assert browser.pages[-1] == "device-retry", browser.pages
        assert "unknown" in page, page[:1000]
