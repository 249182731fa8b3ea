"""A virtual server (`[[virtual_server]]`): the demo over stdio, the demo over
Streamable HTTP and `@modelcontextprotocol/server-everything` over stdio,
served as one MCP server at /mcp/work to the Python SDK's session client.
Checks the merged lists, routing with the prefix removed, rename, allow/deny
enforced on calls, progress, elicitation and sampling through a member,
list_changed re-announced, and the check-config errors."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from conftest import _everything_entry, _mcpgate_bin, _node, _start_gateway, _stop_gateway, _toml_list, _toml_str
from mcp.shared.exceptions import MCPError
from support import FIXED_SUMMARY, LEGACY, Asked, Gateway, connect, ok_text, resource_text, structured, text_of

pytestmark = pytest.mark.anyio

SAY = "Repeats your message back (renamed by the gateway)."


@pytest.fixture(scope="module")
def virtual(tmp_path_factory: pytest.TempPathFactory, http_demo: str) -> Iterator[Gateway]:
    binary = _mcpgate_bin()
    root = tmp_path_factory.mktemp("mcpgate-virtual")
    demo_data = root / "demo-data"
    demo_data.mkdir()
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(root / "gateway-data")}

[auth]
mode = "disabled"

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", demo_data])}

[[upstream]]
name = "everything"
command = {_toml_list([_node(), _everything_entry(), "stdio"])}
tools.deny = ["get-tiny-image", "get-env"]
tools.rename = {{ echo = "say" }}
tools.descriptions = {{ echo = {_toml_str(SAY)} }}

[[upstream]]
name = "web"
url = {_toml_str(http_demo)}
transport = "streamable-http"
prefix = false
tools.allow = ["whoami", "health_check"]

[[virtual_server]]
name = "work"
upstreams = ["demo", "everything", "web"]
"""
    gw, log = _start_gateway(binary, root, config)
    yield gw
    _stop_gateway(gw, log)


def _refused(error: BaseException) -> MCPError:
    pending: list[BaseException] = [error]
    while pending:
        e = pending.pop()
        if isinstance(e, MCPError):
            return e
        if isinstance(e, BaseExceptionGroup):
            pending.extend(e.exceptions)
    raise error


async def test_merged_lists_carry_prefixes_renames_and_filters(virtual: Gateway) -> None:
    async with connect(virtual.url("work"), LEGACY) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    # Each member's tools, prefixed; `web` unprefixed and only what it allows.
    assert {"demo_whoami", "demo_create_secure_note", "everything_get-sum", "whoami", "health_check"} <= set(tools)
    assert "create_secure_note" not in tools and "list_secure_notes" not in tools
    # Renamed, with the configured description; the old name is gone.
    assert "everything_say" in tools and "everything_echo" not in tools
    assert tools["everything_say"].description == SAY
    # Denied tools are not listed.
    assert "everything_get-tiny-image" not in tools and "everything_get-env" not in tools
    # Annotations pass through unchanged.
    async with connect(virtual.url("demo"), LEGACY) as direct:
        plain = {t.name: t for t in (await direct.list_tools()).tools}
    assert tools["demo_whoami"].annotations == plain["whoami"].annotations
    assert tools["demo_whoami"].annotations is not None and tools["demo_whoami"].annotations.read_only_hint
    assert {"everything_simple-prompt", "everything_args-prompt"} <= prompts
    assert "demo://resource/static/document/features.md" in resources
    assert "demo://resource/dynamic/text/{resourceId}" in templates


async def test_calls_are_routed_with_the_prefix_removed(virtual: Gateway) -> None:
    async with connect(virtual.url("work"), LEGACY) as client:
        # No list first: the prefix alone cannot route (web is unprefixed), so
        # the gateway merges the list itself before routing.
        assert ok_text(await client.call_tool("everything_say", {"message": "hi"})) == "Echo: hi"
        assert ok_text(await client.call_tool("everything_get-sum", {"a": 2, "b": 40})) == "The sum of 2 and 40 is 42."
        assert "ok" in text_of(await client.call_tool("health_check", {})).lower()
        assert "ok" in text_of(await client.call_tool("demo_health_check", {})).lower()
        prompt = await client.get_prompt("everything_args-prompt", {"city": "Lisbon", "state": "Portugal"})
        assert "Lisbon" in prompt.messages[0].content.text  # type: ignore[union-attr]
        text = resource_text(await client.read_resource("demo://resource/dynamic/text/7"))
        assert text.startswith("Resource 7: This is a plaintext resource")


@pytest.mark.parametrize(
    "name",
    ["everything_get-tiny-image", "everything_echo", "create_secure_note", "web_whoami", "nobody_whoami"],
)
async def test_hidden_tools_cannot_be_called(virtual: Gateway, name: str) -> None:
    async with connect(virtual.url("work"), LEGACY) as client:
        await client.list_tools()
        with pytest.raises(BaseException) as raised:  # noqa: PT011 - unwrapped below
            await client.call_tool(name, {})
    refused = _refused(raised.value)
    assert refused.error.code == -32602
    assert f"Unknown tool: {name}" in str(refused)


async def test_progress_reaches_the_client(virtual: Gateway) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with connect(virtual.url("work"), LEGACY) as client:
        result = await client.call_tool(
            "everything_trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress
        )
    assert "Long running operation completed" in ok_text(result)
    assert seen == [1.0, 2.0, 3.0]


