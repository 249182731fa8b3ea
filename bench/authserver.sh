#!/usr/bin/env bash
# The authorization server benchmark, on the optimized binary (BENCH_PROFILE), SQLite storage
# (or PostgreSQL with BENCH_STORE_URL=postgres://…, an empty database):
#
#   1. authorizations/s: GET /authorize by a signed-in user whose consent is
#      remembered, answered by a 303 carrying a fresh code (a grant and a code
#      row written each time) — this is also how the codes for step 2 are made;
#   2. code exchanges/s: POST /token grant_type=authorization_code (PKCE S256
#      check, single-use code, an ES256 access token signed and a refresh token
#      stored), each code used once;
#   3. refresh grants/s: POST /token grant_type=refresh_token with rotation
#      (the old token marked used, a new refresh and access token issued), each
#      refresh token from step 2 used once;
#   4. gateway tools/call throughput (the demo's echo over HTTP) with one of
#      these access tokens vs with an API key, on the same gateway, alternating
#      rounds, ratio per round.
#
# The load generator is wrk for all four, with bench/authserver.lua feeding it
# the codes / verifiers / refresh tokens made by the earlier steps (every item
# used once; requests beyond the supply go to /healthz and are reported as
# "spare", which makes the run invalid). Setup goes through the real endpoints:
# bench/authserver_setup.py registers a client (DCR), signs in on the login page
# and allows on the consent page with "remember".
#
#   bench/authserver.sh                   build (BENCH_PROFILE, default production), run everything (~1.5 min)
#   BENCH_NO_BUILD=1 bench/authserver.sh  reuse the binary already built (BENCH_PROFILE: production or release)
#
# Knobs (environment, defaults in brackets): BENCH_CONNS [16] BENCH_THREADS [1]
#   BENCH_AUTH_SECONDS [10] step 1 (it must make more codes than step 2 uses)
#   BENCH_TOKEN_SECONDS [4] steps 2 and 3   BENCH_PAIRS [40000] PKCE pairs made
#   BENCH_DURATION [5] BENCH_ROUNDS [4] step 4   MCPGATE_BIN: a binary to use
#   BENCH_DATA_PARENT [scratch dir]: parent of the SQLite data directory
#   BENCH_STORE_URL [SQLite in the data directory]: the store, e.g. a PostgreSQL
#     database created for the run (postgres://postgres@127.0.0.1:5432/bench)
# Everything listens on 127.0.0.1; every process started here is stopped on exit.
# Raw wrk output, the config and logs are kept in target/bench/authserver-last-run/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/authserver.sh"
WORK_PREFIX="mcpgate-authserver-bench"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

CONNS="${BENCH_CONNS:-16}"
THREADS="${BENCH_THREADS:-1}"
AUTH_SECONDS="${BENCH_AUTH_SECONDS:-10}"
TOKEN_SECONDS="${BENCH_TOKEN_SECONDS:-4}"
PAIRS="${BENCH_PAIRS:-40000}"
DURATION="${BENCH_DURATION:-5}"
ROUNDS="${BENCH_ROUNDS:-4}"

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
locate_binary

OUT="$ROOT/target/bench/authserver-last-run"
rm -rf "$OUT"
mkdir -p "$OUT"
NPROC="$(nproc)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- processes ----------------------------------------------------------------
step "starting the demo upstream (Streamable HTTP)"
"$BIN" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo-http" >"$OUT/demo.out" 2>"$OUT/demo.err" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
UPSTREAM_URL="$(wait_line "$OUT/demo.out" 'listening on http://' "$DEMO_PID" | grep -oE 'http://[^ ]+')"

# BENCH_DATA_PARENT: where the SQLite data directory goes (default: the scratch dir under
# $TMPDIR or /tmp); e.g. /dev/shm to see the figures without the disk's fsync cost.
DATA="$(mktemp -d "${BENCH_DATA_PARENT:-$WORK}/data.XXXXXX")"
[[ -z "${BENCH_DATA_PARENT:-}" ]] || trap 'cleanup; rm -rf "$DATA"' EXIT
STORE_URL="${BENCH_STORE_URL:-sqlite://$DATA/mcpgate.sqlite}"
case "$STORE_URL" in
    postgres*) STORAGE="PostgreSQL" ;;
    *) STORAGE="SQLite" ;;
esac
PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
step "creating a user and an API key"
printf '%s' "$PASSWORD" | "$BIN" users add bench --password-stdin --scopes 'notes:read notes:write' \
    --data-dir "$DATA" --store-url "$STORE_URL" >/dev/null 2>"$OUT/users.err" || die "mcpgate users add failed; see $OUT/users.err"
API_KEY="$("$BIN" keys create --data-dir "$DATA" --store-url "$STORE_URL" --name bench --scopes '*' 2>"$OUT/keys.err")" \
    || die "mcpgate keys create failed; see $OUT/keys.err"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
cat >"$WORK/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
data_dir = "$DATA"

[auth]
mode = "required"

[authserver]
enabled = true
refresh_grace = "2s"

