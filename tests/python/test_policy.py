"""`[policy]` (Cedar rules per call) with the Python SDK client, in the legacy
(initialize + session) and 2026-07-28 (stateless) eras, against the real
binary in front of the demo server (stdio, one child per session).

Callers are HS256 JWTs signed here, with a ``groups`` claim: ``alice`` is in
``sre``, ``bob`` in nothing. The rules permit a few tools to everyone, one
to ``sre`` only, ``create_secure_note`` only for titles under ``acme/``, and
forbid ``echo`` of text containing ``!!``. Checked: allow and deny (the
JSON-RPC error -32003 naming the rule), the argument condition, list
filtering per caller, the legacy SSE transport (the denial on the stream), a reload changing a decision (and a broken file on
reload keeping the old rules), clients registered dynamically limited to the tools
annotated read-only, every decision audited, ``mcpgate policy test`` and a malformed file
refused at start and by ``check-config`` with its line and column.
"""

from __future__ import annotations

import json
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
from conftest import _free_port, _mcpgate_bin, _stop_gateway, _toml_str
from mcp.client.sse import sse_client
from support import LEGACY, MODERN, READ_TIMEOUT_S, Gateway, connect, structured
from test_auth import _serve, bearer, client_as, mcp_error

pytestmark = pytest.mark.anyio

SECRET_ENV = "MCPGATE_POLICY_TEST_HMAC"  # dropped by _serve (MCPGATE_*): named below without the prefix
SECRET = "policy-test-secret-0123456789abcdef-0123456789"
POLICY_DENIED = -32003

RULES = """\
@id("everyone-basic")
permit (principal, action == Action::"tools/call", resource)
when { ["whoami", "echo", "list_secure_notes", "health_check"].contains(resource.name) };

@id("sre-usage")
permit (principal in Group::"sre", action == Action::"tools/call", resource == Tool::"get_api_usage");

@id("notes-under-acme")
permit (principal, action == Action::"tools/call", resource == Tool::"create_secure_note")
when { context.title like "acme/*" };

@id("sre-prompts-and-profile")
permit (principal in Group::"sre", action in [Action::"prompts/get", Action::"resources/read"], resource);

@id("no-shouting")
forbid (principal, action == Action::"tools/call", resource == Tool::"echo")
when { context has text && context.text like "*!!*" };

@id("dynamic-clients-read-only")
forbid (principal, action == Action::"tools/call", resource)
when { principal has client && (principal.client.dynamic || principal.client.metadata_document) }
unless { resource has read_only && resource.read_only };
"""

EVERYONE_USAGE = """
@id("usage-for-all")
permit (principal, action == Action::"tools/call", resource == Tool::"get_api_usage");
"""


@pytest.fixture(params=[LEGACY, MODERN])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class PolicyGateway:
    gw: Gateway
    root: Path
    resource: str
    metrics: str

    @property
    def url(self) -> str:
        return self.gw.url("demo")

    def token(self, subject: str, groups: list[str], client_id: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "policy-test",
            "aud": self.resource,
            "sub": subject,
            "scope": "notes:read notes:write",
            "groups": groups,
            "iat": now - 5,
            "exp": now + 600,
        }
        if client_id is not None:
            claims["client_id"] = client_id
        return jwt.encode(claims, SECRET, algorithm="HS256")

    def reload(self, rules: str) -> None:
        """Writes `rules` and sends SIGHUP; waits for the reload's log line."""
        before = self.gw.log_path.read_text(errors="replace").count("configuration reload")
        (self.root / "policy.cedar").write_text(rules)
        self.gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            log = self.gw.log_path.read_text(errors="replace")
            if log.count("configuration reload") > before:
                time.sleep(0.2)
                return
            time.sleep(0.1)
        pytest.fail(f"no reload in the log:\n{self.gw.log_tail()}")


def _config(root: Path, port: int, metrics_port: int = 0) -> str:
    notes = root / "notes-data"
    notes.mkdir(exist_ok=True)
    return f"""\
[server]
request_timeout = "30s"

[[auth.jwt]]
name = "policy-test"
issuer = "policy-test"
audience = {_toml_str(f"http://127.0.0.1:{port}/mcp/demo")}
hmac_secret_env = "POLICY_TEST_HMAC"
algorithms = ["HS256"]

[policy]
file = {_toml_str(root / "policy.cedar")}

[metrics]
listen = {_toml_str(f"127.0.0.1:{metrics_port}" if metrics_port else "")}

[[upstream]]
name = "demo"
command = [{_toml_str(_mcpgate_bin())}, "demo-server", "--data-dir", {_toml_str(notes)}]
isolation = "session"
"""


