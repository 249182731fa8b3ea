#!/usr/bin/env bash
# The guard benchmark: `tools/call` (the demo server's echo tool) through
# mcpgate with each verifier — API key, static token, JWT (ES256, PEM key) —
# against the same gateway with `[auth] mode = "disabled"`, in the same run,
# alternating, with the same load generator (wrk) and the credential on every
# request. The session is opened once with the credential, so every measured
# request is a verified-credential cache hit (warm cache): what a busy client
# costs. Target (issue 3): each verifier >= 0.9 of the no-auth throughput.
#
#   bench/guard.sh                   build (BENCH_PROFILE, default production), run everything (~2 min), print a table
#   BENCH_NO_BUILD=1 bench/guard.sh  reuse the binary already built (BENCH_PROFILE: production or release)
#
# Everything listens on 127.0.0.1 (ports chosen by the kernel); every process
# started here is stopped on exit. Knobs (environment, defaults in brackets):
#   BENCH_THREADS [1]  BENCH_CONNS [16]  BENCH_DURATION [5] seconds per run
#   BENCH_ROUNDS [5] alternations of the four setups (each round starts with
#     the next setup, so none always runs first)   BENCH_WARMUP [2] seconds each
#   BENCH_RETRIES [3]: runs repeated (in all) because other processes took >10% of the CPU
#   MCPGATE_BIN: a binary to use instead of building one
# On a small machine wrk, the gateway and the upstream share the CPUs and one
# run's throughput varies by several percent from the next: the ratio is
# computed per round (setup / no auth of the same round) and its median, min
# and max are reported, so the spread is visible next to the 0.9 target.
# Reuses bench/tools_call.lua (wrapped to add the credential header).
# Needs wrk, curl, openssl and python3
# (standard library only: it turns openssl's ECDSA signature into a JWS one).
# Raw wrk output, configs and logs are kept in target/bench/guard-last-run/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/guard.sh"
WORK_PREFIX="mcpgate-guard-bench"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

THREADS="${BENCH_THREADS:-1}"
CONNS="${BENCH_CONNS:-16}"
DURATION="${BENCH_DURATION:-5}"
ROUNDS="${BENCH_ROUNDS:-5}"
WARMUP="${BENCH_WARMUP:-2}"
SETUPS=(noauth apikey static jwt)

for tool in wrk curl openssl python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# --- binary -------------------------------------------------------------------
locate_binary

OUT="$ROOT/target/bench/guard-last-run"
rm -rf "$OUT"
mkdir -p "$OUT"
NPROC="$(nproc)"
cpu_busy_pct() {
    local a b
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
BUSY_START="$(cpu_busy_pct)"
if (( BUSY_START > 10 )); then
    step "WARNING: the CPUs are already ${BUSY_START}% busy before starting; other work will skew the figures"
fi

# --- credentials ----------------------------------------------------------------
AUDIENCE="https://mcp.bench.example/mcp"
ISSUER="https://issuer.bench.example/"
STATIC_TOKEN="$(openssl rand -hex 20)"   # 40 characters
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/es256.key" 2>/dev/null
openssl ec -in "$WORK/es256.key" -pubout -out "$WORK/es256.pub" 2>/dev/null
JWT="$(make_es256_jwt "$ISSUER" "$AUDIENCE" "$WORK/es256.key")"

# --- processes ----------------------------------------------------------------
step "starting the demo upstream (Streamable HTTP)"
"$BIN" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo-http" \
    >"$OUT/demo.out" 2>"$OUT/demo.err" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
UPSTREAM_URL="$(wait_line "$OUT/demo.out" 'listening on http://' "$DEMO_PID" | grep -oE 'http://[^ ]+')"

step "creating an API key (mcpgate keys create)"
API_KEY="$("$BIN" keys create --data-dir "$WORK/data-apikey" --name b --scopes '*' 2>"$OUT/keys.err")" \
    || die "mcpgate keys create failed; see $OUT/keys.err"
[[ -n "$API_KEY" ]] || die "mcpgate keys create printed no key"

# The [auth] section of each setup; only the verifier under test is enabled.
auth_section() {
    case "$1" in
        noauth) printf '[auth]\nmode = "disabled"\n' ;;
        apikey) printf '[auth]\nmode = "required"\nusers = false\n' ;;
        static)
            printf '[auth]\nmode = "required"\napi_keys = false\nusers = false\n\n'
            printf '[auth.static_tokens]\ntokens = [{ token = "%s", subject = "b", scopes = "*" }]\n' "$STATIC_TOKEN"
            ;;
        jwt)
            printf '[auth]\nmode = "required"\napi_keys = false\nusers = false\n\n'
            printf '[[auth.jwt]]\nname = "bench"\nissuer = "%s"\naudience = "%s"\n' "$ISSUER" "$AUDIENCE"
            printf 'public_key_file = "%s"\nalgorithms = ["ES256"]\n' "$WORK/es256.pub"
            ;;
    esac
}
credential() {
    case "$1" in
        noauth) echo "" ;;
        apikey) echo "$API_KEY" ;;
        static) echo "$STATIC_TOKEN" ;;
        jwt) echo "$JWT" ;;
    esac
}