[store]
url = "$STORE_URL"

[[upstream]]
name = "echo"
url = "$UPSTREAM_URL"
EOF
cp "$WORK/gateway.toml" "$OUT/gateway.toml"
step "starting the gateway with the authorization server ($STORAGE)"
"$BIN" serve --config "$WORK/gateway.toml" >"$OUT/gateway.out" 2>"$OUT/gateway.err" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_line "$OUT/gateway.out" 'listening on http://' "$GW_PID" >/dev/null

step "setup: DCR, sign-in, consent (remembered), $PAIRS PKCE pairs"
python3 bench/authserver_setup.py "$BASE" bench "$PASSWORD" "$BASE/mcp/echo" "$WORK/pairs" "$PAIRS" \
    >"$WORK/setup.json" || die "setup failed"
field() { python3 -c "import json,sys; v = json.load(open('$WORK/setup.json')); print(eval(sys.argv[1]))" "$1"; }
CLIENT_ID="$(field 'v["client_id"]')"
REDIRECT="$(field 'v["redirect_uri"]')"
COOKIE="$(field 'v["cookie"]')"
AUTHORIZE="$(field 'v["authorize_path"]')"
JWT="$(field 'v["token"]["access_token"]')"

RESULTS="$OUT/results.txt"
: >"$RESULTS"
# wrk_run MODE LABEL SECONDS IN OUTPREFIX [CONNS]: one wrk run of bench/authserver.lua; CPU shares appended.
wrk_run() {
    local mode="$1" label="$2" d="$3" in="$4" outp="$5" c="${6:-$CONNS}" g0 m0 g1 m1 line
    m0="$(machine_busy_ticks)"; g0="$(cpu_ticks "$GW_PID")"
    BENCH_MODE="$mode" BENCH_LABEL="$label" BENCH_IN="$in" BENCH_OUT="$outp" BENCH_THREADS="$THREADS" \
        BENCH_CLIENT_ID="$CLIENT_ID" BENCH_REDIRECT="$REDIRECT" BENCH_COOKIE="$COOKIE" BENCH_AUTHORIZE="$AUTHORIZE" \
        wrk -t"$THREADS" -c"$c" -d"${d}s" --latency -s bench/authserver.lua "$BASE" >"$OUT/wrk-$label.txt" 2>&1 \
        || die "wrk failed; see $OUT/wrk-$label.txt"
    m1="$(machine_busy_ticks)"; g1="$(cpu_ticks "$GW_PID")"
    line="$(grep '^BENCH ' "$OUT/wrk-$label.txt")" || die "no result line in $OUT/wrk-$label.txt"
    line="$line gw_ticks=$(( g1 - g0 )) machine_ticks=$(( m1 - m0 )) clk_tck=$TICKS"
    printf '    %s\n' "$line" >&2
    echo "$line" >>"$RESULTS"
    [[ "$line" == *" spare=0 "* ]] || die "$label ran out of input (spare > 0): lower BENCH_TOKEN_SECONDS or raise BENCH_AUTH_SECONDS"
}

step "1. authorizations (GET /authorize -> 303 with a code), wrk -c$CONNS -d${AUTH_SECONDS}s"
wrk_run authorize authorize "$AUTH_SECONDS" "$WORK/pairs" "$WORK/codes"
cat "$WORK"/codes.* >"$WORK/codes.all"
step "    $(wc -l <"$WORK/codes.all") codes made"
step "2. code exchanges (POST /token authorization_code), wrk -c$CONNS -d${TOKEN_SECONDS}s"
wrk_run exchange exchange "$TOKEN_SECONDS" "$WORK/codes.all" "$WORK/refresh1"
cat "$WORK"/refresh1.* >"$WORK/refresh1.all"
step "3. refresh grants with rotation (POST /token refresh_token), wrk -c$CONNS -d${TOKEN_SECONDS}s"
wrk_run refresh refresh "$TOKEN_SECONDS" "$WORK/refresh1.all" "$WORK/refresh2"

# --- 4. tools/call with the JWT vs the API key ------------------------------------
URL="$BASE/mcp/echo"
post() {
    local args=(-sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}'
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
        -H "Authorization: Bearer $1")
    [[ -z "${3:-}" ]] || args+=(-H "Mcp-Session-Id: $3" -H 'MCP-Protocol-Version: 2025-11-25')
    curl "${args[@]}" --data "$2" "$URL"
}
declare -A SID CRED=([jwt]="$JWT" [apikey]="$API_KEY")
for s in jwt apikey; do
    code="$(post "${CRED[$s]}" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-authserver-bench","version":"0"}}}')"
    [[ "$code" == 200 ]] || die "initialize with $s: HTTP $code: $(head -c 300 "$WORK/body")"
    SID[$s]="$(tr -d '\r' <"$WORK/headers" | awk 'tolower($1) == "mcp-session-id:" { print $2 }')"
    post "${CRED[$s]}" '{"jsonrpc":"2.0","method":"notifications/initialized"}' "${SID[$s]}" >/dev/null
    code="$(post "${CRED[$s]}" '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"sanity"}}}' "${SID[$s]}")"
    [[ "$code" == 200 ]] && grep -q sanity "$WORK/body" || die "tools/call with $s: HTTP $code: $(head -c 300 "$WORK/body")"
