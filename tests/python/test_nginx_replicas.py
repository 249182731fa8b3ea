"""Three replicas on one PostgreSQL database behind nginx (round-robin, no
stickiness; packaging/nginx/mcpgate.conf as shipped): the Python SDK's OAuth
client registers, signs in on the real pages, calls tools and refreshes through
nginx, and every one of its requests may land on any replica:

- each replica served requests (nginx's access log, and each replica's own
  `mcpgate_http_requests_total`);
- the sign-in itself crossed replicas (the login page on one, the consent on
  another: browser sessions and codes live in the database);
- one MCP session (an HTTP upstream's) was served by all three, and the
  replicas that did not open it say they continued it;
- one session on a stdio upstream (its child lives in one replica) was served
  through all three: the others forward its requests to the owner;
- a GET stream read through one replica resumes through another: the event
  ids carry the upstream's (server-everything over Streamable HTTP), and the
  replica without the stream's log resumes the upstream's stream from there.

The replicas, nginx and the database: replicas.py. When nginx is missing the
tests skip and say why.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from replicas import Cluster, cluster, everything_http, mcp_client, sdk_client
from conftest import _mcpgate_bin, _toml_str
from support import LEGACY, connect, ok_text, structured

pytestmark = pytest.mark.anyio

USER, PASSWORD = "rhea", "replicas correct horse"
ACCESS_TTL_S = 3
CONTINUED = "continuing a session another replica opened"


async def check_answers(client: Any, user: str, calls: int) -> None:
    """`calls` pairs of whoami and echo, each answer checked to be this user's and this request's."""
    for _ in range(calls):
        assert structured(await client.call_tool("whoami", {}))["subject"] == user
        nonce = f"{user}-{uuid.uuid4()}"
        assert nonce in ok_text(await client.call_tool("echo", {"text": nonce}))


def stdio_upstream(name: str, data_dir: Path) -> str:
    """An `[[upstream]]` running the demo over stdio, one child per session."""
    return f"""
[[upstream]]
name = "{name}"
command = [{json.dumps(str(_mcpgate_bin()))}, "demo-server", "--data-dir", {json.dumps(str(data_dir))}]
required_scopes = "notes:read"
"""


@pytest.fixture(scope="module")
def everything_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with everything_http(tmp_path_factory.mktemp("everything-http")) as url:
        yield url


@pytest.fixture
def replicas(tmp_path: Path, http_demo: str, everything_url: str) -> Iterator[Cluster]:
    authserver = f'access_token_ttl = "{ACCESS_TTL_S}s"\nrefresh_grace = "2s"'
    local = tmp_path / "local-notes"
    local.mkdir()
    everything = f"""
