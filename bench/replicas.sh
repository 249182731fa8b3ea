#!/usr/bin/env bash
# tools/call through three replicas behind nginx vs one replica behind the same nginx
# configuration (issue 14). On a 2-core machine this shows what replication costs (a
# session continued by replicas that did not open it, three processes sharing the
# cores), not scaling.
#
#   three `mcpgate serve` on one PostgreSQL database (created for the run, dropped at
#   the end), the same session key and master key, one HTTP upstream (the demo's echo);
#   two nginx instances running packaging/nginx/mcpgate.conf, one with all three
#   replicas in its upstream block, one with only the first; one MCP session opened
#   through each nginx with an API key; wrk (bench/tools_call.lua) alternates between
#   them, BENCH_ROUNDS rounds of BENCH_DURATION seconds, and the ratio
#   three/one is taken per round (alternating cancels most drift of a busy machine).
#
#   bench/replicas.sh                   build (BENCH_PROFILE, default production), run (~1 min)
#   BENCH_NO_BUILD=1 bench/replicas.sh  reuse the binary already built (BENCH_PROFILE: production or release)
#
# Knobs: BENCH_CONNS [16] BENCH_THREADS [1] BENCH_DURATION [5] BENCH_ROUNDS [4]
#   BENCH_WORKER_THREADS: the replicas' server.worker_threads (unset: one per core); the
#   same value for every replica, so the one-replica runs use it too.
#   BENCH_POSTGRES_URL [MCPGATE_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres]:
#   a server whose user may create databases. MCPGATE_BIN: a binary to use.
# Needs wrk, nginx, psql, curl, python3. Results in target/bench/replicas-last-run/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/replicas.sh"
WORK_PREFIX="mcpgate-replicas-bench"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

CONNS="${BENCH_CONNS:-16}"
THREADS="${BENCH_THREADS:-1}"
DURATION="${BENCH_DURATION:-5}"
ROUNDS="${BENCH_ROUNDS:-4}"
WORKER_THREADS="${BENCH_WORKER_THREADS:-}"
PG_SERVER="${BENCH_POSTGRES_URL:-${MCPGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

for tool in wrk curl psql python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -x "$NGINX" ]] || die "nginx is required (Debian: apt-get install nginx)"
locate_binary

OUT="$ROOT/target/bench/replicas-last-run"
rm -rf "$OUT"
mkdir -p "$OUT"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- the database -----------------------------------------------------------------
DB="mcpgate_bench_replicas_$$"
psql "$PG_SERVER" -qc "CREATE DATABASE $DB" >/dev/null || die "cannot create a database on $PG_SERVER"
STORE_URL="${PG_SERVER%/*}/$DB"
trap 'cleanup; psql "$PG_SERVER" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT

# --- processes ----------------------------------------------------------------------
step "starting the demo upstream (Streamable HTTP)"
"$BIN" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo-http" >"$OUT/demo.out" 2>"$OUT/demo.err" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
UPSTREAM_URL="$(wait_line "$OUT/demo.out" 'listening on http://' "$DEMO_PID" | grep -oE 'http://[^ ]+')"

export MCPGATE_MASTER_KEY MCPGATE_SERVER__SESSION_KEY
MCPGATE_MASTER_KEY="$(openssl rand -base64 32)"
MCPGATE_SERVER__SESSION_KEY="$(openssl rand -base64 32)"
API_KEY="$("$BIN" keys create --data-dir "$WORK/cli" --store-url "$STORE_URL" --name bench --scopes '*' 2>"$OUT/keys.err")" \
    || die "mcpgate keys create failed; see $OUT/keys.err"

NGINX3_PORT="$(free_port)"
NGINX1_PORT="$(free_port)"
REPLICA_PORTS=()
REPLICA_PIDS=()
for i in 1 2 3; do
    port="$(free_port)"
    REPLICA_PORTS+=("$port")
    # One public URL per nginx would differ: the replicas accept both hosts
    # (allowed_origins is not involved: wrk sends no Origin).
    cat >"$WORK/replica-$i.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
data_dir = "$WORK/data-$i"
public_url = "http://127.0.0.1:$NGINX3_PORT"
log_format = "json"
${WORKER_THREADS:+worker_threads = $WORKER_THREADS}

[auth]
mode = "required"

[store]
url = "$STORE_URL"

[metrics]
listen = ""

[[upstream]]
name = "echo"
url = "$UPSTREAM_URL"
transport = "streamable-http"
EOF
    RUST_LOG=warn "$BIN" serve --config "$WORK/replica-$i.toml" >"$OUT/replica-$i.out" 2>"$OUT/replica-$i.err" &
    REPLICA_PIDS+=("$!")
    PIDS+=("$!")
