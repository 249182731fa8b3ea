"""`[[rate_limit]]` with the Python SDK client against the real binary in
front of the demo server (stdio, one child per session).

Callers are HS256 JWTs signed here. Checked: exactly N of M concurrent tool
calls pass a per-tool token bucket (the rest get JSON-RPC -32029 naming the
rule and the retry time), in the session and 2026-07-28 eras and on the
legacy SSE transport; a request-level rule answers HTTP 429 with
`Retry-After`, `RateLimit-Policy` and a JSON-RPC body; a daily quota allows
exactly N of M concurrent calls, survives a restart of the gateway and is
shared by two gateways on one PostgreSQL database; `get_api_usage` shows the
remaining quota; every refusal is logged and counted in
`mcpgate_rate_limited_total`; `check-config` names the bad table and key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
import store
from conftest import _free_port, _mcpgate_bin, _toml_str
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError
from support import LEGACY, MODERN, READ_TIMEOUT_S, Gateway, connect, start_gateway_at, stop_gateway, structured
from test_auth import bearer, client_as, init_request, raw_post

pytestmark = pytest.mark.anyio

SECRET = "rate-test-secret-0123456789abcdef-0123456789abcdef"
RATE_LIMITED = -32029

RULES = """
[[rate_limit]]
name = "echo-burst"
tool = "echo"
subject = "*"
limit = 3
per = "1m"

[[rate_limit]]
name = "virtual-echo"
upstream = "work"
tool = "demo_echo"
subject = "*"
limit = 2
per = "1m"

[[rate_limit]]
name = "busy-requests"
subject = "busy-*"
limit = 4
per = "1m"

[[rate_limit]]
name = "usage-daily"
tool = "get_api_usage"
subject = "*"
limit = 5
per = "1d"

[[rate_limit]]
name = "counts-daily"
tool = "slow_count"
subject = "*"
limit = 4
quota = true
"""


@pytest.fixture(params=[LEGACY, MODERN])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class LimitsGateway:
    gw: Gateway
    root: Path
    public: str
    metrics: str

    @property
    def url(self) -> str:
        return self.gw.url("demo")

    def token(self, subject: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "rate-test",
            "aud": [f"{self.public}/mcp/demo", f"{self.public}/mcp/work"],
            "sub": subject,
            "scope": "notes:read notes:write",
            "iat": now - 5,
            "exp": now + 600,
        }
        return jwt.encode(claims, SECRET, algorithm="HS256")

    def restart(self) -> None:
        stop_gateway(self.gw)
        self.gw = start_gateway_at(
            _mcpgate_bin(), self.root, self.gw.config_path.read_text(), f"127.0.0.1:{self.gw.port}",
            self.root / "data", {"RATE_TEST_HMAC": SECRET},
        )


def _config(root: Path, public: str, metrics_port: int, extra: str = "") -> str:
    notes = root / "notes-data"
    notes.mkdir(exist_ok=True)
    return f"""\
[server]
public_url = {_toml_str(public)}
request_timeout = "30s"

[[auth.jwt]]
name = "rate-test"
issuer = "rate-test"
audience = [{_toml_str(f"{public}/mcp/demo")}, {_toml_str(f"{public}/mcp/work")}]
hmac_secret_env = "RATE_TEST_HMAC"
algorithms = ["HS256"]

[metrics]
listen = {_toml_str(f"127.0.0.1:{metrics_port}")}

[[upstream]]
name = "demo"
command = [{_toml_str(_mcpgate_bin())}, "demo-server", "--data-dir", {_toml_str(notes)}]
isolation = "session"

