"""Replicas behind nginx, for test_nginx_replicas.py and test_replica_fault.py:
three `mcpgate serve` processes on one PostgreSQL database of the test's own
(created fresh, dropped at the end), sharing the master key, the session key and
`server.public_url` (nginx's address), each with its own data directory, metrics
listener and log; in front of them Debian's nginx running
packaging/nginx/mcpgate.conf, the file docs/DEPLOYMENT.md documents, with the
test's ports put in, as a non-daemon process with its own prefix under the test's
temporary directory. The MCP upstream is `mcpgate demo-server --http` (an HTTP
upstream keeps its sessions itself, so any replica continues them);
`everything_http` runs server-everything over Streamable HTTP for tests that need
an upstream whose streams resume (it keeps an event store per session).

PostgreSQL: `MCPGATE_TEST_POSTGRES_URL` (a server URL whose user may create
databases), else postgres://postgres@127.0.0.1:5432/postgres; scripts/test
provides one. Databases are created and dropped with `psql` (store.py). The
replicas use this database on both runs of the suite (SQLite and PostgreSQL):
`[store] url` names it, so store.py's per-directory database is not made.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
import store
from conftest import REPO, _everything_entry, _free_port, _mcpgate_bin, _node, _toml_str
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from support import LEGACY, Browser, Gateway, MemoryTokenStorage, connect, start_gateway_at, stop_gateway
from test_oauth_sdk import Headless

NGINX_CONF = REPO / "packaging" / "nginx" / "mcpgate.conf"
# One access log line of packaging/nginx/mcpgate.conf's `mcpgate_lb` format.
LB_LINE = re.compile(
    r'"(?P<method>\S+) (?P<uri>\S+)" (?P<status>\d+) upstream=(?P<upstream>.*?) '
    r"upstream_status=(?P<upstream_status>.*?) session=(?P<session>\S*) rt="
)


def nginx_binary() -> str:
    """Debian's nginx, or skip the test saying why (scripts/test installs it as root)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; scripts/test installs it when run as root)")
    return found


@contextmanager
def postgres_database(tag: str) -> Iterator[str]:
    """A fresh database on `store.postgres_server()`; yields its URL, dropped at the end."""
    name = f"mcpgate_py_{tag}_{os.getpid()}_{time.monotonic_ns() % 1_000_000_000}"
    store.psql(f"CREATE DATABASE {name}")
    try:
        yield store.url_of(name)
    finally:
        store.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def random_key() -> str:
    """32 random bytes, base64: a master key or a session key."""
    return base64.b64encode(os.urandom(32)).decode()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} is not listening on {port} (status {proc.poll()})\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


# Node's listen(port) binds every interface; this makes server-everything bind
# 127.0.0.1 only (loopback, as every test process here).
LOOPBACK_PRELOAD = """
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  if (typeof port === "number" || (typeof port === "string" && /^\\d+$/.test(port))) {
    const cb = args.find((a) => typeof a === "function");
    const opts = { port: Number(port), host: "127.0.0.1" };
    return cb ? listen.call(this, opts, cb) : listen.call(this, opts);
  }
  return listen.apply(this, args);
};
"""


@contextmanager
def everything_http(root: Path) -> Iterator[str]:
    """server-everything in Streamable HTTP mode on a free loopback port (its
    sessions keep an in-memory event store, so their streams resume with
    Last-Event-ID); yields its MCP URL, stopped at the end."""
    root.mkdir(parents=True, exist_ok=True)
    preload = root / "loopback.cjs"
    preload.write_text(LOOPBACK_PRELOAD)
    port = _free_port()
    log = root / "everything.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [_node(), "--require", str(preload), str(_everything_entry()), "streamableHttp"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PORT": str(port)},
            cwd=root,
        )
    try:
        _wait_listening(port, proc, "server-everything (streamableHttp)", log)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@dataclass