@pytest.fixture(scope="module")
def policy_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyGateway]:
    root = tmp_path_factory.mktemp("policy")
    (root / "policy.cedar").write_text(RULES)
    port = _free_port()
    metrics_port = _free_port()
    (root / "mcpgate.toml").write_text(_config(root, port, metrics_port))
    os.environ["POLICY_TEST_HMAC"] = SECRET
    gw, log = _serve(
        ["--config", str(root / "mcpgate.toml"), "--listen", f"127.0.0.1:{port}", "--data-dir", str(root / "data")],
        root,
        "mcpgate: listening on ",
    )
    try:
        yield PolicyGateway(
            gw=gw, root=root, resource=f"http://127.0.0.1:{port}/mcp/demo", metrics=f"http://127.0.0.1:{metrics_port}/metrics"
        )
    finally:
        _stop_gateway(gw, log)


def _denial(errors: list[Any]) -> str:
    assert errors, "no MCPError"
    e = errors[0]
    assert e.error.code == POLICY_DENIED, e.error
    return e.error.message


async def test_lists_show_what_the_rules_allow_this_caller(policy_gateway: PolicyGateway, mode: str) -> None:
    async with client_as(policy_gateway.url, mode, bearer(policy_gateway.token("alice", ["sre"]))) as client:
        alice = {t.name for t in (await client.list_tools()).tools}
    async with client_as(policy_gateway.url, mode, bearer(policy_gateway.token("bob", []))) as client:
        bob = {t.name for t in (await client.list_tools()).tools}
    # create_secure_note is permitted for some arguments: listed for both.
    base = {"whoami", "echo", "list_secure_notes", "health_check", "create_secure_note"}
    assert bob == base, bob
    assert alice == base | {"get_api_usage"}, alice


async def test_group_rule_allows_and_denies(policy_gateway: PolicyGateway, mode: str) -> None:
    async with client_as(policy_gateway.url, mode, bearer(policy_gateway.token("alice", ["sre"]))) as client:
        usage = await client.call_tool("get_api_usage", {})
        assert not usage.is_error, usage
    async with client_as(policy_gateway.url, mode, bearer(policy_gateway.token("bob", []))) as client:
        with mcp_error() as errors:
            await client.call_tool("get_api_usage", {})
        message = _denial(errors)
        assert "no policy permits" in message and "get_api_usage" in message, message
        # A tool nothing mentions is denied the same way.
        with mcp_error() as errors:
            await client.call_tool("slow_count", {"steps": 1, "delay_ms": 0})
        assert "no policy permits" in _denial(errors)
    log = policy_gateway.gw.log_path.read_text(errors="replace")
    refused = [line for line in log.splitlines() if "call refused by policy" in line and "get_api_usage" in line]
    assert refused and "bob" in refused[-1] and 'policy="none"' in refused[-1], log[-2000:]


async def test_legacy_sse_denial_arrives_on_the_stream(policy_gateway: PolicyGateway) -> None:
    headers = bearer(policy_gateway.token("bob", []))
    transport = sse_client(f"{policy_gateway.url}/sse", headers=headers, timeout=READ_TIMEOUT_S)
    async with connect(transport, LEGACY) as client:
        assert "get_api_usage" not in {t.name for t in (await client.list_tools()).tools}
        with mcp_error() as errors:
            await client.call_tool("echo", {"text": "legacy!!"})
        assert "forbidden by policy no-shouting" in _denial(errors)
        me = structured(await client.call_tool("whoami", {}))
        assert me["subject"] == "bob", me


async def test_prompts_and_resources_are_decided_too(policy_gateway: PolicyGateway, mode: str) -> None:
    async with client_as(policy_gateway.url, mode, bearer(policy_gateway.token("alice", ["sre"]))) as client:
        assert "note_summary" in {p.name for p in (await client.list_prompts()).prompts}
        assert "user://profile" in {str(r.uri) for r in (await client.list_resources()).resources}
        profile = await client.read_resource("user://profile")
        assert profile.contents, profile
    async with client_as(policy_gateway.url, mode, bearer(policy_gateway.token("bob", []))) as client:
        assert (await client.list_prompts()).prompts == []
        assert (await client.list_resources()).resources == []
        with mcp_error() as errors:
            await client.read_resource("user://profile")
        assert "resources/read of \"user://profile\" refused: no policy permits" in _denial(errors)
        with mcp_error() as errors:
            await client.get_prompt("note_summary", {"note_id": "1"})
        assert "prompts/get of \"note_summary\" refused" in _denial(errors)