async def test_elicitation_and_sampling_through_a_member(virtual: Gateway) -> None:
    asked = Asked()
    async with connect(virtual.url("work"), LEGACY, asked) as client:
        reply = structured(await client.call_tool("demo_confirm_action", {"action": "drop the table"}))
        summary = await client.call_tool("demo_summarize", {"text": "a long text about virtual servers"})
    assert reply == {"action": "accept", "confirmed": True, "outcome": "confirmed: drop the table"}
    assert len(asked.elicitations) == 1 and "drop the table" in asked.elicitations[0].message
    assert ok_text(summary) == FIXED_SUMMARY
    assert len(asked.samplings) == 1


async def test_list_changed_from_a_member_is_re_announced(virtual: Gateway) -> None:
    # server-everything adds its client-dependent tools after `initialized`
    # and says so with notifications/tools/list_changed.
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        inner = getattr(message, "root", message)
        if getattr(inner, "method", None) == "notifications/tools/list_changed":
            changed.set()

    asked = Asked()
    async with connect(virtual.url("work"), LEGACY, asked, message_handler=on_message) as client:
        await client.list_tools()
        with anyio.fail_after(15):
            await changed.wait()
        # After the change the new tools are listed (and routable).
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "everything_trigger-elicitation-request" in tools
        assert "everything_trigger-sampling-request" in tools


async def test_an_unknown_session_id_is_not_found(virtual: Gateway) -> None:
    import httpx2

    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await http.post(virtual.url("work"), json=body, headers={**headers, "Mcp-Session-Id": "nope"})
        assert r.status_code == 404, r.text
        r = await http.post(f"{virtual.url('work')}/messages?session_id=nope", json=body, headers=headers)
        assert r.status_code == 404, r.text


async def test_a_call_reaches_its_member_as_written_and_a_repeated_name_is_refused(virtual: Gateway) -> None:
    import json

    import httpx2

    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await http.post(virtual.url("work"), json=init, headers=headers)
        assert r.status_code == 200, r.text
        headers["Mcp-Session-Id"] = r.headers["mcp-session-id"]

        async def call(body: str) -> dict[str, Any]:
            r = await http.post(virtual.url("work"), content=body.encode(), headers=headers)
            assert r.status_code == 200, r.text
            return json.loads(r.text)

        # Member order, spacing and escapes as a client might write them: only the name changes.
        ok = await call(
            '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":'
            '{ "arguments" : {"a": 2, "b": 40} , "name" : "everything_get\\u002dsum" }}'
        )
        assert ok["result"]["content"][0]["text"] == "The sum of 2 and 40 is 42.", ok
        # The first name hidden, the last allowed: a first-wins parser would run the hidden one.
        refused = await call(
            '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":'
            '{"name":"everything_get-tiny-image","name":"everything_get-sum","arguments":{"a":1,"b":1}}}'
        )
        assert refused["error"]["code"] == -32602, refused
        assert "gives its name (or uri) more than once" in refused["error"]["message"], refused


def _check(tmp_path: Path, extra: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "mcpgate.toml"
    config.write_text(
        f"""\
[server]
data_dir = {_toml_str(tmp_path / "data")}

[auth]
mode = "disabled"

[[upstream]]
name = "a"
url = "http://127.0.0.1:9/mcp"

[[upstream]]
name = "b"
url = "http://127.0.0.1:9/mcp"
prefix = false
tools.rename = {{ x = "same" }}

[[upstream]]
name = "c"
url = "http://127.0.0.1:9/mcp"
prefix = false
tools.rename = {{ y = "same" }}
{extra}"""
    )
    return subprocess.run(
        [str(_mcpgate_bin()), "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ('[[virtual_server]]\nname = "v"\nupstreams = ["a", "zz"]\n', 'unknown member upstream "zz"'),
        ('[[virtual_server]]\nname = "a"\nupstreams = ["b"]\n', "an [[upstream]] has this name already"),
        (
            '[[virtual_server]]\nname = "v"\nupstreams = ["b", "c"]\n',
            'tool name "same" would come from both members "b" and "c"',
        ),
    ],
)
def test_check_config_names_the_problem(tmp_path: Path, extra: str, want: str) -> None:
    done = _check(tmp_path, extra)
    assert done.returncode != 0, done.stdout + done.stderr
    assert want in done.stdout + done.stderr


def test_check_config_accepts_a_good_virtual_server(tmp_path: Path) -> None:
    done = _check(tmp_path, '[[virtual_server]]\nname = "v"\nupstreams = ["a", "b"]\n')
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK (3 upstreams)" in done.stdout


async def test_a_member_that_died_is_served_again(virtual: Gateway) -> None:
    import os
    import signal

    async with connect(virtual.url("work"), LEGACY) as client:
        assert "ok" in text_of(await client.call_tool("demo_health_check", {})).lower()
        # The newest demo child of the gateway is this session's member.
        found = subprocess.run(
            ["pgrep", "-n", "-P", str(virtual.proc.pid), "-f", "demo-server"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert found.returncode == 0, found
        os.kill(int(found.stdout.split()[0]), signal.SIGKILL)
        await anyio.sleep(1.0)
        assert "ok" in text_of(await client.call_tool("demo_health_check", {})).lower()
    # It was this session's member that died (and a new one answered).
    assert "upstream demo exited (signal: 9 (SIGKILL))" in virtual.log_path.read_text(errors="replace")