declare -A GW_PID URL SID CRED
for s in "${SETUPS[@]}"; do
    {
        printf '[server]\nlisten = "127.0.0.1:0"\ndata_dir = "%s"\n\n' "$WORK/data-$s"
        auth_section "$s"
        printf '\n[[upstream]]\nname = "echo"\nurl = "%s"\n' "$UPSTREAM_URL"
    } >"$WORK/gateway-$s.toml"
    # The copy kept for the record has its credentials blanked.
    sed -E 's/(token = ")[^"]+/\1<redacted>/' "$WORK/gateway-$s.toml" >"$OUT/gateway-$s.toml"
    step "starting the gateway: $s"
    "$BIN" serve --config "$WORK/gateway-$s.toml" >"$OUT/gateway-$s.out" 2>"$OUT/gateway-$s.err" &
    GW_PID[$s]=$!
    PIDS+=("${GW_PID[$s]}")
    URL[$s]="$(wait_line "$OUT/gateway-$s.out" 'listening on http://' "${GW_PID[$s]}" | grep -oE 'http://[^ ]+')/mcp/echo"
    CRED[$s]="$(credential "$s")"
done

# POSTs JSON $3 to URL $1 with credential $2 (and session $4); body to $WORK/body,
# headers to $WORK/headers; prints the HTTP status.
post() {
    local args=(-sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}'
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
    [[ -z "$2" ]] || args+=(-H "Authorization: Bearer $2")
    [[ -z "${4:-}" ]] || args+=(-H "Mcp-Session-Id: $4" -H 'MCP-Protocol-Version: 2025-11-25')
    curl "${args[@]}" --data "$3" "$1"
}

step "initializing one session per gateway, with its credential"
for s in "${SETUPS[@]}"; do
    code="$(post "${URL[$s]}" "${CRED[$s]}" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-guard-bench","version":"0"}}}')"
    [[ "$code" == 200 ]] || die "initialize on $s: HTTP $code: $(head -c 300 "$WORK/body")"
    SID[$s]="$(tr -d '\r' <"$WORK/headers" | awk 'tolower($1) == "mcp-session-id:" { print $2 }')"
    [[ -n "${SID[$s]}" ]] || die "initialize on $s returned no Mcp-Session-Id"
    code="$(post "${URL[$s]}" "${CRED[$s]}" '{"jsonrpc":"2.0","method":"notifications/initialized"}' "${SID[$s]}")"
    [[ "$code" == 200 || "$code" == 202 ]] || die "notifications/initialized on $s: HTTP $code"
    code="$(post "${URL[$s]}" "${CRED[$s]}" '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"sanity"}}}' "${SID[$s]}")"
    [[ "$code" == 200 ]] && grep -q sanity "$WORK/body" \
        || die "tools/call on $s: HTTP $code: $(head -c 300 "$WORK/body")"
    # The same call without the credential must be refused (the guard is on).
    if [[ "$s" != noauth ]]; then
        code="$(post "${URL[$s]}" "" '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}' "${SID[$s]}")"
        [[ "$code" == 401 ]] || die "$s: a request without the credential got HTTP $code, expected 401"
    fi
    printf '    %-7s %s  session %s\n' "$s" "${URL[$s]}" "${SID[$s]}" >&2
