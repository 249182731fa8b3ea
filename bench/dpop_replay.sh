#!/usr/bin/env bash
# What the gateway's cluster-wide DPoP replay check costs on PostgreSQL: the statement
# each DPoP request runs (`Store::dpop_first_use`, the insert-if-absent into `dpop_jtis`
# of migration 0009), timed by pgbench on a database of the run's own, with a fresh
# key per statement as every proof has. One client on one connection (a request's own
# round trip) and BENCH_CLIENTS at once (many requests in flight on several replicas).
#
#   bench/dpop_replay.sh
#
# Knobs: BENCH_DURATION [5] BENCH_CLIENTS [8]
#   BENCH_POSTGRES_URL [MCPGATE_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres]
# Needs psql and pgbench. The gateway's own side (sqlx building the query, the pool) is
# not in this figure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/dpop_replay.sh"
WORK_PREFIX="mcpgate-dpop-replay-bench"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

DURATION="${BENCH_DURATION:-5}"
CLIENTS="${BENCH_CLIENTS:-8}"
PG_SERVER="${BENCH_POSTGRES_URL:-${MCPGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
for tool in psql pgbench; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

DB="mcpgate_bench_dpop_$$"
psql "$PG_SERVER" -qc "CREATE DATABASE $DB" >/dev/null || die "cannot create a database on $PG_SERVER"
DB_URL="${PG_SERVER%/*}/$DB"
trap 'cleanup; psql "$PG_SERVER" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
# The table as migration 0009 makes it.
sed -n '/CREATE TABLE dpop_jtis/,/CREATE INDEX dpop_jtis_expires/p' \
    crates/mcpgate-store/migrations/postgres/0009_*.sql | psql "$DB_URL" -q >/dev/null
# The statement of `dpop_first_use`; a random 256-bit key stands for a proof's replay key.
# `async`: as the store runs it (its own transaction, synchronous_commit off);
# `sync`: the same insert committed with a WAL flush, for comparison.
INSERT_SQL="INSERT INTO dpop_jtis (key, expires_at) VALUES (md5(random()::text) || md5(random()::text), :now + 70)
  ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_jtis.expires_at < :now;"
printf '\\set now 1800000000\nBEGIN;\nSET LOCAL synchronous_commit = off;\n%s\nCOMMIT;\n' "$INSERT_SQL" >"$WORK/async.sql"
printf '\\set now 1800000000\n%s\n' "$INSERT_SQL" >"$WORK/sync.sql"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
for mode in async sync; do
    for c in 1 "$CLIENTS"; do
        step "pgbench $mode: $c client(s), ${DURATION}s"
        pgbench -n -f "$WORK/$mode.sql" -c "$c" -j "$((c > 2 ? 2 : c))" -T "$DURATION" "$DB_URL" 2>&1 \
            | grep -E '^(latency average|tps)' | sed "s/^/  $mode, $c client(s): /"
    done
done
echo "  load average $LOAD_START -> $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores; rows: $(psql "$DB_URL" -tAc 'SELECT count(*) FROM dpop_jtis')"
