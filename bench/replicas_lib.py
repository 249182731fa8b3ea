"""Shared by bench/revocation.py and bench/forwarding.py: replicas on a fresh PostgreSQL database."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MCPGATE_BIN", os.path.join(ROOT, "target/debug/mcpgate"))
SERVER = os.environ.get("MCPGATE_TEST_POSTGRES_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
# The replicas share the master key, as a deployment's would.
MASTER = subprocess.run(["openssl", "rand", "-base64", "32"], capture_output=True, text=True,
                        check=True).stdout.strip()


def db_url(name):
    base, _, query = SERVER.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def psql(url, sql):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def start_replica(cfg, data, log):
    """`mcpgate serve` on a free port; the process and its base URL."""
    p = subprocess.Popen([BIN, "serve", "--config", cfg, "--data-dir", data, "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
                         env={**os.environ, "MCPGATE_MASTER_KEY": MASTER})
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return p, m.group(1)
        if not line and p.poll() is not None:
            break
    sys.exit(f"replica did not start; see {log}")


@contextlib.contextmanager
def two_replicas(tag):
    """Replicas A and B of one configuration (the demo as a per-session stdio child
    named `local`) on a fresh database: yields (store URL, A's base URL, B's). Both
    stopped, their files and the database dropped at the end."""
    name = f"mcpgate_bench_{tag}_{os.getpid()}"
    psql(SERVER, f"CREATE DATABASE {name}")
    url = db_url(name)
    tmp = tempfile.mkdtemp(prefix=f"mcpgate-{tag}-")
    procs = []
    try:
        cfg = os.path.join(tmp, "mcpgate.toml")
        with open(cfg, "w") as f:
            f.write(f'[server]\nsession_key_file = "{tmp}/session.key"\n\n[store]\nurl = "{url}"\n\n'
                    f'[[upstream]]\nname = "local"\ncommand = ["{BIN}", "demo-server", "--data-dir", "{tmp}/demo"]\n')
        bases = []
        for r in ("a", "b"):
            p, base = start_replica(cfg, os.path.join(tmp, r), os.path.join(tmp, f"{r}.log"))
            procs.append(p)
            bases.append(base)
        yield url, bases[0], bases[1]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        psql(SERVER, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