done
for i in 0 1 2; do
    wait_line "$OUT/replica-$((i + 1)).out" 'listening on http://' "${REPLICA_PIDS[$i]}" >/dev/null
done
cp "$WORK/replica-1.toml" "$OUT/replica.toml"

NGINX_MASTERS=()
# nginx_start NAME PORT REPLICA_PORT...: packaging/nginx/mcpgate.conf with these ports.
nginx_start() {
    local name="$1" port="$2" dir="$WORK/nginx-$1" servers="" p
    shift 2
    mkdir -p "$dir/tmp"
    for p in "$@"; do
        servers+="    server 127.0.0.1:$p max_fails=1 fail_timeout=2s;\n"
    done
    # The three example `server` lines become this run's; the Host the replicas see is
    # the 3-replica nginx's (their public URL) for both, so both pass the Host check.
    python3 - "$ROOT/packaging/nginx/mcpgate.conf" "$dir/site.conf" "$port" "$servers" "$dir/access.log" "$NGINX3_PORT" <<'PY'
import re, sys
src, dst, port, servers, log, public_port = sys.argv[1:]
site = open(src).read()
site = re.sub(r"(?m)^\s*server 127\.0\.0\.1:808\d.*\n", "", site)
site = site.replace("    keepalive 32;", servers.replace("\\n", "\n") + "    keepalive 32;", 1)
site = site.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
site = site.replace("/var/log/nginx/mcpgate.access.log", log)
site = site.replace("proxy_set_header Host $http_host;", f"proxy_set_header Host 127.0.0.1:{public_port};")
open(dst, "w").write(site)
PY
    local user=""
    [[ "$(id -u)" == 0 ]] && user="user root root;"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    include $dir/site.conf;
}
EOF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$OUT/nginx-$name.out" 2>&1 &
    PIDS+=("$!")
    NGINX_MASTERS+=("$!")
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "nginx $name did not answer; see $dir/error.log"
}
step "starting nginx: three replicas on :$NGINX3_PORT, one on :$NGINX1_PORT"
nginx_start three "$NGINX3_PORT" "${REPLICA_PORTS[@]}"
nginx_start one "$NGINX1_PORT" "${REPLICA_PORTS[0]}"
cp "$WORK/nginx-three/site.conf" "$OUT/nginx-three.conf"

# open_session BASE: initialize + initialized with the API key; prints the session id.
open_session() {
    local base="$1" sid
    sid="$(curl -fsS -D - -o /dev/null "$base/mcp/echo" \
        -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}' \
        | tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" { print $2 }')"
    [[ -n "$sid" ]] || die "no Mcp-Session-Id from $base"
    curl -fsS -o /dev/null "$base/mcp/echo" -H "Authorization: Bearer $API_KEY" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25' \
        -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    printf '%s\n' "$sid"
}
SID3="$(open_session "http://127.0.0.1:$NGINX3_PORT")"
SID1="$(open_session "http://127.0.0.1:$NGINX1_PORT")"