[[virtual_server]]
name = "work"
upstreams = ["demo"]
{extra}
{RULES}
"""


def _start(
    root: Path, *, public: str | None = None, extra: str = "", own_store: bool = True, env: dict[str, str] | None = None
) -> LimitsGateway:
    port = _free_port()
    metrics_port = _free_port()
    public = public or f"http://127.0.0.1:{port}"
    config = _config(root, public, metrics_port, extra)
    gw = start_gateway_at(
        _mcpgate_bin(), root, config, f"127.0.0.1:{port}", root / "data", {"RATE_TEST_HMAC": SECRET, **(env or {})},
        own_store=own_store,
    )
    return LimitsGateway(gw=gw, root=root, public=public, metrics=f"http://127.0.0.1:{metrics_port}/metrics")


@pytest.fixture(scope="module")
def limits_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitsGateway]:
    g = _start(tmp_path_factory.mktemp("rate"))
    try:
        yield g
    finally:
        stop_gateway(g.gw)


def _unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


async def _outcomes(client: Any, tool: str, args: dict[str, Any], n: int) -> tuple[list[Any], list[Any]]:
    """`n` concurrent calls; (results, MCPErrors). Anything else fails the test."""
    got = await asyncio.gather(*(client.call_tool(tool, args) for _ in range(n)), return_exceptions=True)
    ok = [g for g in got if not isinstance(g, BaseException)]
    errors = [g for g in got if isinstance(g, MCPError)]
    others = [g for g in got if isinstance(g, BaseException) and not isinstance(g, MCPError)]
    assert not others, others
    return ok, errors


def _limited(errors: list[Any], rule: str, max_retry: int) -> None:
    for e in errors:
        assert e.code == RATE_LIMITED, e
        assert f"Rate limit {rule}" in e.message, e.message
        data = e.data
        assert data["rule"] == rule, data
        assert 1 <= data["retryAfterSeconds"] <= max_retry, data


async def test_exactly_the_limit_of_concurrent_tool_calls_pass(limits_gateway: LimitsGateway, mode: str) -> None:
    subject = _unique("alice")
    async with client_as(limits_gateway.url, mode, bearer(limits_gateway.token(subject))) as client:
        ok, errors = await _outcomes(client, "echo", {"text": "hi"}, 8)
        assert len(ok) == 3 and len(errors) == 5, (ok, errors)
        assert all(not r.is_error for r in ok), ok
        # A bucket of 3 per minute refills one call every 20 s.
        _limited(errors, "echo-burst", 20)
        # Other tools are not under the rule.
        assert not (await client.call_tool("whoami", {})).is_error
    # Another subject has a bucket of its own.
    async with client_as(limits_gateway.url, mode, bearer(limits_gateway.token(_unique("bob")))) as client:
        assert not (await client.call_tool("echo", {"text": "hi"})).is_error
    log = limits_gateway.gw.log_path.read_text(errors="replace")
    refused = [line for line in log.splitlines() if "call refused by rate limit" in line and subject in line]
    assert len(refused) == 5 and 'rule=echo-burst' in refused[0], log[-3000:]
    assert SECRET not in log
    metrics = httpx2.get(limits_gateway.metrics, timeout=10).text
    assert 'mcpgate_rate_limited_total{upstream="demo",rule="echo-burst"}' in metrics, metrics


async def test_a_virtual_server_is_limited_by_its_own_name_and_prefixed_tool(limits_gateway: LimitsGateway) -> None:
    token = limits_gateway.token(_unique("virtual"))
    async with client_as(limits_gateway.gw.url("work"), LEGACY, bearer(token)) as client:
        ok, errors = await _outcomes(client, "demo_echo", {"text": "hi"}, 5)
    assert len(ok) == 2 and len(errors) == 3, (ok, errors)
    _limited(errors, "virtual-echo", 30)
    # The member's own endpoint is under its own rule (echo-burst, 3 a minute), not this one.
    async with client_as(limits_gateway.url, LEGACY, bearer(token)) as client:
        ok, errors = await _outcomes(client, "echo", {"text": "hi"}, 4)
    assert len(ok) == 3 and len(errors) == 1, (ok, errors)
    _limited(errors, "echo-burst", 20)


async def test_legacy_sse_gets_the_refusal_on_its_stream(limits_gateway: LimitsGateway) -> None:
    headers = bearer(limits_gateway.token(_unique("sse")))
    transport = sse_client(f"{limits_gateway.url}/sse", headers=headers, timeout=READ_TIMEOUT_S)
    async with connect(transport, LEGACY) as client:
        ok, errors = await _outcomes(client, "echo", {"text": "hi"}, 5)
    assert len(ok) == 3 and len(errors) == 2, (ok, errors)
    _limited(errors, "echo-burst", 20)


def test_a_request_level_rule_answers_429_with_retry_after(limits_gateway: LimitsGateway) -> None:
    headers = bearer(limits_gateway.token(_unique("busy")))
    first = raw_post(limits_gateway.url, headers, init_request())
    assert first.status_code == 200, first.text
    session = {"mcp-session-id": first.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25", **headers}
    statuses = [first.status_code]
    statuses.append(raw_post(limits_gateway.url, session, {"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code)
    for i in range(2, 6):
        r = raw_post(limits_gateway.url, session, {"jsonrpc": "2.0", "id": i, "method": "tools/list"})
        statuses.append(r.status_code)
    assert statuses[:4] == [200, 202, 200, 200], statuses
    assert statuses[4:] == [429, 429], statuses
    assert 1 <= int(r.headers["retry-after"]) <= 15, r.headers
    assert r.headers["ratelimit-policy"] == '"busy-requests";q=4;w=60', r.headers
    body = r.json()
    assert body["id"] == 5 and body["error"]["code"] == RATE_LIMITED, body
    assert body["error"]["data"]["rule"] == "busy-requests", body
    # Callers the rule does not select are not limited.
    other = bearer(limits_gateway.token(_unique("calm")))
    assert all(raw_post(limits_gateway.url, other, init_request()).status_code == 200 for _ in range(5))


async def test_get_api_usage_shows_the_remaining_quota(limits_gateway: LimitsGateway, mode: str) -> None:
    async with client_as(limits_gateway.url, mode, bearer(limits_gateway.token(_unique("usage")))) as client:
        first = structured(await client.call_tool("get_api_usage", {}))
        second = structured(await client.call_tool("get_api_usage", {}))
        # A client cannot pass off its own figures as the gateway's.
        claimed = [{"rule": "x", "limit": 9, "remaining": 9, "window": 1, "quota": True}]
        forged = structured(await client.call_tool("get_api_usage", {}, meta={"io.mcpgate/rateLimit": claimed}))
    assert first["rate_limits"] == [{"rule": "usage-daily", "limit": 5, "remaining": 4, "window": 86400, "quota": True}], first
    assert second["rate_limits"][0]["remaining"] == 3, second
    assert forged["rate_limits"] == [{**first["rate_limits"][0], "remaining": 2}], forged


async def _quota_round(url: str, token: str, mode: str, n: int) -> tuple[int, list[Any]]:
    async with client_as(url, mode, bearer(token)) as client:
        ok, errors = await _outcomes(client, "slow_count", {"steps": 1, "delay_ms": 0}, n)
    return len(ok), errors


async def test_a_daily_quota_allows_exactly_n_and_survives_a_restart(tmp_path: Path) -> None:
    g = _start(tmp_path)
    try:
        subject = _unique("quota")
        passed, errors = await _quota_round(g.url, g.token(subject), LEGACY, 7)
        assert passed == 4 and len(errors) == 3, errors
        _limited(errors, "counts-daily", 86_400)
        g.restart()
        passed, errors = await _quota_round(g.url, g.token(subject), MODERN, 2)
        assert passed == 0 and len(errors) == 2, "the quota was forgotten by the restart"
        _limited(errors, "counts-daily", 86_400)
        # The bucket rules restarted empty, the quota of another subject is whole.
        passed, _ = await _quota_round(g.url, g.token(_unique("fresh")), MODERN, 1)
        assert passed == 1
    finally:
        stop_gateway(g.gw)


async def test_a_daily_quota_is_shared_by_two_gateways_on_postgresql(tmp_path: Path) -> None:
    import replicas

    with replicas.postgres_database("rate") as url:
        extra = f"[store]\nurl = {_toml_str(url)}\n"
        # Replicas share the master key that seals what the store holds.
        env = {"MCPGATE_MASTER_KEY": replicas.random_key()}
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = _start(tmp_path / "a", extra=extra, own_store=False, env=env)
        try:
            b = _start(tmp_path / "b", public=a.public, extra=extra, own_store=False, env=env)
            try:
                token = a.token(_unique("shared"))
                rounds = await asyncio.gather(
                    _quota_round(a.url, token, LEGACY, 5), _quota_round(b.url, token, MODERN, 5)
                )
                assert sum(p for p, _ in rounds) == 4, rounds
            finally:
                stop_gateway(b.gw)
        finally:
            stop_gateway(a.gw)


async def test_rules_reload_with_the_configuration(tmp_path: Path) -> None:
    g = _start(tmp_path)
    try:
        config = g.gw.config_path.read_text()
        assert 'name = "echo-burst"\ntool = "echo"\nsubject = "*"\nlimit = 3' in config
        before = g.gw.log_path.read_text(errors="replace").count("configuration reload")
        g.gw.config_path.write_text(config.replace('tool = "echo"\nsubject = "*"\nlimit = 3', 'tool = "echo"\nsubject = "*"\nlimit = 1'))
        g.gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while g.gw.log_path.read_text(errors="replace").count("configuration reload") == before:
            assert time.monotonic() < deadline, g.gw.log_tail()
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)
        async with client_as(g.url, MODERN, bearer(g.token(_unique("reloaded")))) as client:
            ok, errors = await _outcomes(client, "echo", {"text": "hi"}, 3)
        assert len(ok) == 1 and len(errors) == 2, (ok, errors)
        # A bucket of 1 per minute refills after 60 s.
        _limited(errors, "echo-burst", 60)
    finally:
        stop_gateway(g.gw)


def test_check_config_names_the_table_and_key(tmp_path: Path) -> None:
    port = _free_port()
    bad = """