done

# tools_call.lua plus the credential header.
cat >"$WORK/guard_call.lua" <<EOF
dofile("$ROOT/bench/tools_call.lua")
local credential = os.getenv("BENCH_CREDENTIAL")
if credential ~= nil and credential ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. credential
end
EOF

# --- load ---------------------------------------------------------------------
RESULTS="$OUT/results.txt"
: >"$RESULTS"
RETRIES="${BENCH_RETRIES:-3}"
# run SETUP LABEL SECONDS [warm]
run() {
    local s="$1" label="$2" d="$3" warm="${4:-}"
    local g0 u0 m0 g1 u1 m1 w0 w1 line other
    m0="$(machine_busy_ticks)"; g0="$(cpu_ticks "${GW_PID[$s]}")"; u0="$(cpu_ticks "$DEMO_PID")"
    w0="$(awk '{ print $16 + $17 }' /proc/$$/stat)"
    MCP_SESSION_ID="${SID[$s]}" BENCH_LABEL="$label" BENCH_CREDENTIAL="${CRED[$s]}" \
        wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --latency -s "$WORK/guard_call.lua" "${URL[$s]}" \
        >"$OUT/wrk-$label.txt" 2>&1 || die "wrk failed; see $OUT/wrk-$label.txt"
    w1="$(awk '{ print $16 + $17 }' /proc/$$/stat)"
    m1="$(machine_busy_ticks)"; g1="$(cpu_ticks "${GW_PID[$s]}")"; u1="$(cpu_ticks "$DEMO_PID")"
    # CPU used during the run by anything but wrk, this gateway and the upstream.
    other=$(( (m1 - m0) - (g1 - g0) - (u1 - u0) - (w1 - w0) ))
    line="$(grep '^BENCH ' "$OUT/wrk-$label.txt")" || die "no result line in $OUT/wrk-$label.txt"
    line="$line setup=$s gw_ticks=$(( g1 - g0 )) demo_ticks=$(( u1 - u0 )) wrk_ticks=$(( w1 - w0 )) other_ticks=$other clk_tck=$TICKS"
    printf '    %s\n' "$line" >&2
    [[ -z "$warm" ]] || return 0
    # Another process took more than 10% of the machine: the figure is skewed.
    # Wait for quiet (up to ~8 s) and run it again, a few times at most.
    if (( other * 100 > 10 * d * TICKS * NPROC )) && (( RETRIES > 0 )); then
        RETRIES=$(( RETRIES - 1 ))
        echo "$line" >>"$OUT/discarded.txt"
        step "    other processes used $(( other * 100 / (d * TICKS * NPROC) ))% of the machine during $label; running it again"
        for _ in $(seq 8); do (( $(cpu_busy_pct) < 10 )) && break; done
        run "$@"
        return
    fi
    echo "$line" >>"$RESULTS"
}

step "warm-up (${WARMUP} s each, not counted)"
for s in "${SETUPS[@]}"; do run "$s" "warm-$s" "$WARMUP" warm; done
for r in $(seq "$ROUNDS"); do
    step "round $r/$ROUNDS: wrk -t$THREADS -c$CONNS -d${DURATION}s on each setup"
    for i in "${!SETUPS[@]}"; do
        s="${SETUPS[$(( (i + r - 1) % ${#SETUPS[@]} ))]}"
        run "$s" "$s-$r" "$DURATION"
    done