RESULTS="$OUT/results.txt"
: >"$RESULTS"
NGINX_PIDS="${NGINX_MASTERS[*]} $(for m in "${NGINX_MASTERS[@]}"; do pgrep -P "$m"; done | tr '\n' ' ')"
# Where the machine's time goes in a run, per request: CPU of the replicas (all
# three, or the one that served), of the upstream and of nginx (masters and
# workers of both instances), and the replicas' context switches (summed over
# every thread, voluntary = went to sleep waiting, e.g. epoll or a futex).
# And the TCP connections opened on the machine (ActiveOpens: all processes,
# so other load counts too): nginx's keepalive cache should make it ~0 per request.
# snap: "gw_ticks ups_ticks nginx_ticks gw_vcs gw_nvcs busy_ticks tcp_opens".
snap() {
    local gw=0 ups nx=0 vcs=0 nvcs=0 pid t
    for pid in "${REPLICA_PIDS[@]}"; do
        gw=$((gw + $(cpu_ticks "$pid")))
        for t in /proc/"$pid"/task/*/status; do
            read -r a b < <(awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 } END { print v + 0, n + 0 }' "$t" 2>/dev/null || echo "0 0")
            vcs=$((vcs + a)); nvcs=$((nvcs + b))
        done
    done
    ups="$(cpu_ticks "$DEMO_PID")"
    for pid in $NGINX_PIDS; do nx=$((nx + $(cpu_ticks "$pid"))); done
    echo "$gw $ups $nx $vcs $nvcs $(machine_busy_ticks) $(awk '/^Tcp:/ { if (seen) print $6; seen = 1 }' /proc/net/snmp)"
}
# wrk_run LABEL PORT SID: one wrk run; prints its requests/s.
wrk_run() {
    local label="$1" port="$2" sid="$3" line before after
    before="$(snap)"
    MCP_SESSION_ID="$sid" BENCH_LABEL="$label" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
        -H "Authorization: Bearer $API_KEY" -s bench/tools_call.lua "http://127.0.0.1:$port/mcp/echo" \
        >"$OUT/wrk-$label.txt" 2>&1 || die "wrk failed; see $OUT/wrk-$label.txt"
    after="$(snap)"
    line="$(grep '^BENCH ' "$OUT/wrk-$label.txt")" || die "no result line in $OUT/wrk-$label.txt"
    echo "$line" >>"$RESULTS"
    python3 - "$label" "$line" "$before" "$after" "$TICKS" >>"$RESULTS" <<'PY'
import re, sys
label, line, before, after, ticks = sys.argv[1:]
n = int(re.search(r"requests=(\d+)", line).group(1)) or 1
d = [int(a) - int(b) for a, b in zip(after.split(), before.split())]
us = 1e6 / int(ticks)
print(f"PROC label={label} gw_cpu_us={d[0] * us / n:.1f} upstream_cpu_us={d[1] * us / n:.1f} "
      f"nginx_cpu_us={d[2] * us / n:.1f} machine_busy_us={d[5] * us / n:.1f} "
      f"gw_vcs={d[3] / n:.2f} gw_nvcs={d[4] / n:.2f} tcp_opens={d[6]}")
PY
    printf '    %s\n' "$line" >&2
    [[ "$line" == *"errors=0 non2xx=0"* ]] || die "$label had errors: $line"
    sed -E 's/.* rps=([0-9.]+) .*/\1/' <<<"$line"
}

step "warm-up"
DURATION=2 wrk_run warm-three "$NGINX3_PORT" "$SID3" >/dev/null
DURATION=2 wrk_run warm-one "$NGINX1_PORT" "$SID1" >/dev/null
RATIOS=()
for r in $(seq "$ROUNDS"); do
    step "round $r/$ROUNDS"
    three="$(wrk_run "three-$r" "$NGINX3_PORT" "$SID3")"
    one="$(wrk_run "one-$r" "$NGINX1_PORT" "$SID1")"
    RATIOS+=("$(python3 -c "print(f'{$three / $one:.3f}')")")
done
# Every replica served the three-replica runs (the session continued on all of them).
for p in "${REPLICA_PORTS[@]}"; do
    n="$(grep -c "upstream=127.0.0.1:$p " "$WORK/nginx-three/access.log" || true)"
    echo "replica 127.0.0.1:$p served $n requests through the three-replica nginx" | tee -a "$RESULTS" >&2
    [[ "$n" -gt 0 ]] || die "replica $p served nothing"
done
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RESULTS" "${RATIOS[*]}" "$LOAD_START" "$LOAD_END" "$(nproc)" "$CONNS" "$WORKER_THREADS" <<'PY'
import re, statistics, sys
results, ratios, load_start, load_end, nproc, conns, workers = sys.argv[1:]
rows = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in open(results) if l.startswith("BENCH ")]
def med(prefix, key):
    return statistics.median(float(r[key]) for r in rows if r["label"].startswith(prefix))
ratios = [float(x) for x in ratios.split()]
print(f"tools/call (echo over HTTP, one session, wrk -c{conns}), {nproc} cores, load {load_start} -> {load_end}, replicas' worker_threads {workers or 'default (one per core)'}")
for name, prefix in (("three replicas", "three-"), ("one replica", "one-")):
    print(f"  {name:15} median {med(prefix, 'rps'):8.0f} req/s, p50 {med(prefix, 'p50_us') / 1000:.2f} ms, p99 {med(prefix, 'p99_us') / 1000:.2f} ms")
print(f"  ratio three/one per round: {' '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}")
procs = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in open(results) if l.startswith("PROC ")]
print("  per request (median of rounds): CPU µs of the replicas / upstream / nginx / whole machine; replicas' context switches voluntary / involuntary")
for name, prefix in (("three replicas", "three-"), ("one replica", "one-")):
    m = lambda k: statistics.median(float(r[k]) for r in procs if r["label"].startswith(prefix))
    print(f"  {name:15} {m('gw_cpu_us'):6.1f} / {m('upstream_cpu_us'):5.1f} / {m('nginx_cpu_us'):5.1f} / {m('machine_busy_us'):6.1f} µs; {m('gw_vcs'):.2f} / {m('gw_nvcs'):.2f}; TCP connections opened per run (machine-wide) {m('tcp_opens'):.0f}")
PY