[[rate_limit]]
limit = 0
per = "1m"

[[rate_limit]]
limit = 2
per = "1w"

[[rate_limit]]
limit = 2
per = "1h"
quota = true

[[rate_limit]]
upstream = "dmeo"
limit = 2
per = "1h"
"""
    config = _config(tmp_path, f"http://127.0.0.1:{port}", _free_port()).replace(RULES, bad)
    (tmp_path / "mcpgate.toml").write_text(config)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}, "RATE_TEST_HMAC": SECRET}
    check = subprocess.run(
        [str(_mcpgate_bin()), "check-config", "-c", str(tmp_path / "mcpgate.toml")],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert check.returncode == 2, check
    assert "rate_limit[0].limit" in check.stderr, check.stderr
    assert "rate_limit[1].per" in check.stderr, check.stderr
    assert "rate_limit[2].quota" in check.stderr, check.stderr
    assert 'rate_limit[3].upstream: "dmeo" matches no' in check.stderr, check.stderr
    unknown = _config(tmp_path, f"http://127.0.0.1:{port}", _free_port()).replace(RULES, '[[rate_limit]]\nlimit = 1\nper = "1m"\nsubjects = "x"\n')
    (tmp_path / "mcpgate.toml").write_text(unknown)
    check = subprocess.run(
        [str(_mcpgate_bin()), "check-config", "-c", str(tmp_path / "mcpgate.toml")],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert check.returncode == 2 and "subjects" in check.stderr, check
