"""`server.worker_threads` event loops: each client connection is served whole
by one loop's thread (its requests, and the upstream connection they go out
on), the connections are spread over the loops, and no other loop wakes on
a request's way. Observed from outside, through the real binary's threads in
/proc: a thread that serves a request has to wake for it."""

from __future__ import annotations

from pathlib import Path

import httpx2
from conftest import _mcpgate_bin, _start_gateway, _stop_gateway, _toml_str
from support import open_session, post_message

LOOPS = 3
CALLS = 60


def _threads(pid: int) -> dict[str, int]:
    """The gateway's event loop threads (main: loop 0), each with its context switches so far."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            status = (task / "status").read_text()
        except OSError:
            continue  # a blocking-pool thread that just ended
        if task.name == str(pid):
            name = "loop-0"
        elif name.startswith("mcpgate-loop-"):
            name = name.removeprefix("mcpgate-")
        else:
            continue
        # voluntary_ctxt_switches and nonvoluntary_ctxt_switches
        switches = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches:" in line)
        out[name] = switches
    return out


def test_each_connection_is_served_by_one_loop_and_the_connections_are_spread(tmp_path: Path, http_demo: str) -> None:
    config = f"""\
[server]
data_dir = {_toml_str(tmp_path / "gateway-data")}
worker_threads = {LOOPS}

[auth]
mode = "disabled"

# The audit writer is background work of loop 0 that every call wakes once per
# batch; off here, so that loop 0 is only what its connections make it.
[audit]
enabled = false

[[upstream]]
name = "web"
url = {_toml_str(http_demo)}
transport = "streamable-http"
"""
    gw, log = _start_gateway(_mcpgate_bin(), tmp_path, config)
    clients: list[httpx2.Client] = []
    try:
        names = sorted(_threads(gw.proc.pid))
        assert names == [f"loop-{i}" for i in range(LOOPS)], names
        assert "event_loops=3" in gw.log_path.read_text(), gw.log_tail()
        url = gw.url("web")
        busiest: list[str] = []
        for n in range(LOOPS):
            # One keep-alive connection per client, kept open while the next one
            # starts, so that each new connection finds the others' loops busy.
            client = httpx2.Client(timeout=30.0, limits=httpx2.Limits(max_connections=1))
            clients.append(client)
            session = open_session(client, url, "loops")
            before = _threads(gw.proc.pid)
            for i in range(CALLS):
                call = {
                    "jsonrpc": "2.0",
                    "id": 10 + i,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": f"call {i}"}},
                }
                r = post_message(client, url, call, session)
                assert r.status_code == 200, r.text
                assert f"call {i}" in r.text, r.text
            after = _threads(gw.proc.pid)
            woke = {name: after[name] - before[name] for name in after}
            serving = max(woke, key=lambda name: woke[name])
            # The serving loop wakes at least once per request (it reads each one).
            assert woke[serving] >= CALLS, f"connection {n}: {woke}"
            # The others do not take part: no hand-off of the request, the upstream
            # call or its answer (a few timer wake-ups are allowed).
            others = {name: w for name, w in woke.items() if name != serving}
            assert all(w <= CALLS // 4 for w in others.values()), f"connection {n} woke other loops: {woke}"
            busiest.append(serving)
        assert sorted(busiest) == [f"loop-{i}" for i in range(LOOPS)], f"connections were not spread: {busiest}"
    finally:
        for c in clients:
            c.close()
        _stop_gateway(gw, log)
