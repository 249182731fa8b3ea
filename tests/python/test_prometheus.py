"""Debian's Prometheus scrapes a running mcpgate: every family issue 15 names
arrives through a real scrape, with values the test's traffic produced, read
back through Prometheus's HTTP API. The traffic: MCP calls with an API key
(and one with a wrong key), a client_credentials token from the built-in
authorization server (and a refused one), and an HTTP upstream whose own
client_credentials token the gateway obtains from a token endpoint in the
test. `mcpgate_config_reloads_total` is fed by the reload work (issue 15,
item 6) and asserted with it.

scripts/test installs the `prometheus` package with apt-get when it runs as
root; elsewhere this test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import store
from conftest import _free_port, _mcpgate_bin, _start_gateway, _stop_gateway, _toml_list, _toml_str
from test_traces import Receiver

PROTOCOL = "2025-11-25"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


KEY: dict[str, str] = {}


def _rpc(url: str, body: dict[str, Any], session: str | None = None) -> httpx2.Response:
    headers = dict(HEADERS) | KEY
    if session:
        headers |= {"mcp-session-id": session, "mcp-protocol-version": PROTOCOL}
    return httpx2.post(url, json=body, headers=headers, timeout=30.0)


def drive(url: str, calls: int, tool: str = "whoami") -> None:
    """One session: initialize, then `calls` tools/call of `tool`."""
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "prom", "version": "0"}},
    }
    r = _rpc(url, init)
    assert r.status_code == 200, r.text
    session = r.headers["mcp-session-id"]
    r = _rpc(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    assert r.status_code == 202, r.text
    for i in range(calls):
        call = {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
        r = _rpc(url, call, session)
        assert r.status_code == 200, r.text


def query(api: str, expr: str) -> list[dict[str, Any]]:
    r = httpx2.get(f"{api}/api/v1/query", params={"query": expr}, timeout=5.0)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(api: str, expr: str, want: float, within: float = 60.0) -> float:
    """Polls until `expr` has one sample >= want; returns it."""
    deadline = time.monotonic() + within
    last: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            last = query(api, expr)
        except httpx2.HTTPError:
            last = []
        if len(last) == 1 and float(last[0]["value"][1]) >= want:
            return float(last[0]["value"][1])
        time.sleep(0.5)
    pytest.fail(f"Prometheus never had {expr} >= {want}; last answer: {last}", pytrace=False)


def test_prometheus_scrapes_the_counters(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("Debian's prometheus package is not installed (scripts/test installs it with apt-get as root)")
    binary = _mcpgate_bin()
    demo_data = tmp_path / "demo-data"
    demo_data.mkdir()
    metrics_port = _free_port()
    web = Receiver()
    threading.Thread(target=web.serve_forever, daemon=True).start()
    web_base = f"http://127.0.0.1:{web.server_address[1]}"
    data_dir = tmp_path / "gateway-data"

    def cli(*args: str) -> str:
        done = subprocess.run(
            [binary, *args, "--data-dir", data_dir],
            capture_output=True,
            text=True,
            check=True,
            env=store.apply(dict(os.environ), data_dir),
        )
        return done.stdout.strip()

    KEY["authorization"] = f"Bearer {cli('keys', 'create', '--name', 'prom', '--scopes', '*')}"
    svc_secret = cli("clients", "add", "svc", "--confidential", "--grant-type", "client_credentials", "--client-id", "svc")
    config = f"""\
[server]
data_dir = {_toml_str(data_dir)}

[metrics]
listen = "127.0.0.1:{metrics_port}"

[auth]
mode = "required"

[authserver]
enabled = true

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", demo_data])}