class Nginx:
    """nginx in the foreground (`daemon off`), its prefix and logs in `root`."""

    port: int
    root: Path
    proc: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    def entries(self) -> list[dict[str, str]]:
        """Every request nginx logged so far, parsed."""
        entries = []
        for line in self.access_log.read_text(errors="replace").splitlines():
            m = LB_LINE.search(line)
            assert m, f"an access log line of another format: {line}"
            entries.append(m.groupdict())
        return entries

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_nginx(root: Path, listen_port: int, replica_ports: list[int]) -> Nginx:
    """packaging/nginx/mcpgate.conf with the test's ports and log, inside a
    minimal main configuration of its own (pid, error log and temp paths under `root`)."""
    root.mkdir(parents=True, exist_ok=True)
    site = NGINX_CONF.read_text()
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+", site, flags=re.M)
    assert len(servers) == len(replica_ports), f"{NGINX_CONF} names {len(servers)} replicas"
    for port in replica_ports:
        site = re.sub(r"^(\s*server )127\.0\.0\.1:808\d", rf"\g<1>127.0.0.1:{port}", site, count=1, flags=re.M)
    site, n = re.subn(r"listen 127\.0\.0\.1:8080;", f"listen 127.0.0.1:{listen_port};", site)
    assert n == 1, "the listen line of packaging/nginx/mcpgate.conf changed"
    site, n = re.subn(r"/var/log/nginx/mcpgate\.access\.log", str(root / "access.log"), site)
    assert n == 1, "the access_log line of packaging/nginx/mcpgate.conf changed"
    (root / "mcpgate.conf").write_text(site)
    temp = "\n".join(
        f"    {kind}_temp_path {root / 'tmp' / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would run as `nobody`, which cannot enter the test's 0700 directory.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    (root / "nginx.conf").write_text(
        f"daemon off;\n{user}worker_processes 1;\npid {root / 'nginx.pid'};\n"
        f"error_log {root / 'error.log'} info;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n{temp}\n    include {root / 'mcpgate.conf'};\n}}\n"
    )
    (root / "tmp").mkdir(exist_ok=True)
    binary = nginx_binary()
    test = subprocess.run(
        [binary, "-t", "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
        capture_output=True,
        timeout=30,
    )
    assert test.returncode == 0, f"nginx -t: {test.stderr.decode(errors='replace')}"
    log = root / "nginx.stderr"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait_listening(listen_port, proc, "nginx", log)
    return Nginx(port=listen_port, root=root, proc=proc)


@dataclass
class Replica:
    """One `mcpgate serve` on a fixed port (a restart keeps it, so nginx finds it again)."""

    index: int
    port: int
    metrics_port: int
    root: Path
    config: str
    env: dict[str, str]
    gw: Gateway | None = None

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """How nginx's `$upstream_addr` names it."""
        return self.listen

    def start(self) -> None:
        self.gw = start_gateway_at(
            _mcpgate_bin(), self.root, self.config, self.listen, self.root / "data", self.env, own_store=False
        )

    def kill9(self) -> None:
        assert self.gw is not None
        self.gw.proc.send_signal(signal.SIGKILL)
        self.gw.proc.wait(10)

    def stop(self) -> None:
        if self.gw is not None and self.gw.proc.poll() is None:
            stop_gateway(self.gw)

    def log(self) -> str:
        """Every log this replica wrote, across restarts."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("mcpgate-*.log")))

    def http_requests(self) -> int:
        """The sum of its `mcpgate_http_requests_total` since its last start."""
        text = httpx2.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10.0).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("mcpgate_http_requests_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


def replica_config(
    public: str, store_url: str, metrics_port: int, upstreams: str, authserver: str, server: str = ""
) -> str:
    return f"""\
[server]
public_url = {_toml_str(public)}
request_timeout = "30s"
{server}

[auth]
mode = "required"

[authserver]
enabled = true
{authserver}

[store]
url = {_toml_str(store_url)}

[metrics]
listen = "127.0.0.1:{metrics_port}"

{upstreams}
"""


def http_upstream(name: str, url: str) -> str:
    """An `[[upstream]]` over Streamable HTTP that needs `notes:read`."""
    return f"""\
[[upstream]]
name = "{name}"
url = {_toml_str(url)}
transport = "streamable-http"
required_scopes = "notes:read"
"""


@dataclass
class Cluster:
    """The replicas, nginx in front of them, and the database behind them."""

    store_url: str
    nginx: Nginx
    replicas: list[Replica]
    master_key: str
    root: Path
    cli_runs: list[list[str]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.nginx.base

    def url(self, upstream: str = "notes") -> str:
        return f"{self.base}/mcp/{upstream}"

    def cli(self, *args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """`mcpgate ARGS --store-url URL`, with the shared master key."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCPGATE_")}
        env["MCPGATE_MASTER_KEY"] = self.master_key
        argv = [str(_mcpgate_bin()), *args, "--store-url", self.store_url, "--data-dir", str(self.root / "cli-data")]
        self.cli_runs.append(argv)
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, env=env)

    def add_user(self, name: str, password: str, scopes: str) -> None:
        out = self.cli("users", "add", name, "--password-stdin", "--scopes", scopes, stdin=password.encode())
        assert out.returncode == 0, out.stderr.decode(errors="replace")

    def served_by(self) -> Counter[str]:
        """How many requests nginx sent to each replica (by the address that answered)."""
        return Counter(e["upstream"].split(", ")[-1] for e in self.nginx.entries())

    def logs(self) -> str:
        return "\n\n".join(f"--- replica {r.index} ---\n{r.log()[-4000:]}" for r in self.replicas)


