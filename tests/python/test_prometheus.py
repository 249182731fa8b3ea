"""Debian's Prometheus scrapes a running mcpgate: the counters of issue 15
arrive through a real scrape and are read back through Prometheus's HTTP API.

scripts/test installs the `prometheus` package with apt-get when it runs as
root; elsewhere this test is skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import _free_port, _mcpgate_bin, _start_gateway, _stop_gateway, _toml_list, _toml_str

PROTOCOL = "2025-11-25"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _rpc(url: str, body: dict[str, Any], session: str | None = None) -> httpx2.Response:
    headers = dict(HEADERS)
    if session:
        headers |= {"mcp-session-id": session, "mcp-protocol-version": PROTOCOL}
    return httpx2.post(url, json=body, headers=headers, timeout=30.0)


def drive(url: str, calls: int) -> None:
    """One session: initialize, then `calls` tools/call of whoami."""
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
        call = {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
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
    config = f"""\
[server]
data_dir = {_toml_str(tmp_path / "gateway-data")}

[metrics]
listen = "127.0.0.1:{metrics_port}"

[auth]
mode = "disabled"

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", demo_data])}
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
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
        prom_log.close()
        _stop_gateway(gw, log)
