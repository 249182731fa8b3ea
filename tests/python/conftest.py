"""Fixtures for mcpgate's end-to-end suite.

One real `mcpgate serve` process is started per test session, on a free
loopback port, with a temporary config and data directory. Its upstreams:

- ``demo``: ``mcpgate demo-server`` over stdio, one child per client session;
- ``everything``: ``@modelcontextprotocol/server-everything`` over stdio, run
  with node from tests/node/node_modules (no network, no npx);
- ``shared``: the demo again, one child shared by every client.

A second gateway (`single_gateway`) has exactly one upstream, the demo over
Streamable HTTP (`mcpgate demo-server --http`), so `/mcp` and `/sse` serve it.

The store is SQLite in each gateway's data directory, or with
`MCPGATE_TEST_STORE=postgres` a PostgreSQL database per data directory
(store.py), dropped when the session ends.

At the end each gateway gets SIGTERM and must exit with status 0 within 10 s.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx2
import pytest
import store
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


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """On PostgreSQL runs, drops the databases store.py created, once every
    gateway is stopped: set up before any other fixture, torn down after them."""
    yield
    store.drop_all()


def _start_gateway(binary: Path, root: Path, config: str) -> tuple[Gateway, Any]:
    """Runs `mcpgate serve` with `config`; returns once /healthz answers 200."""
    data_dir = root / "gateway-data"
    data_dir.mkdir(exist_ok=True)
    config_path = root / "mcpgate.toml"
    config_path.write_text(config)
    log_path = root / "mcpgate.log"

    log = open(log_path, "wb")  # noqa: SIM115 - closed by _stop_gateway or abort
    env = store.apply(dict(os.environ), data_dir)
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

    def abort(why: str) -> NoReturn:
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
    found: re.Match[str] | None = None
    deadline = time.monotonic() + START_TIMEOUT_S
    while found is None:
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
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            abort(f"mcpgate closed stdout before listening (status {proc.poll()}); stdout: {seen!r}")
        seen.append(line)
        found = LISTENING.search(line)

    base, port = found.group(1), int(found.group(2))
    gw = Gateway(base=base, port=port, proc=proc, log_path=log_path, config_path=config_path, stdout_lines=seen)

    last = "no attempt"
    while True:
        try:
            r = httpx2.get(f"{base}/healthz", timeout=2.0)
            if r.status_code == 200:
                return gw, log
            last = f"status {r.status_code}: {r.text[:200]!r}"
        except httpx2.HTTPError as error:
            last = repr(error)
        if time.monotonic() > deadline:
            abort(f"GET /healthz did not answer 200 within {START_TIMEOUT_S:.0f} s (last: {last})")
        if proc.poll() is not None:
            abort(f"mcpgate exited with status {proc.returncode} while waiting for /healthz")
        time.sleep(0.1)


def _stop_gateway(gw: Gateway, log: Any) -> None:
    """SIGTERM, then a clean exit (status 0) within 10 s."""
    proc = gw.proc
    try:
        if proc.poll() is not None:
            pytest.fail(f"mcpgate died during the tests with status {proc.returncode}\n{gw.log_tail()}", pytrace=False)
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            pytest.fail(f"mcpgate did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM\n{gw.log_tail()}", pytrace=False)
        if status != 0:
            pytest.fail(f"mcpgate exited with status {status} after SIGTERM (want 0)\n{gw.log_tail()}", pytrace=False)
    finally:
        log.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The main gateway: stdio upstreams `demo`, `everything` and `shared`."""
    binary = _mcpgate_bin()
    everything = _everything_entry()
    node = _node()

    root = tmp_path_factory.mktemp("mcpgate")
    demo_data = root / "demo-data"
    shared_data = root / "shared-data"
    for d in (demo_data, shared_data):
        d.mkdir()

    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(root / "gateway-data")}

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
    gw, log = _start_gateway(binary, root, config)
    yield gw
    _stop_gateway(gw, log)


@pytest.fixture(scope="session")
def http_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mcpgate demo-server --http` on a free loopback port; yields its MCP URL."""
    binary = _mcpgate_bin()
    root = tmp_path_factory.mktemp("http-demo")
    port = _free_port()
    log_path = root / "demo.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "demo-server", "--http", f"127.0.0.1:{port}", "--data-dir", str(root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"demo-server --http did not listen on 127.0.0.1:{port} (status {proc.poll()})\n"
                        + log_path.read_text(errors="replace")[-3000:],
                        pytrace=False,
                    )
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@pytest.fixture(scope="session")
def single_gateway(tmp_path_factory: pytest.TempPathFactory, http_demo: str) -> Iterator[Gateway]:
    """A second gateway with exactly one upstream, the demo over Streamable HTTP,
    so `/mcp` and `/sse` also serve it."""
    binary = _mcpgate_bin()
    root = tmp_path_factory.mktemp("mcpgate-single")
    config = f"""\
[server]
listen = "127.0.0.1:0"
data_dir = {_toml_str(root / "gateway-data")}

[auth]
mode = "disabled"

[[upstream]]
name = "web"
url = {_toml_str(http_demo)}
transport = "streamable-http"
"""
    gw, log = _start_gateway(binary, root, config)
    yield gw
    _stop_gateway(gw, log)
