"""`[policy]` through a virtual server: the rules see the names the client
sees (prefixed), `resource.upstream` the member the call goes to and
`resource.virtual_server` the virtual server, the tools' annotations as the
merged list gave them; lists are filtered per caller, and a denial is the
same JSON-RPC -32003 naming the rule as on a plain upstream.

The real binary serves `[[virtual_server]] work` over the demo server
(stdio); callers are static tokens; the Python SDK client speaks Streamable
HTTP with a session (the front that serves virtual servers).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import _mcpgate_bin, _start_gateway, _stop_gateway, _toml_list, _toml_str
from support import LEGACY, Gateway, structured
from test_auth import bearer, client_as, mcp_error

pytestmark = pytest.mark.anyio

READER = "vpol-reader-0123456789abcdefghijklmnopqrstuvwxyz"
WRITER = "vpol-writer-0123456789abcdefghijklmnopqrstuvwxyz"
POLICY_DENIED = -32003

RULES = """\
@id("reader-basics")
permit (principal == User::"reader", action == Action::"tools/call", resource)
when { ["demo_whoami", "demo_echo"].contains(resource.name) };

@id("reader-notes-of-the-demo-member")
permit (principal == User::"reader", action == Action::"tools/call", resource)
when { resource.upstream == "demo" && resource.name like "*list_secure_notes" };

@id("writer-everything")
permit (principal == User::"writer", action, resource);

@id("no-shouting-through-work")
forbid (principal, action == Action::"tools/call", resource)
when { resource has virtual_server && resource.virtual_server == "work" }
when { context has text && context.text like "*!!*" };

@id("writer-reads-only-through-work")
forbid (principal == User::"writer", action == Action::"tools/call", resource)
when { resource has virtual_server }
unless { resource has read_only && resource.read_only };
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    binary = _mcpgate_bin()
    root = tmp_path_factory.mktemp("mcpgate-virtual-policy")
    (root / "demo-data").mkdir()
    (root / "policy.cedar").write_text(RULES)
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(root / "gateway-data")}

[auth]
mode = "required"
authorization_servers = ["http://127.0.0.1:9"]

[[auth.static_tokens.tokens]]
token = {_toml_str(READER)}
subject = "reader"
scopes = "mcp"

[[auth.static_tokens.tokens]]
token = {_toml_str(WRITER)}
subject = "writer"
scopes = "mcp"

[policy]
file = {_toml_str(root / "policy.cedar")}

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", root / "demo-data"])}

[[virtual_server]]
name = "work"
upstreams = ["demo"]
"""
    gw, log = _start_gateway(binary, root, config)
    yield gw
    _stop_gateway(gw, log)


async def test_lists_are_filtered_on_the_prefixed_names(work: Gateway) -> None:
    async with client_as(work.url("work"), LEGACY, bearer(READER)) as client:
        reader = {t.name for t in (await client.list_tools()).tools}
    async with client_as(work.url("work"), LEGACY, bearer(WRITER)) as client:
        writer = {t.name for t in (await client.list_tools()).tools}
    # `reader-notes-of-the-demo-member` reads `resource.upstream`: the member, also in lists.
    assert reader == {"demo_whoami", "demo_echo", "demo_list_secure_notes"}, reader
    assert {"demo_whoami", "demo_echo", "demo_health_check"} <= writer, writer
    assert all(name.startswith("demo_") for name in writer), writer
    # Not annotated read-only by the demo: hidden from the writer through `work`.
    assert "demo_create_secure_note" not in writer, writer


async def test_calls_are_decided_on_the_prefixed_names(work: Gateway) -> None:
    async with client_as(work.url("work"), LEGACY, bearer(READER)) as client:
        me = structured(await client.call_tool("demo_whoami", {}))
        assert me["subject"] == "reader", me
        with mcp_error() as errors:
            await client.call_tool("demo_health_check", {})
        assert errors and errors[0].error.code == POLICY_DENIED, errors
        assert 'tools/call of "demo_health_check" refused: no policy permits' in errors[0].error.message
        # The forbid reads `resource.virtual_server`.
        with mcp_error() as errors:
            await client.call_tool("demo_echo", {"text": "loud!!"})
        assert errors and "forbidden by policy no-shouting-through-work" in errors[0].error.message, errors
        quiet = await client.call_tool("demo_echo", {"text": "quiet"})
        assert not quiet.is_error, quiet
        # The permit reads `resource.upstream`: the member the call is routed to.
        notes = await client.call_tool("demo_list_secure_notes", {})
        assert not notes.is_error, notes
    log = work.log_path.read_text(errors="replace")
    assert any("call refused by policy" in line and "demo_health_check" in line for line in log.splitlines()), log[-2000:]


async def test_virtual_server_and_annotations_are_attributes(work: Gateway) -> None:
    """`virtual_server` is absent on the plain upstream, and the tools' read-only
    annotations come from the merged list the client saw."""
    async with client_as(work.url("demo"), LEGACY, bearer(WRITER)) as client:
        loud = await client.call_tool("echo", {"text": "loud!!"})
        assert not loud.is_error, loud
        note = await client.call_tool("create_secure_note", {"title": "plain", "content": "x"})
        assert not note.is_error, note
    async with client_as(work.url("work"), LEGACY, bearer(WRITER)) as client:
        await client.list_tools()
        me = structured(await client.call_tool("demo_whoami", {}))
        assert me["subject"] == "writer", me
        with mcp_error() as errors:
            await client.call_tool("demo_create_secure_note", {"title": "through-work", "content": "x"})
        assert errors and errors[0].error.code == POLICY_DENIED, errors
        assert "forbidden by policy writer-reads-only-through-work" in errors[0].error.message, errors