@contextmanager
def cluster(
    root: Path,
    upstream_url: str,
    authserver: str,
    replicas: int = 3,
    more_upstreams: str = "",
    server: str = "",
) -> Iterator[Cluster]:
    """`replicas` replicas on a fresh database behind nginx; all stopped (and the
    database dropped) at the end, each replica required to exit cleanly on SIGTERM.
    Their upstreams: `notes` over HTTP at `upstream_url`, then `more_upstreams`
    (`[[upstream]]` TOML, e.g. a stdio one); `server`: more `[server]` lines."""
    nginx_binary()
    with postgres_database(root.name.replace("-", "_")[:20]) as store_url:
        nginx_port = _free_port()
        public = f"http://127.0.0.1:{nginx_port}"
        master_key, session_key = random_key(), random_key()
        env = {"MCPGATE_MASTER_KEY": master_key, "MCPGATE_SERVER__SESSION_KEY": session_key, "RUST_LOG": "info"}
        members = []
        for i in range(replicas):
            metrics_port = _free_port()
            upstreams = http_upstream("notes", upstream_url) + more_upstreams
            config = replica_config(public, store_url, metrics_port, upstreams, authserver, server)
            members.append(Replica(i, _free_port(), metrics_port, root / f"replica-{i}", config, env))
        for r in members:
            r.root.mkdir(parents=True)
        c = Cluster(store_url=store_url, nginx=None, replicas=members, master_key=master_key, root=root)  # type: ignore[arg-type]
        try:
            # All at once: they migrate the fresh database once, under the advisory lock.
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(len(members)) as pool:
                list(pool.map(Replica.start, members))
            c.nginx = start_nginx(root / "nginx", nginx_port, [r.port for r in members])
            yield c
        finally:
            if c.nginx is not None:
                c.nginx.stop()
            for r in members:
                r.stop()


def sdk_client(
    c: Cluster, user: str, password: str, name: str, upstream: str = "notes"
) -> tuple[OAuthClientProvider, Headless, MemoryTokenStorage]:
    """The SDK's OAuth client provider for `upstream` behind nginx, with the test's browser as `user`."""
    storage = MemoryTokenStorage()
    redirect_uri = f"http://127.0.0.1:{_free_port()}/callback"
    headless = Headless(Browser(c.base, user, password), redirect_uri)
    provider = OAuthClientProvider(
        server_url=c.url(upstream),
        client_metadata=OAuthClientMetadata(
            client_name=name,
            redirect_uris=[redirect_uri],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=headless.redirect_handler,
        callback_handler=headless.callback_handler,
    )
    return provider, headless, storage


def mcp_client(
    c: Cluster,
    provider: OAuthClientProvider,
    mode: str = LEGACY,
    upstream: str = "notes",
    transport: httpx2.AsyncBaseTransport | None = None,
) -> Any:
    """An SDK client of `upstream` through nginx, authenticated by `provider`."""
    http = httpx2.AsyncClient(auth=provider, timeout=30.0, transport=transport)
    return connect(streamable_http_client(c.url(upstream), http_client=http), mode)


class RetryOn502(httpx2.AsyncBaseTransport):
    """A client's retry policy behind a load balancer: a 502/503/504 from nginx (the
    replica died with the request in flight) or a failed connection is retried, the
    same request, a few times. Counts what it retried in `retried`."""

    STATUSES = (502, 503, 504)

    def __init__(self, attempts: int = 10, pause_s: float = 0.2) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.attempts = attempts
        self.pause_s = pause_s
        self.retried: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        import anyio

        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                response = await self.inner.handle_async_request(request)
            except httpx2.TransportError as error:
                if last:
                    raise
                self.retried[type(error).__name__] += 1
            else:
                if response.status_code not in self.STATUSES or last:
                    return response
                await response.aclose()
                self.retried[str(response.status_code)] += 1
            await anyio.sleep(self.pause_s)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def aclose(self) -> None:
        await self.inner.aclose()
