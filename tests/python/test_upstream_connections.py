"""The gateway's kept connections to an HTTP upstream: sequential calls share
one connection (and the session's notification stream at most one more), and
a connection the upstream closed while idle is never used for a call: the
call after it goes out on a new one and succeeds. The upstream is the Python
SDK's server under uvicorn (keepalive_server.py), which closes idle
connections after one second; the upstream side's sockets are read from
/proc/net/tcp."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from conftest import _free_port, _mcpgate_bin, _start_gateway, _stop_gateway, _toml_str
from support import open_session, post_message

CALLS = 20
# keepalive_server.py closes an idle connection after one second.
IDLE_CLOSE_S = 1


def _established_to(port: int) -> int:
    """Open TCP connections whose server side is `port` on loopback."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def _wait_listening(proc: subprocess.Popen[bytes], port: int, what: str) -> None:
    """Returns once something accepts on 127.0.0.1:`port`; fails if `proc` exits or 30 s pass."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, f"{what} did not listen"
            time.sleep(0.1)


def _start_upstream(port: int, json_response: bool) -> subprocess.Popen[bytes]:
    script = Path(__file__).resolve().parent / "keepalive_server.py"
    args = [sys.executable, str(script), str(port)] + (["--json"] if json_response else [])
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    _wait_listening(proc, port, "keepalive_server.py")
    return proc


def _call(client: httpx2.Client, url: str, session: str, n: int) -> None:
    body = {"jsonrpc": "2.0", "id": 100 + n, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": f"call {n}"}}}
    r = post_message(client, url, body, session)
    assert r.status_code == 200, r.text
    assert f"call {n}" in r.text and '"isError":true' not in r.text.replace(" ", ""), r.text


@pytest.mark.parametrize("json_response", [False, True], ids=["sse", "json"])
def test_calls_share_a_kept_connection_and_survive_the_upstream_closing_it(tmp_path: Path, json_response: bool) -> None:
    port = _free_port()
    upstream = _start_upstream(port, json_response)
    config = f"""\
[server]
data_dir = {_toml_str(tmp_path / "gateway-data")}
worker_threads = 1

[auth]
mode = "disabled"

[[upstream]]
name = "kept"
url = "http://127.0.0.1:{port}/mcp"
transport = "streamable-http"
"""
    gw, log = _start_gateway(_mcpgate_bin(), tmp_path, config)
    try:
        url = gw.url("kept")
        with httpx2.Client(timeout=30.0) as client:
            session = open_session(client, url, "kept")
            for n in range(CALLS):
                _call(client, url, session, n)
                # One connection for the calls, one more at most for the session's GET stream.
                assert _established_to(port) <= 2, f"call {n}: {_established_to(port)} connections to the upstream"
            # The upstream closes the idle call connection; the next calls must not fail on it.
            for round_ in range(3):
                time.sleep(IDLE_CLOSE_S + 0.5)
                _call(client, url, session, CALLS + round_)
            assert _established_to(port) <= 2
        assert "unreachable" not in gw.log_path.read_text(), gw.log_tail()
    finally:
        _stop_gateway(gw, log)
        upstream.terminate()
        upstream.wait(10)