[[upstream]]
name = "everything"
url = {_toml_str(everything_url)}
transport = "streamable-http"
required_scopes = "notes:read"
"""
    more = stdio_upstream("local", local) + everything
    with cluster(tmp_path, http_demo, authserver, more_upstreams=more) as c:
        c.add_user(USER, PASSWORD, "notes:read notes:write")
        yield c


def sessions_by_replica(c: Cluster, path: str) -> dict[str, set[str]]:
    """For each Mcp-Session-Id that nginx saw on `path`, the replicas that answered it."""
    served: dict[str, set[str]] = defaultdict(set)
    for e in c.nginx.entries():
        if e["uri"] == path and e["session"] not in ("", "-"):
            served[e["session"]].add(e["upstream"].split(", ")[-1])
    return served


async def session_spans_replicas(c: Cluster, provider: OAuthClientProvider, upstream: str) -> None:
    """One session on `upstream`, long enough for round-robin to take it to every replica.

    An HTTP upstream's session is continued by each replica on its own connection; a
    stdio upstream's child stays in the replica that started it, and the others
    forward to it (a 404 anywhere would end the SDK's session and fail the calls)."""
    async with mcp_client(c, provider, upstream=upstream) as client:
        await check_answers(client, USER, 6)
    spread = sessions_by_replica(c, f"/mcp/{upstream}")
    assert spread, f"nginx logged no request with an Mcp-Session-Id on /mcp/{upstream}"
    widest = max(spread.values(), key=len)
    assert widest == {r.address for r in c.replicas}, f"one session, replicas {spread}"
    if upstream == "notes":
        continued = [r.index for r in c.replicas if CONTINUED in r.log()]
        assert len(continued) >= 2, f"replicas {continued} logged {CONTINUED!r}\n{c.logs()}"


async def test_sdk_signs_in_refreshes_and_calls_across_three_replicas(replicas: Cluster) -> None:
    c = replicas
    provider, headless, storage = sdk_client(c, USER, PASSWORD, "python sdk behind nginx")

    # Registration, sign-in, consent, code exchange and the first calls, all through nginx.
    await session_spans_replicas(c, provider, "notes")
    assert headless.browser.pages == ["login", "consent"], headless.browser.pages
    first = storage.tokens
    assert first is not None and first.refresh_token
    issued = time.monotonic()

    # The access token expires; the SDK refreshes through nginx (whichever replica) and goes on.
    time.sleep(max(0.0, issued + ACCESS_TTL_S + 0.5 - time.monotonic()))
    writes = storage.token_writes
    async with mcp_client(c, provider) as client:
        await check_answers(client, USER, 3)
    assert storage.token_writes > writes, "the SDK refreshed"
    assert storage.tokens.refresh_token != first.refresh_token, "refresh tokens rotate"
    assert len(headless.authorization_urls) == 1, "no second sign-in: the refresh did it"
    await headless.browser.aclose()

    # Every replica answered requests, by nginx's log and by its own metrics.
    served = c.served_by()
    assert set(served) == {r.address for r in c.replicas}, served
    counts = {r.index: r.http_requests() for r in c.replicas}
    assert all(n > 0 for n in counts.values()), counts
    # The OAuth steps were spread too: the authorization server's routes hit more than one replica.
    oauth = {e["upstream"] for e in c.nginx.entries() if e["uri"] in ("/authorize", "/login", "/consent", "/token", "/register")}
    assert len(oauth) >= 2, oauth


async def test_a_stdio_session_is_served_through_every_replica(replicas: Cluster) -> None:
    c = replicas
    provider, headless, _ = sdk_client(c, USER, PASSWORD, "python sdk, stdio upstream, behind nginx", upstream="local")
    await session_spans_replicas(c, provider, "local")
    assert len(headless.authorization_urls) == 1
    await headless.browser.aclose()


async def test_a_key_created_with_the_cli_works_on_every_replica(replicas: Cluster) -> None:
    c = replicas
    out = c.cli("keys", "create", "--name", "ci", "--scopes", "notes:read", "--subject", "ci-bot")
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    key = out.stdout.decode().strip()
    for r in c.replicas:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30.0)
        direct = f"http://127.0.0.1:{r.port}/mcp/notes"
        # Straight to the replica, with nginx's Host (the one public URL every replica checks).
        http.headers["Host"] = f"127.0.0.1:{c.nginx.port}"
        async with connect(streamable_http_client(direct, http_client=http), LEGACY) as client:
            assert structured(await client.call_tool("whoami", {}))["subject"] == "ci-bot"


RESUMED = "resuming the upstream's stream from the position it carries"


def read_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """The SSE events of a body's lines: `id` and `data` of each."""
    event: dict[str, str] = {}
    for line in lines:
        if line == "":
            if event:
                yield event
            event = {}
            continue
        field_name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field_name == "data" and "data" in event:
            event["data"] += "\n" + value
        elif field_name in ("id", "data"):
            event[field_name] = value


def logged_uris(events: Iterator[dict[str, str]], want: set[str]) -> list[tuple[str, str]]:
    """Reads `events` until a log message naming each URI in `want` came (the
    read timeout ends it otherwise): (URI, event id) of every log message seen."""
    seen: list[tuple[str, str]] = []
    for ev in events:
        if not ev.get("data"):
            continue
        m = json.loads(ev["data"])
        if m.get("method") != "notifications/message":
            continue
        uri = next((w for w in str(m["params"]["data"]).split() if w.startswith("test://")), None)
        if uri is not None:
            seen.append((uri, ev["id"]))
        if want <= {u for u, _ in seen}:
            break
    return seen


def get_served_by(c: Cluster, sid: str, count: int) -> list[str]:
    """The replicas that answered the GETs of session `sid` nginx logged, once it logged `count`
    (nginx writes a line when the stream ends)."""
    deadline = time.monotonic() + 10
    while True:
        gets = [
            e["upstream"].split(", ")[-1]
            for e in c.nginx.entries()
            if e["method"] == "GET" and e["uri"] == "/mcp/everything" and e["session"] == sid
        ]
        if len(gets) >= count or time.monotonic() > deadline:
            return gets
        time.sleep(0.1)


