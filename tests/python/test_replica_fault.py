"""A replica dies under load: three replicas on PostgreSQL behind nginx
(replicas.py), a bounded mixed load, and `kill -9` of one replica in the middle,
which is started again a few seconds later. The load, for LOAD_S seconds:

- one Python SDK client per user (signed in once, before the load): sessions of
  `whoami` and `echo` calls; access tokens live 2 s, so the SDK refreshes all the
  time, rotating its refresh token;
- a refresh chain: one grant refreshed back to back, each new refresh token
  used for the next refresh;
- API keys created with the CLI (`mcpgate keys create --store-url`).

Clients retry a 502/503/504 or a failed connection (RetryOn502: what a client
behind a load balancer does), and reopen a session that broke. Asserted:

- no answer was meant for another user: every `whoami` names the caller and
  every `echo` returns the nonce of its own request;
- every client recovered without a new sign-in (one authorization each) and
  kept calling after the kill;
- every acknowledged write is there: each key the CLI printed is listed and
  works through nginx for its own subject; the refresh chain's last refresh
  token (what the server last acknowledged) still refreshes, and a refresh
  answered with a sibling pair after a lost response is within
  `refresh_grace` (the rotation rule, docs/AUTHSERVER.md);
- the restarted replica serves requests again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from replicas import Cluster, RetryOn502, cluster, mcp_client, sdk_client
from mcp.client.streamable_http import streamable_http_client
from support import LEGACY, connect, ok_text, structured
from test_oauth_sdk import Headless

pytestmark = pytest.mark.anyio

USERS = [("una", "fault una correct horse"), ("ivo", "fault ivo correct horse"), ("tess", "fault tess correct horse")]
LOAD_S = 14.0
KILL_AT_S, RESTART_AT_S = 4.0, 8.0
VICTIM = 1


@pytest.fixture
def replicas(tmp_path: Path, http_demo: str) -> Iterator[Cluster]:
    # The grace lets a client that lost a refresh answer (the replica died after
    # committing the rotation) present the same token again.
    authserver = 'access_token_ttl = "2s"\nrefresh_grace = "30s"'
    with cluster(tmp_path, http_demo, authserver) as c:
        for user, password in USERS:
            c.add_user(user, password, "notes:read")
        yield c


@dataclass
class Tally:
    """What the load saw."""

    answers: int = 0
    wrong: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answers_after_restart: int = 0
    keys: dict[str, str] = field(default_factory=dict)  # name -> key, acknowledged by the CLI
    refreshes: int = 0
    refresh_token: str = ""
    lost_refreshes: int = 0


@dataclass
class User:
    name: str
    provider: OAuthClientProvider
    headless: Headless
    transport: RetryOn502


async def calls(c: Cluster, u: User, tally: Tally, until: float, restarted: anyio.Event) -> None:
    """Sessions of whoami and echo until `until`; a broken session is reopened."""
    while time.monotonic() < until:
        try:
            async with mcp_client(c, u.provider, transport=u.transport) as client:
                for _ in range(5):
                    me = structured(await client.call_tool("whoami", {}))["subject"]
                    nonce = f"{u.name}-{uuid.uuid4()}"
                    echoed = ok_text(await client.call_tool("echo", {"text": nonce}))
                    if me != u.name or nonce not in echoed:
                        tally.wrong.append(f"{u.name} got whoami={me!r} echo={echoed!r} (sent {nonce})")
                    tally.answers += 1
                    if restarted.is_set():
                        tally.answers_after_restart += 1
        except Exception as error:  # noqa: BLE001 - a broken session: reopen, as a client would
            tally.errors.append(f"{u.name}: {error!r}"[:300])
            await anyio.sleep(0.2)


async def refresh_chain(c: Cluster, client_id: str, first: str, tally: Tally, until: float) -> None:
    """Refreshes back to back; a lost answer is retried with the same token (within the grace)."""
    transport = RetryOn502()
    tally.refresh_token = first
    async with httpx2.AsyncClient(transport=transport, timeout=30.0) as http:
        while time.monotonic() < until:
            form = {"grant_type": "refresh_token", "refresh_token": tally.refresh_token, "client_id": client_id}
            try:
                r = await http.post(f"{c.base}/token", data=form)
            except httpx2.TransportError as error:
                # Sent, and the replica died before answering: the same token again.
                tally.lost_refreshes += 1
                tally.errors.append(f"refresh: {error!r}")
                continue
            assert r.status_code == 200, f"refresh {tally.refreshes + 1}: {r.status_code} {r.text}"
            tally.refresh_token = r.json()["refresh_token"]
            tally.refreshes += 1
    tally.lost_refreshes += sum(transport.retried.values())


async def create_keys(c: Cluster, tally: Tally, until: float) -> None:
    n = 0
    while time.monotonic() < until:
        name = f"load-{n}"
        out = await anyio.to_thread.run_sync(
            lambda: c.cli("keys", "create", "--name", name, "--scopes", "notes:read", "--subject", f"subj-{name}")
        )
        if out.returncode == 0:
            tally.keys[name] = out.stdout.decode().strip()
        else:
            tally.errors.append(f"keys create {name}: {out.stderr.decode(errors='replace')[:300]}")
        n += 1


async def kill_and_restart(c: Cluster, start: float, restarted: anyio.Event) -> None:
    victim = c.replicas[VICTIM]
    await anyio.sleep(max(0.0, start + KILL_AT_S - time.monotonic()))
    victim.kill9()
    await anyio.sleep(max(0.0, start + RESTART_AT_S - time.monotonic()))
    await anyio.to_thread.run_sync(victim.start)
    restarted.set()


async def sign_in(c: Cluster, name: str, password: str) -> User:
    provider, headless, _ = sdk_client(c, name, password, f"fault test {name}")
    transport = RetryOn502()
    async with mcp_client(c, provider, transport=transport) as client:
        assert structured(await client.call_tool("whoami", {}))["subject"] == name
    return User(name, provider, headless, transport)


async def test_kill_9_one_replica_under_load(replicas: Cluster) -> None:
    c = replicas
    users = [await sign_in(c, name, pw) for name, pw in USERS]
    # The refresh chain's grant: the first user's, a second one of its own.
    chain_provider, chain_headless, chain_storage = sdk_client(c, USERS[0][0], USERS[0][1], "fault test chain")
    async with mcp_client(c, chain_provider) as client:
        await client.call_tool("whoami", {})
    first_refresh = chain_storage.tokens.refresh_token
    client_id = chain_storage.client_info.client_id

    tally = Tally()
    restarted = anyio.Event()
    start = time.monotonic()
    until = start + LOAD_S
    async with anyio.create_task_group() as tg:
        for u in users:
            tg.start_soon(calls, c, u, tally, until, restarted)
        tg.start_soon(refresh_chain, c, client_id, first_refresh, tally, until)
        tg.start_soon(create_keys, c, tally, until)
        tg.start_soon(kill_and_restart, c, start, restarted)
    summary = (
        f"{tally.answers} checked answers ({tally.answers_after_restart} after the restart), "
        f"{tally.refreshes} chain refreshes ({tally.lost_refreshes} retried), {len(tally.keys)} keys, "
        f"retries {[dict(u.transport.retried) for u in users]}, errors {tally.errors[:10]}"
    )
    print(summary)

    # Nobody got anybody else's answer, and every client went on after the kill.
    assert tally.wrong == [], tally.wrong
    assert tally.answers_after_restart >= len(users), summary
    for u in users:
        assert len(u.headless.authorization_urls) == 1, f"{u.name} had to sign in again: {summary}"
        async with mcp_client(c, u.provider, transport=u.transport) as client:
            assert structured(await client.call_tool("whoami", {}))["subject"] == u.name

    # Every key the CLI acknowledged is listed and works for its own subject.
    assert len(tally.keys) >= 3, summary
    listed = c.cli("keys", "list")
    assert listed.returncode == 0, listed.stderr.decode(errors="replace")
    for name in tally.keys:
        assert name in listed.stdout.decode(), f"{name} missing from keys list"
    for name, key in tally.keys.items():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30.0)
        async with connect(streamable_http_client(c.url(), http_client=http), LEGACY) as client:
            assert structured(await client.call_tool("whoami", {}))["subject"] == f"subj-{name}"

    # The refresh chain's last acknowledged token still refreshes.
    assert tally.refreshes > 10, summary
    async with httpx2.AsyncClient(timeout=30.0) as http:
        r = await http.post(
            f"{c.base}/token",
            data={"grant_type": "refresh_token", "refresh_token": tally.refresh_token, "client_id": client_id},
        )
    assert r.status_code == 200, r.text
    assert len(chain_headless.authorization_urls) == 1

    # The restarted replica serves again (its counters started from zero at the restart).
    assert c.replicas[VICTIM].http_requests() > 0