async def test_argument_conditions(policy_gateway: PolicyGateway, mode: str) -> None:
    async with client_as(policy_gateway.url, mode, bearer(policy_gateway.token("bob", []))) as client:
        ok = structured(await client.call_tool("create_secure_note", {"title": "acme/plan", "content": "x"}))
        assert ok, ok
        with mcp_error() as errors:
            await client.call_tool("create_secure_note", {"title": "evil/plan", "content": "x"})
        assert "no policy permits" in _denial(errors)
        calm = await client.call_tool("echo", {"text": "hello"})
        assert not calm.is_error, calm
        with mcp_error() as errors:
            await client.call_tool("echo", {"text": "hello!!"})
        message = _denial(errors)
        assert "forbidden by policy no-shouting" in message, message


async def test_reload_changes_the_decision_and_a_broken_file_keeps_the_old(
    policy_gateway: PolicyGateway, mode: str
) -> None:
    bob = bearer(policy_gateway.token("bob", []))
    try:
        policy_gateway.reload(RULES + EVERYONE_USAGE)
        async with client_as(policy_gateway.url, mode, bob) as client:
            assert "get_api_usage" in {t.name for t in (await client.list_tools()).tools}
            usage = await client.call_tool("get_api_usage", {})
            assert not usage.is_error, usage
        # A file that does not parse: the reload fails, the running rules stay.
        policy_gateway.reload(RULES + EVERYONE_USAGE + "\npermit (principal,, action, resource);\n")
        log = policy_gateway.gw.log_path.read_text(errors="replace")
        assert "configuration reload failed" in log, log[-2000:]
        assert "policy.cedar:" in log, log[-2000:]
        async with client_as(policy_gateway.url, mode, bob) as client:
            usage = await client.call_tool("get_api_usage", {})
            assert not usage.is_error, usage
    finally:
        policy_gateway.reload(RULES)
    async with client_as(policy_gateway.url, mode, bob) as client:
        with mcp_error() as errors:
            await client.call_tool("get_api_usage", {})
        _denial(errors)


def _counter(text: str, decision: str, policy: str) -> float:
    prefix = f'mcpgate_policy_decisions_total{{decision="{decision}",policy="{policy}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


async def test_unvetted_clients_get_the_tools_annotated_read_only(policy_gateway: PolicyGateway, mode: str) -> None:
    """The docs' example: clients registered dynamically (ids `mcpg-…`) or known by a metadata
    document (`https://…` ids) may call only the tools whose `readOnlyHint` the upstream's
    `tools/list` gave; a client named in the configuration is not concerned."""
    args = {"title": "acme/plan", "content": "x"}
    for client_id in ["mcpg-3f2a9c", "https://app.example/client.json"]:
        token = policy_gateway.token("bob", [], client_id)
        async with client_as(policy_gateway.url, mode, bearer(token)) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            assert {"whoami", "echo", "list_secure_notes"} <= listed, listed
            assert "create_secure_note" not in listed, listed
            me = structured(await client.call_tool("whoami", {}))
            assert me["subject"] == "bob", me
            with mcp_error() as errors:
                await client.call_tool("create_secure_note", args)
            assert "forbidden by policy dynamic-clients-read-only" in _denial(errors), client_id
    async with client_as(policy_gateway.url, mode, bearer(policy_gateway.token("bob", [], "cli"))) as client:
        assert "create_secure_note" in {t.name for t in (await client.list_tools()).tools}
        created = await client.call_tool("create_secure_note", args)
        assert not created.is_error, created