async def test_a_get_stream_resumes_on_another_replica(replicas: Cluster) -> None:
    c = replicas
    out = c.cli("keys", "create", "--name", "streams", "--scopes", "notes:read", "--subject", "stream-bot")
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    key = out.stdout.decode().strip()
    url = c.url("everything")
    headers = {"Authorization": f"Bearer {key}", "MCP-Protocol-Version": "2025-11-25"}
    http = httpx2.Client(headers=headers, timeout=httpx2.Timeout(30.0, read=15.0))

    def post(sid: str | None, body: dict[str, Any]) -> httpx2.Response:
        h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if sid:
            h["Mcp-Session-Id"] = sid
        r = http.post(url, json=body, headers=h)
        assert r.status_code in (200, 202), (r.status_code, r.text)
        return r

    def subscribe(sid: str, n: int, uri: str) -> None:
        r = post(sid, {"jsonrpc": "2.0", "id": n, "method": "resources/subscribe", "params": {"uri": uri}})
        assert r.json()["result"] == {}, r.text

    def stream(sid: str, last: str | None = None) -> Any:
        h = {"Accept": "text/event-stream", "Mcp-Session-Id": sid}
        if last:
            h["Last-Event-ID"] = last
        return http.stream("GET", url, headers=h)

    init = post(
        None,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "resume", "version": "0"}},
        },
    )
    sid = init.headers["mcp-session-id"]
    post(sid, {"jsonrpc": "2.0", "method": "notifications/initialized"})

    # The GET stream through one replica, and one event the upstream sent on it.
    with stream(sid) as resp:
        assert resp.status_code == 200, resp.read()
        events = read_events(resp.iter_lines())
        # The replica answers the GET before its own GET to the upstream is
        # connected; what the upstream sends before that reaches no stream.
        time.sleep(1.0)
        subscribe(sid, 2, "test://one")
        seen = logged_uris(events, {"test://one"})
    assert [u for u, _ in seen] == ["test://one"], seen
    last = seen[0][1]
    assert ".e1." in last, f"the id carries the upstream's position: {last}"
    first_get = get_served_by(c, sid, 1)
    assert len(first_get) == 1, first_get

    # Missed while away.
    subscribe(sid, 3, "test://two")
    subscribe(sid, 4, "test://three")

    # Resumed through nginx until round-robin takes it to another replica than
    # the first GET (a resumption on the same one replays from its own log).
    for attempt in range(1, 4):
        with stream(sid, last) as resp:
            assert resp.status_code == 200, resp.read()
            replayed = logged_uris(read_events(resp.iter_lines()), {"test://two", "test://three"})
        assert [u for u, _ in replayed] == ["test://two", "test://three"], (attempt, replayed, c.logs())
        gets = get_served_by(c, sid, attempt + 1)
        if gets[-1] != first_get[0]:
            break
    else:
        pytest.fail(f"every resumption went to the first GET's replica: {gets}")
    other = next(r for r in c.replicas if r.address == gets[-1])
    assert RESUMED in other.log(), f"replica {other.index} did not resume the upstream's stream\n{c.logs()}"
    http.close()


async def test_replicas_on_one_runtime_thread_sign_in_and_serve_http_and_stdio(tmp_path: Path, http_demo: str) -> None:
    """`server.worker_threads = 1`, as docs/DEPLOYMENT.md advises for replicas sharing a
    host's cores, gives each replica one event loop: everything it serves runs on one
    thread (the blocking pool aside). The same sign-in and sessions as above."""
    local = tmp_path / "local-notes"
    local.mkdir()
    with cluster(
        tmp_path,
        http_demo,
        f'access_token_ttl = "{ACCESS_TTL_S}s"',
        more_upstreams=stdio_upstream("local", local),
        server="worker_threads = 1",
    ) as c:
        c.add_user(USER, PASSWORD, "notes:read notes:write")
        for r in c.replicas:
            loops = next((line for line in r.log().splitlines() if "event loops" in line), "")
            assert "event_loops=1" in loops, f"replica {r.index}: {loops!r}"
        provider, headless, _ = sdk_client(c, USER, PASSWORD, "python sdk, one runtime thread")
        # The sign-in (login and consent pages, code, token) and an HTTP upstream's session, across replicas.
        await session_spans_replicas(c, provider, "notes")
        assert headless.browser.pages == ["login", "consent"], headless.browser.pages
        # A stdio upstream's session: its child in one replica, the others forwarding to it.
        local_provider, local_headless, _ = sdk_client(c, USER, PASSWORD, "one runtime thread, stdio", upstream="local")
        await session_spans_replicas(c, local_provider, "local")
        await headless.browser.aclose()
        await local_headless.browser.aclose()
        served = c.served_by()
        assert set(served) == {r.address for r in c.replicas}, served