done
cat >"$WORK/call.lua" <<EOF
dofile("$ROOT/bench/tools_call.lua")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_CREDENTIAL")
EOF
call_run() {
    local s="$1" label="$2" d="$3" g0 m0 g1 m1 line
    m0="$(machine_busy_ticks)"; g0="$(cpu_ticks "$GW_PID")"
    MCP_SESSION_ID="${SID[$s]}" BENCH_LABEL="$label" BENCH_CREDENTIAL="${CRED[$s]}" \
        wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --latency -s "$WORK/call.lua" "$URL" >"$OUT/wrk-$label.txt" 2>&1 \
        || die "wrk failed; see $OUT/wrk-$label.txt"
    m1="$(machine_busy_ticks)"; g1="$(cpu_ticks "$GW_PID")"
    line="$(grep '^BENCH ' "$OUT/wrk-$label.txt")" || die "no result line in $OUT/wrk-$label.txt"
    line="$line setup=$s gw_ticks=$(( g1 - g0 )) machine_ticks=$(( m1 - m0 )) clk_tck=$TICKS"
    printf '    %s\n' "$line" >&2
    [[ -n "${4:-}" ]] || echo "$line" >>"$RESULTS"
}
step "4. tools/call through the gateway: JWT (this server's) vs API key, $ROUNDS rounds, wrk -c$CONNS -d${DURATION}s"
call_run jwt warm-jwt 2 warm
call_run apikey warm-apikey 2 warm
for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then order=(jwt apikey); else order=(apikey jwt); fi
    for s in "${order[@]}"; do call_run "$s" "call-$s-$r" "$DURATION"; done
done
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- report -------------------------------------------------------------------
echo
echo "mcpgate authorization server benchmark — $(date -u '+%Y-%m-%d %H:%M UTC') — $NPROC cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo unknown version)); storage: $STORAGE; access tokens ES256"
echo "load average (1/5/15 min) before: $LOAD_START, after: $LOAD_END"
echo "load: wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}') -t$THREADS -c$CONNS"
RESULTS="$RESULTS" NPROC="$NPROC" python3 - <<'EOF'
import os, statistics
rows = [dict(p.split("=", 1) for p in l.split()[1:]) for l in open(os.environ["RESULTS"])]
nproc = int(os.environ["NPROC"])
def cpu(r):
    t = int(r["clk_tck"]); secs = int(r["duration_us"]) / 1e6
    return int(r["gw_ticks"]) / t / secs * 100 / nproc, int(r["machine_ticks"]) / t / secs * 100 / nproc
print()
print(f"{'step':<34}{'req/s':>9}{'ok':>8}{'p50 ms':>8}{'p99 ms':>8}{'non2xx':>7}{'gw CPU':>8}{'machine':>8}")
names = {"authorize": "1. /authorize -> code (remembered)", "exchange": "2. code exchange", "refresh": "3. refresh with rotation"}
for r in rows:
    if r["label"] in names:
        g, m = cpu(r)
        print(f"{names[r['label']]:<34}{float(r['rps']):>9.0f}{r['ok']:>8}{int(r['p50_us'])/1000:>8.2f}{int(r['p99_us'])/1000:>8.2f}"
              f"{r['non2xx']:>7}{g:>7.0f}%{m:>7.0f}%")
calls = [r for r in rows if r["label"].startswith("call-")]
by = {(r["setup"], r["label"].rsplit("-", 1)[1]): r for r in calls}
rounds = sorted({k[1] for k in by}, key=int)
jwt = [float(by[("jwt", x)]["rps"]) for x in rounds]
key = [float(by[("apikey", x)]["rps"]) for x in rounds]
ratios = [j / k for j, k in zip(jwt, key)]
print()
print(f"4. tools/call (echo) through the gateway, {len(rounds)} rounds alternating:")
for name, s, v in (("authserver JWT", "jwt", jwt), ("API key", "apikey", key)):
    rs = [by[(s, x)] for x in rounds]
    p50 = statistics.median(int(x["p50_us"]) for x in rs) / 1000
    p99 = statistics.median(int(x["p99_us"]) for x in rs) / 1000
    bad = sum(int(x["non2xx"]) + int(x["errors"]) for x in rs)
    print(f"   {name:<16} mean {statistics.mean(v):>7.0f} req/s  (each round: {' / '.join(f'{x:.0f}' for x in v)})  p50 {p50:.2f} ms  p99 {p99:.2f} ms  non2xx+errors {bad}")
print(f"   JWT / API key: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f} (per-round ratios)")
print()
print("gw CPU / machine: the gateway's and the whole machine's CPU during the run, in % of all cores.")
EOF
echo
echo "raw results and logs: $OUT"