done

# --- report -------------------------------------------------------------------
echo
echo "mcpgate guard benchmark — $(date -u '+%Y-%m-%d %H:%M UTC') — $NPROC cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo unknown version))"
echo "upstream: demo-server over HTTP; CPU busy before start: ${BUSY_START}%"
echo "load: wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}') -t$THREADS -c$CONNS -d${DURATION}s, tools/call echo, $ROUNDS rounds alternating ${SETUPS[*]} (rotated)"
RESULTS="$RESULTS" NPROC="$NPROC" DURATION="$DURATION" python3 - <<'EOF'
import os, statistics
rows = []
for line in open(os.environ["RESULTS"]):
    kv = dict(p.split("=", 1) for p in line.split()[1:])
    rows.append(kv)
setups = ["noauth", "apikey", "static", "jwt"]
names = {"noauth": "no auth", "apikey": "API key", "static": "static token", "jwt": "JWT ES256"}
rounds = sorted({r["label"].rsplit("-", 1)[1] for r in rows}, key=int)
by = {(r["setup"], r["label"].rsplit("-", 1)[1]): r for r in rows}
cap = int(os.environ["NPROC"]) * int(os.environ["DURATION"])
print()
print(f"{'setup':<13} {'mean req/s':>10} {'ratio':>6} {'median':>6} {'min':>6} {'max':>6} {'p50 ms':>7} {'p99 ms':>7} {'gw CPU/req':>10} {'other':>6} {'non2xx':>6}")
base = {r: float(by[("noauth", r)]["rps"]) for r in rounds}
mean_base = statistics.mean(base.values())
for s in setups:
    rs = [by[(s, r)] for r in rounds]
    rps = [float(x["rps"]) for x in rs]
    mean = statistics.mean(rps)
    ratios = [float(by[(s, r)]["rps"]) / base[r] for r in rounds]
    p50 = statistics.median(int(x["p50_us"]) for x in rs) / 1000
    p99 = statistics.median(int(x["p99_us"]) for x in rs) / 1000
    per_req = statistics.mean(int(x["gw_ticks"]) / int(x["clk_tck"]) / int(x["requests"]) for x in rs) * 1e6
    other = max(int(x["other_ticks"]) / int(x["clk_tck"]) / cap * 100 for x in rs)
    bad = sum(int(x["non2xx"]) + int(x["errors"]) for x in rs)
    med = statistics.median(ratios)
    flag = "" if s == "noauth" else ("  ok" if med >= 0.9 else "  BELOW 0.9")
    print(f"{names[s]:<13} {mean:>10.0f} {mean / mean_base:>6.3f} {med:>6.3f} {min(ratios):>6.3f} {max(ratios):>6.3f} "
          f"{p50:>7.2f} {p99:>7.2f} {per_req:>8.0f}us {other:>5.0f}% {bad:>6}{flag}")
print()
print("ratio = mean req/s of the setup / mean req/s of no auth; median/min/max: of the per-round ratios")
print("(setup / no auth of the same round); target: >= 0.9. p50/p99: median over rounds of wrk's percentiles.")
print("gw CPU/req: the gateway's user+sys CPU per request. other: the worst round's CPU used by anything but")
print("wrk, the gateway and the upstream, in % of the machine (above ~10% the figures are skewed).")
print()
print("per round (req/s):", "  ".join(f"{s}=" + "/".join(f"{float(by[(s, r)]['rps']):.0f}" for r in rounds) for s in setups))
EOF
if [[ -s "$OUT/discarded.txt" ]]; then
    echo "$(wc -l <"$OUT/discarded.txt") run(s) were repeated because other processes were busy (see $OUT/discarded.txt)"
fi
echo
echo "raw results and logs: $OUT"