async def test_decisions_are_counted_and_audited(policy_gateway: PolicyGateway) -> None:
    before = httpx2.get(policy_gateway.metrics, timeout=10).text
    async with client_as(policy_gateway.url, MODERN, bearer(policy_gateway.token("carol", ["sre"]))) as client:
        assert not (await client.call_tool("get_api_usage", {})).is_error
        with mcp_error() as errors:
            await client.call_tool("echo", {"text": "audit!!"})
        _denial(errors)
    after = httpx2.get(policy_gateway.metrics, timeout=10).text
    assert _counter(after, "allow", "sre-usage") == _counter(before, "allow", "sre-usage") + 1, after
    assert _counter(after, "deny", "no-shouting") == _counter(before, "deny", "no-shouting") + 1, after
    denied = _audited(policy_gateway, "policy_denied", "carol")
    assert len(denied) == 1, denied
    assert "policy no-shouting" in json.dumps(denied[0]), denied[0]
    allowed = _audited(policy_gateway, "policy_allowed", "carol")
    assert len(allowed) == 1, allowed
    assert allowed[0]["outcome"] == "policy sre-usage", allowed[0]
    assert allowed[0]["tool"] == "get_api_usage" and allowed[0]["upstream"] == "demo", allowed[0]
    assert allowed[0]["detail"]["method"] == "tools/call", allowed[0]


def _audited(policy_gateway: PolicyGateway, kind: str, subject: str) -> list[Any]:
    env = store.apply(dict(os.environ), policy_gateway.root / "data")
    records: list[Any] = []
    deadline = time.monotonic() + 10  # the audit sink writes in the background
    while not records and time.monotonic() < deadline:
        out = subprocess.run(
            [str(_mcpgate_bin()), "audit", "list", "--kind", kind, "--subject", subject, "--json",
             "--data-dir", str(policy_gateway.root / "data")],
            capture_output=True, text=True, env=env, timeout=30,
        )
        assert out.returncode == 0, out
        records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        if not records:
            time.sleep(0.2)
    return records


def test_policy_test_cli(policy_gateway: PolicyGateway) -> None:
    cfg = str(policy_gateway.root / "mcpgate.toml")
    env = {**os.environ, "POLICY_TEST_HMAC": SECRET}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(_mcpgate_bin()), "policy", "test", "-c", cfg, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=policy_gateway.root,
            timeout=30,
        )

    allowed = run("--subject", "alice", "--group", "sre", "--tool", "get_api_usage")
    assert allowed.returncode == 0, allowed
    assert allowed.stdout.splitlines()[:2] == ['ALLOW tools/call "get_api_usage"', "permitted by: sre-usage"], allowed.stdout
    denied = run("--subject", "bob", "--tool", "echo", "--args", '{"text": "hi!!"}')
    assert denied.returncode == 1, denied
    assert denied.stdout.splitlines()[:2] == ['DENY tools/call "echo"', "forbidden by policy no-shouting"], denied.stdout
    conditional = run("--subject", "bob", "--tool", "create_secure_note", "--args", "{}")
    assert conditional.returncode == 1, conditional
    assert "no policy permits this call" in conditional.stdout
    assert "not applicable:" in conditional.stdout and "listed: yes" in conditional.stdout, conditional.stdout
    # The tool's annotations and the virtual server are options; unknown annotations are absent.
    unvetted = ("--subject", "bob", "--client", "mcpg-1", "--tool", "whoami")
    assert run(*unvetted).returncode == 1
    assert run(*unvetted, "--read-only", "true").returncode == 0
    assert run(*unvetted, "--read-only", "true", "--virtual-server", "work", "--upstream", "demo").returncode == 0
    bad = run("--subject", "bob", "--tool", "echo", "--args", "[1]")
    assert bad.returncode == 2 and "--args must be a JSON object" in bad.stderr, bad


def test_malformed_policy_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "policy.cedar").write_text('@id("ok")\npermit (principal, action, resource);\n\npermit (principal action, resource);\n')
    (tmp_path / "mcpgate.toml").write_text(_config(tmp_path, _free_port()))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}, "POLICY_TEST_HMAC": SECRET}
    where = f"{tmp_path / 'policy.cedar'}:4:"
    check = subprocess.run(
        [str(_mcpgate_bin()), "check-config", "-c", str(tmp_path / "mcpgate.toml")],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert check.returncode == 2, check
    assert f"policy.file: {where}" in check.stderr, check.stderr
    serve = subprocess.run(
        [str(_mcpgate_bin()), "serve", "-c", str(tmp_path / "mcpgate.toml"), "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert serve.returncode != 0, serve
    assert f"policy.file: {where}" in serve.stderr, serve.stderr
