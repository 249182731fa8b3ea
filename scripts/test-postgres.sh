# Sourced by scripts/test: finds a PostgreSQL for the tests, the same way on
# every machine, and exports MCPGATE_TEST_POSTGRES_URL (a server URL whose
# user may create databases; each test creates its own and drops it):
#
#   1. MCPGATE_TEST_POSTGRES_URL when set;
#   2. else one listening on 127.0.0.1:5432 (user postgres, trust auth);
#   3. else a throwaway cluster under target/pg-test (initdb, pg_ctl) on a
#      free port, Debian's `postgresql` package apt-get installed when missing
#      (as root), stopped when scripts/test exits.
#
# psql (Debian's postgresql-client, apt-get installed when missing) is needed
# too: the Python and Node suites create their databases with it.
#
# Needs: ROOT, VENV, step, die, apt_install from scripts/test.

pg_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" ]] && { printf '%s\n' "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

if [[ -n "${MCPGATE_TEST_POSTGRES_URL:-}" ]]; then
    step "PostgreSQL for the tests: MCPGATE_TEST_POSTGRES_URL"
elif pg_listening 5432; then
    export MCPGATE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
    step "PostgreSQL for the tests: the one on 127.0.0.1:5432"
else
    PG_BIN="$(pg_bin || true)"
    if [[ -z "$PG_BIN" ]]; then
        apt_install postgresql || die "PostgreSQL is needed for the store's tests: set MCPGATE_TEST_POSTGRES_URL, run one on 127.0.0.1:5432, or install Debian's postgresql package (initdb, pg_ctl)"
        PG_BIN="$(pg_bin)" || die "postgresql is installed but initdb is not found"
    fi
    PG_DIR="$ROOT/target/pg-test"
    PG_PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    rm -rf "$PG_DIR" && mkdir -p "$PG_DIR"
    # initdb refuses to run as root: run the cluster as the postgres user then.
    as_pg=()
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" postgres
        chown postgres "$PG_DIR"
        as_pg=(runuser -u postgres --)
    fi
    step "PostgreSQL for the tests: a throwaway cluster in $PG_DIR on port $PG_PORT"
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
        || { cat "$PG_DIR/server.log" >&2; die "pg_ctl start failed"; }
    # shellcheck disable=SC2064 # expand now: the trap must stop this cluster
    trap "\"\${as_pg[@]}\" '$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m fast stop >/dev/null 2>&1 || true" EXIT
    export MCPGATE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
fi

# The Python and Node harnesses create and drop their databases with psql.
command -v psql >/dev/null 2>&1 || apt_install postgresql-client \
    || die "psql is needed to create the tests' databases: install Debian's postgresql-client"