[[upstream]]
name = "web"
url = "{web_base}/mcp"
transport = "streamable-http"
[upstream.credentials]
kind = "client_credentials"
token_url = "{web_base}/token"
client_id = "gw"
client_secret = "gw-secret"
"""
    gw, log = _start_gateway(binary, tmp_path, config)
    prom_port = _free_port()
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        f"""\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mcpgate
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
"""
    )
    prom_log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    prom = subprocess.Popen(
        [
            prometheus,
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=prom_log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    api = f"http://127.0.0.1:{prom_port}"
    try:
        # Prometheus is up and scraping mcpgate before the traffic.
        wait_for(api, 'up{job="mcpgate"}', 1.0)
        drive(gw.url("demo"), calls=3)
        drive(gw.url("web"), calls=1, tool="echo")
        # A wrong key is refused by the guard.
        bad = httpx2.post(gw.url("demo"), json={}, headers=HEADERS | {"authorization": "Bearer mcpgate_wrong"}, timeout=10)
        assert bad.status_code == 401, bad.text
        # The authorization server issues one token and refuses a wrong secret.
        token_url = gw.url("demo").split("/mcp/")[0] + "/token"
        ok = httpx2.post(token_url, data={"grant_type": "client_credentials"}, auth=("svc", svc_secret), timeout=10)
        assert ok.status_code == 200, ok.text
        refused = httpx2.post(token_url, data={"grant_type": "client_credentials"}, auth=("svc", "wrong"), timeout=10)
        assert refused.status_code == 401, refused.text
        calls = wait_for(
            api, 'mcpgate_mcp_requests_total{upstream="demo",method="tools/call",outcome="ok"}', 3.0
        )
        assert calls == 3.0
        init = wait_for(api, 'mcpgate_mcp_requests_total{upstream="demo",method="initialize"}', 1.0)
        assert init == 1.0
        http = wait_for(api, 'sum(mcpgate_http_requests_total{route="/mcp/{name}",status="200"})', 4.0)
        assert http >= 4.0
        # Histograms arrive with their buckets.
        wait_for(api, 'mcpgate_mcp_request_duration_seconds_count{upstream="demo",method="tools/call"}', 3.0)
        overhead = wait_for(api, 'mcpgate_gateway_overhead_seconds_count{upstream="demo",method="tools/call"}', 3.0)
        assert overhead == 3.0
        share = query(api, 'mcpgate_gateway_overhead_seconds_sum{upstream="demo",method="tools/call"}')
        total = query(api, 'mcpgate_mcp_request_duration_seconds_sum{upstream="demo",method="tools/call"}')
        assert 0 < float(share[0]["value"][1]) < float(total[0]["value"][1]), (share, total)
        # One decision per MCP request with the key: 5 to demo, 3 to web.
        assert wait_for(api, 'sum(mcpgate_auth_decisions_total{verifier="api_key",outcome="allowed"})', 8.0) == 8.0
        assert wait_for(api, 'sum(mcpgate_auth_decisions_total{outcome="refused"})', 1.0) >= 1.0
        assert wait_for(api, 'mcpgate_oauth_tokens_issued_total{grant_type="client_credentials"}', 1.0) == 1.0
        assert wait_for(api, 'sum(mcpgate_oauth_failures_total{error="invalid_client"})', 1.0) == 1.0
        assert wait_for(api, 'mcpgate_sessions_active{upstream="demo"}', 1.0) == 1.0
        assert wait_for(api, 'mcpgate_sessions_active{upstream="web"}', 1.0) == 1.0
        assert wait_for(api, 'mcpgate_upstream_children{upstream="demo"}', 1.0) == 1.0
        assert wait_for(api, 'mcpgate_upstream_up{upstream="demo"}', 1.0) == 1.0
        assert wait_for(api, 'mcpgate_upstream_up{upstream="web"}', 1.0) == 1.0
        renewals = 'mcpgate_credential_renewals_total{upstream="web",kind="client_credentials",outcome="ok"}'
        assert wait_for(api, renewals, 1.0) == 1.0
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
        prom_log.close()
        _stop_gateway(gw, log)
        web.shutdown()
