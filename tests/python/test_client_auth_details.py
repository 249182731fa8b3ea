"""The authorization details of the current MCP spec in mcpgate's client
(`mcpgate call --non-interactive`, the real binary), against the Python
`mcp` SDK's server behind a bearer check and two authorization servers
mocked at the HTTP level (`client_auth_peers.py`), which record what the
client asks them:

- the initial scope is the 401 challenge's; `refresh_token` is in the DCR
  `grant_types`, and `offline_access` is asked for only of the authorization
  server that lists it (SEP-2207);
- step-up keeps the granted scopes and adds the challenged one;
- when the protected resource names another authorization server, the client
  registers there afresh and signs in; the first server's registration is
  kept under its issuer and used again when the resource moves back (SEP-2352);
- a server without protected-resource metadata (2025-03-26): the
  authorization server at the server's origin, by its RFC 8414 metadata, or
  else the default `/authorize`, `/token` and `/register` there.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import _free_port, _mcpgate_bin

HERE = Path(__file__).resolve().parent


@dataclass
class Peers:
    base: str
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def control(self, **state: Any) -> None:
        req = urllib.request.Request(f"{self.base}/control", data=json.dumps(state).encode(), method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    def log(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.base}/log", timeout=5) as r:
            return json.loads(r.read())


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    ports = [_free_port() for _ in range(3)]
    proc = subprocess.Popen([sys.executable, str(HERE / "client_auth_peers.py"), *map(str, ports)])
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            while True:
                assert proc.poll() is None, "the peers exited"
                assert time.monotonic() < deadline, "the peers did not start"
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.1)
        yield Peers(f"http://127.0.0.1:{ports[0]}", proc)
    finally:
        proc.terminate()
        proc.wait(10)


def call(home: Path, url: str, tool: str, args: dict[str, Any] | None = None) -> str:
    out = subprocess.run(
        [
            str(_mcpgate_bin()),
            "call",
            url,
            "tools/call",
            json.dumps({"name": tool, "arguments": args or {}}),
            "--non-interactive",
        ],
        env={**os.environ, "MCPGATE_HOME": str(home), "MCPGATE_TOKEN_STORE": "file", "MCPGATE_LOG": "info"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["content"][0]["text"]


def asked(log: list[dict[str, Any]], server: str, path: str) -> list[dict[str, Any]]:
    return [e for e in log if e["as"] == server and e["path"] == path]


def scopes(entry: dict[str, Any]) -> list[str]:
    return entry["query"].get("scope", "").split()


def test_scope_offline_access_step_up_and_a_move_to_another_authorization_server(
    peers: Peers, tmp_path: Path
) -> None:
    peers.control(prm="A", challenge_scope="notes:read")
    mark = len(peers.log())
    assert call(tmp_path, peers.url, "read_notes") == "notes: none yet"
    log = peers.log()[mark:]
    [reg] = asked(log, "A", "/register")
    assert "refresh_token" in reg["body"]["grant_types"]
    [auth] = asked(log, "A", "/authorize")
    # The challenge's scope (not every scopes_supported), and offline_access
    # because A lists it.
    assert scopes(auth) == ["notes:read", "offline_access"]

    # Step-up: 403 insufficient_scope for notes:write keeps notes:read.
    mark = len(peers.log())
    assert call(tmp_path, peers.url, "write_note", {"text": "hi"}) == "wrote: hi"
    log = peers.log()[mark:]
    [auth] = asked(log, "A", "/authorize")
    assert set(scopes(auth)) == {"notes:read", "notes:write", "offline_access"}
    assert asked(log, "A", "/register") == []

    # The resource now names B: A's token is refused, and the client registers
    # at B and signs in there — without offline_access, which B does not list.
    peers.control(prm="B")
    mark = len(peers.log())
    assert call(tmp_path, peers.url, "read_notes") == "notes: none yet"
    log = peers.log()[mark:]
    assert len(asked(log, "B", "/register")) == 1
    [auth] = asked(log, "B", "/authorize")
    assert scopes(auth) == ["notes:read"]
    assert asked(log, "A", "/authorize") == [] and asked(log, "A", "/token") == []

    # And back to A: its registration was kept under its issuer.
    peers.control(prm="A")
    mark = len(peers.log())
    assert call(tmp_path, peers.url, "read_notes") == "notes: none yet"
    log = peers.log()[mark:]
    assert asked(log, "A", "/register") == []
    assert len(asked(log, "A", "/authorize")) == 1
    assert asked(log, "B", "/register") == [] and asked(log, "B", "/authorize") == []


@pytest.mark.parametrize("origin_metadata", [True, False])
def test_a_server_without_protected_resource_metadata(peers: Peers, tmp_path: Path, origin_metadata: bool) -> None:
    peers.control(prm=None, origin_metadata=origin_metadata, challenge_scope="notes:read")
    try:
        mark = len(peers.log())
        assert call(tmp_path, peers.url, "read_notes") == "notes: none yet"
        log = peers.log()[mark:]
        assert len(asked(log, "M", "/.well-known/oauth-authorization-server")) == (1 if origin_metadata else 0)
        assert len(asked(log, "M", "/register")) == 1
        assert len(asked(log, "M", "/authorize")) == 1
        assert len(asked(log, "M", "/token")) == 1
        assert [e for e in log if e["as"] in ("A", "B")] == []
    finally:
        peers.control(prm="A", origin_metadata=True)
