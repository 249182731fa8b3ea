"""An HTTPS upstream behind a private certificate authority, speaking HTTP/2:
with `ca_file` naming that authority the gateway reaches it, negotiates HTTP/2
by ALPN and carries every call (in each client era, concurrent ones too) over
one connection; without `ca_file` it refuses the certificate and says why.
The upstream is the Python SDK's server under hypercorn (tls_h2_server.py);
trustme makes the authority and the server's certificate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import pytest
import trustme
from conftest import _free_port, _mcpgate_bin, _start_gateway, _stop_gateway, _toml_str
from support import MODES, connect, ok_text, post_message
from test_upstream_connections import _established_to, _wait_listening

pytestmark = pytest.mark.anyio


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


class Upstream:
    def __init__(self, tmp_path: Path) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        self.ca_file = tmp_path / "private-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert_file, key_file = tmp_path / "upstream.pem", tmp_path / "upstream.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        self.port = _free_port()
        script = Path(__file__).resolve().parent / "tls_h2_server.py"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(self.port), str(cert_file), str(key_file)], stdin=subprocess.DEVNULL
        )
        _wait_listening(self.proc, self.port, "tls_h2_server.py")

    def config(self, tmp_path: Path, ca_file: Path | None) -> str:
        trust = f"ca_file = {_toml_str(ca_file)}\n" if ca_file else ""
        return f"""\
[server]
data_dir = {_toml_str(tmp_path / "gateway-data")}
worker_threads = 1

[auth]
mode = "disabled"

[[upstream]]
name = "private"
url = "https://127.0.0.1:{self.port}/mcp"
{trust}"""

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def upstream(tmp_path: Path):
    u = Upstream(tmp_path)
    yield u
    u.stop()


async def test_a_private_ca_upstream_is_reached_over_http2_on_one_connection(
    tmp_path: Path, upstream: Upstream, mode: str
) -> None:
    gw, log = _start_gateway(_mcpgate_bin(), tmp_path, upstream.config(tmp_path, upstream.ca_file))
    try:
        async with connect(gw.url("private"), mode) as client:
            assert {t.name for t in (await client.list_tools()).tools} == {"echo", "http_version"}
            assert ok_text(await client.call_tool("http_version", {})) == "2"
            results: dict[int, str] = {}

            async def call(n: int) -> None:
                results[n] = ok_text(await client.call_tool("echo", {"text": f"call {n} ✓"}))

            async with anyio.create_task_group() as tg:
                for n in range(20):
                    tg.start_soon(call, n)
            assert results == {n: f"call {n} ✓" for n in range(20)}
        # HTTP/2 multiplexes: one event loop, one connection for every call and stream.
        assert _established_to(upstream.port) == 1, f"{_established_to(upstream.port)} connections to the upstream"
    finally:
        _stop_gateway(gw, log)


def test_without_ca_file_the_private_ca_is_refused_and_the_log_says_why(tmp_path: Path, upstream: Upstream) -> None:
    gw, log = _start_gateway(_mcpgate_bin(), tmp_path, upstream.config(tmp_path, None))
    try:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
        }
        with httpx2.Client(timeout=30.0) as client:
            r = post_message(client, gw.url("private"), init)
        assert r.status_code == 502, r.text
        assert "invalid peer certificate: UnknownIssuer" in r.text, r.text
        # The operator's line: the upstream and the reason, not its URL.
        line = next((ln for ln in gw.log_path.read_text().splitlines() if "upstream unreachable" in ln), None)
        assert line is not None, gw.log_tail()
        assert 'upstream=private' in line and "UnknownIssuer" in line and str(upstream.port) not in line, line
    finally:
        _stop_gateway(gw, log)
