"""Fixtures for mcpgate's end-to-end suite.

One real `mcpgate serve` process is started per test session, on a free
loopback port, with a temporary config and data directory. Its upstreams:

- ``demo``: ``mcpgate demo-server`` over stdio, one child per client session;
- ``everything``: ``@modelcontextprotocol/server-everything`` over stdio, run
  with node from tests/node/node_modules (no network, no npx);
- ``shared``: the demo again, one child shared by every client.

At the end the gateway gets SIGTERM and must exit with status 0 within 10 s.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from support import Gateway

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"mcpgate: listening on (http://127\.0\.0\.1:(\d+))\s*$")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def _mcpgate_bin() -> Path:
    raw = os.environ.get("MCPGATE_BIN")
    path = Path(raw) if raw else REPO / "target" / "debug" / "mcpgate"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"mcpgate binary not found at {path}: run `cargo build -p mcpgate` "
            "or set MCPGATE_BIN (scripts/test does both)",
            pytrace=False,
        )
    return path.resolve()


def _everything_entry() -> Path:
    raw = os.environ.get("MCPGATE_NODE_MODULES")
    modules = Path(raw) if raw else REPO / "tests" / "node" / "node_modules"
    if not modules.is_absolute():
        modules = REPO / modules
    entry = modules / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
    if not entry.is_file():
        pytest.fail(
            f"{entry} is missing: run `npm ci` in tests/node (scripts/test does)",
            pytrace=False,
        )
    return entry.resolve()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; it runs server-everything", pytrace=False)
    return node


def _toml_str(value: str | Path) -> str:
    # A JSON string is a valid TOML basic string for everything we write here.
    return json.dumps(str(value))


def _toml_list(values: list[str | Path]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def _drain(stream: Any, lines: queue.Queue[str | None]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", errors="replace").rstrip("\n"))
    lines.put(None)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Starts `mcpgate serve` for the whole session and stops it cleanly at the end."""
    binary = _mcpgate_bin()
    everything = _everything_entry()
    node = _node()

    root = tmp_path_factory.mktemp("mcpgate")
    data_dir = root / "gateway-data"
    demo_data = root / "demo-data"
    shared_data = root / "shared-data"
    for d in (data_dir, demo_data, shared_data):
        d.mkdir()

    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(data_dir)}

[auth]
mode = "disabled"

[[upstream]]
name = "demo"
command = {_toml_list([binary, "demo-server", "--data-dir", demo_data])}
isolation = "session"

[[upstream]]
name = "everything"
command = {_toml_list([node, everything, "stdio"])}

[[upstream]]
name = "shared"
command = {_toml_list([binary, "demo-server", "--data-dir", shared_data])}
isolation = "shared"
"""
    config_path = root / "mcpgate.toml"
    config_path.write_text(config)
    log_path = root / "mcpgate.log"

    log = open(log_path, "wb")  # noqa: SIM115 - closed in the finalizer below
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    proc = subprocess.Popen(
        [
            str(binary),
            "serve",
            "--config",
            str(config_path),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=root,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_drain, args=(proc.stdout, lines), daemon=True).start()

    def abort(why: str) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
        text = log_path.read_text(errors="replace")
        pytest.fail(
            f"{why}\nconfig:\n{config}\nstderr (last lines):\n" + "\n".join(text.splitlines()[-60:]),
            pytrace=False,
        )

    seen: list[str] = []
    base = port = None
    deadline = time.monotonic() + START_TIMEOUT_S
    while base is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            abort(f"mcpgate printed no 'listening on' line within {START_TIMEOUT_S:.0f} s; stdout: {seen!r}")
        try:
            line = lines.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            if proc.poll() is not None:
                abort(f"mcpgate exited with status {proc.returncode} before listening; stdout: {seen!r}")
            continue
        if line is None:
            proc.wait(5)
            abort(f"mcpgate closed stdout before listening (status {proc.poll()}); stdout: {seen!r}")
            return
        seen.append(line)
        if m := LISTENING.search(line):
            base, port = m.group(1), int(m.group(2))

    gw = Gateway(base=base, port=port, proc=proc, log_path=log_path, config_path=config_path, stdout_lines=seen)

    # Wait for /healthz.
    last: str = "no attempt"
    while True:
        try:
            r = httpx2.get(f"{base}/healthz", timeout=2.0)
            if r.status_code == 200:
                break
            last = f"status {r.status_code}: {r.text[:200]!r}"
        except httpx2.HTTPError as error:
            last = repr(error)
        if time.monotonic() > deadline:
            abort(f"GET /healthz did not answer 200 within {START_TIMEOUT_S:.0f} s (last: {last})")
        if proc.poll() is not None:
            abort(f"mcpgate exited with status {proc.returncode} while waiting for /healthz")
        time.sleep(0.1)

    yield gw

    # Stop: SIGTERM, then a clean exit within 10 s.
    if proc.poll() is not None:
        log.close()
        pytest.fail(
            f"mcpgate died during the tests with status {proc.returncode}\n{gw.log_tail()}",
            pytrace=False,
        )
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        log.close()
        pytest.fail(
            f"mcpgate did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM\n{gw.log_tail()}",
            pytrace=False,
        )
    log.close()
    if status != 0:
        pytest.fail(f"mcpgate exited with status {status} after SIGTERM (want 0)\n{gw.log_tail()}", pytrace=False)
