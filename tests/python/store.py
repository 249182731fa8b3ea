"""Which store the gateways and CLI calls of the suite use: SQLite in their data
directory (the default), or, with ``MCPGATE_TEST_STORE=postgres`` (scripts/test's
second run of the suite), a PostgreSQL database of their own on
``MCPGATE_TEST_POSTGRES_URL`` (else 127.0.0.1:5432), one per data directory, so
that a CLI call (`keys create`, `users add`) and the gateway on the same
``--data-dir`` share it, as they share ``mcpgate.sqlite``. The database reaches
the process as ``DATABASE_URL``, which a configured ``[store] url`` still
overrides (replicas.py's clusters name their own database).

The same scheme as the Rust suite's crates/mcpgate/tests/e2e/harness/store.rs.
Databases are created with ``psql`` on first use and dropped when the pytest
session ends (conftest.py's ``_drop_test_databases``); a run that was killed
leaves its databases to the next run's sweep (their pid is gone) and to
scripts/test's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
# Every database this module names: the prefix, the pytest process's pid, a hash of the data directory.
PREFIX = "mcpgate_py_pg_"

_created: set[str] = set()
_swept = False


def on_postgres() -> bool:
    """Whether this run puts the store on PostgreSQL."""
    return os.environ.get("MCPGATE_TEST_STORE") == "postgres"


def postgres_server() -> str:
    """A server URL whose user may create databases."""
    return os.environ.get("MCPGATE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES


def psql(sql: str, *, server: str | None = None, check: bool = True) -> str:
    """Runs `sql` on the server with psql; its unaligned output. Fails the test
    with what went wrong when `check` (a drop at teardown passes check=False)."""
    server = server or postgres_server()
    binary = shutil.which("psql")
    if binary is None:
        pytest.fail("psql is needed to create the tests' databases (Debian: postgresql-client)", pytrace=False)
    out = subprocess.run(
        [binary, server, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0 and check:
        pytest.fail(
            f"psql {sql!r} on {server} failed: {out.stderr} "
            "(set MCPGATE_TEST_POSTGRES_URL or run PostgreSQL on 127.0.0.1:5432; scripts/test does)",
            pytrace=False,
        )
    return out.stdout


def url_of(name: str, server: str | None = None) -> str:
    """The server URL with its database replaced by `name`."""
    base, _, query = (server or postgres_server()).partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


def name_for(data_dir: Path | str) -> str:
    """The database of a data directory: stable for the pytest process, so a
    gateway restarted on the same directory finds what it stored."""
    digest = hashlib.sha256(str(Path(data_dir).absolute()).encode()).hexdigest()[:16]
    return f"{PREFIX}{os.getpid()}_{digest}"


def _sweep_stale() -> None:
    """Drops the databases of earlier runs whose pytest process is gone."""
    listed = psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'", check=False)
    for name in listed.split():
        pid = name[len(PREFIX) :].split("_", 1)[0]
        if not Path("/proc", pid).exists():
            # Best effort: the next sweep tries again.
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)


def env_for(data_dir: Path | str) -> dict[str, str]:
    """The environment that points a process on `data_dir` at its store: nothing
    on SQLite; on PostgreSQL `DATABASE_URL` of the directory's own database,
    created on first use."""
    global _swept
    if not on_postgres():
        return {}
    if not _swept:
        _swept = True
        _sweep_stale()
    name = name_for(data_dir)
    if name not in _created:
        psql(f"CREATE DATABASE {name}")
        _created.add(name)
    return {"DATABASE_URL": url_of(name)}


def apply(env: dict[str, str], data_dir: Path | str) -> dict[str, str]:
    """`env` for a process on `data_dir`: a `DATABASE_URL` of the caller's own
    never leaks into it; on PostgreSQL runs it gets the directory's database."""
    out = {k: v for k, v in env.items() if k != "DATABASE_URL"}
    out.update(env_for(data_dir))
    return out


def data_dir_of(args: list[str]) -> str | None:
    """The `--data-dir` of a command line, if it has one."""
    for flag, value in zip(args, args[1:]):
        if flag == "--data-dir":
            return value
    return None


def drop_all() -> None:
    """Drops every database this process created (the gateways are stopped by now)."""
    for name in sorted(_created):
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)
    _created.clear()
