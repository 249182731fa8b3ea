#!/usr/bin/env bash
# The gateway benchmark: `tools/call` on a trivial upstream (the demo server's
# echo tool), direct vs through mcpgate, with the same load generator (wrk) in
# the same run; plus idle RSS and memory per idle session.
#
#   bench/run.sh                   build release, run everything (~3-4 min), print a table
#   BENCH_NO_BUILD=1 bench/run.sh  reuse the release binary already built
#
# Everything listens on 127.0.0.1 (ports chosen by the kernel) and every process
# started here is stopped on exit. Knobs (environment, defaults in brackets):
#   BENCH_THREADS [1]  BENCH_CONNS [16]  BENCH_DURATION [15] seconds per throughput run
#   BENCH_LAT_DURATION [10] seconds per single-connection latency run
#   BENCH_ROUNDS [2] alternations of direct / gateway   BENCH_SESSIONS [1000]
#   BENCH_RETRIES [2]: runs repeated (in all) because other processes took >10% of the CPU
#   MCPGATE_BIN: a binary to use instead of building one
# Raw wrk output and process logs are kept in target/bench/last-run/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/run.sh"
WORK_PREFIX="mcpgate-bench"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

THREADS="${BENCH_THREADS:-1}"
CONNS="${BENCH_CONNS:-16}"
DURATION="${BENCH_DURATION:-15}"
LAT_DURATION="${BENCH_LAT_DURATION:-10}"
ROUNDS="${BENCH_ROUNDS:-2}"
SESSIONS="${BENCH_SESSIONS:-1000}"

command -v python3 >/dev/null || die "python3 is required"

# --- wrk ----------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    step "installing wrk (apt-get)"
    SUDO=""
    [[ "$(id -u)" -eq 0 ]] || SUDO="sudo"
    command -v apt-get >/dev/null || die "wrk is not installed and apt-get is unavailable; install wrk 4.x"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null \
        || die "could not install wrk"
fi

# --- binary -------------------------------------------------------------------
locate_binary

OUT="$ROOT/target/bench/last-run"
rm -rf "$OUT"
mkdir -p "$OUT"
# CPU time (user + system) of this shell's finished children, in clock ticks, into
# CHILD_TICKS: around a wrk run its delta is wrk's CPU time. (`times` must run in
# this shell, not in a $(…) subshell, whose counters start at zero.)
children_ticks() {
    times >"$WORK/times"
    CHILD_TICKS="$(tail -1 "$WORK/times" | awk -v t="$TICKS" '{
        s = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
        printf "%d\n", s * t + 0.5
    }')"
}

# Non-idle CPU ticks of the whole machine since boot (all CPUs).

# --- processes ----------------------------------------------------------------
# Busy share of all CPUs over one second, in percent: other work skews every figure.
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
step "starting the demo upstream (Streamable HTTP)"
"$BIN" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo-http" \
    >"$OUT/demo.out" 2>"$OUT/demo.err" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
DIRECT_URL="$(wait_line "$OUT/demo.out" 'listening on http://' "$DEMO_PID" | grep -oE 'http://[^ ]+')"

cat >"$WORK/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$WORK/gateway-data"

[auth]
mode = "disabled"

[[upstream]]
name = "echo"
url = "$DIRECT_URL"

[[upstream]]
name = "stdio"
command = ["$BIN", "demo-server", "--data-dir", "$WORK/demo-stdio"]
isolation = "shared"
EOF
cp "$WORK/gateway.toml" "$OUT/gateway.toml"

step "starting the gateway"
"$BIN" serve --config "$WORK/gateway.toml" >"$OUT/gateway.out" 2>"$OUT/gateway.err" &
GW_PID=$!
PIDS+=("$GW_PID")
GW_BASE="$(wait_line "$OUT/gateway.out" 'listening on http://' "$GW_PID" | grep -oE 'http://[^ ]+')"
GW_URL="$GW_BASE/mcp/echo"
STDIO_URL="$GW_BASE/mcp/stdio"

# --- memory -------------------------------------------------------------------
sleep 2
IDLE_RSS="$(rss_kib "$GW_PID")"
step "gateway idle RSS: $IDLE_RSS KiB (no sessions yet)"

# Opens $2 idle sessions on URL $1 (label $3); sets BEFORE, AFTER (KiB) and PER (bytes per session).
# Called after one session per endpoint is already open, so one-time costs (the
# shared child, connection pools, lazily built state) are not counted per session.
per_session_bytes() {
    local url="$1" n="$2"
    BEFORE="$(rss_kib "$GW_PID")"
    python3 bench/mcp_session.py open "$url" "$n" >"$OUT/sessions-$3.txt"
    [[ "$(wc -l <"$OUT/sessions-$3.txt")" -eq "$n" ]] || die "opened fewer than $n sessions on $url"
    sleep 2
    AFTER="$(rss_kib "$GW_PID")"
    PER=$(( (AFTER - BEFORE) * 1024 / n ))
}

step "initializing one session on each endpoint"
DIRECT_SID="$(python3 bench/mcp_session.py open "$DIRECT_URL")"
GW_SID="$(python3 bench/mcp_session.py open "$GW_URL")"
STDIO_SID="$(python3 bench/mcp_session.py open "$STDIO_URL")"
for pair in "direct $DIRECT_URL $DIRECT_SID" "gateway $GW_URL $GW_SID" "stdio $STDIO_URL $STDIO_SID"; do
    read -r name url sid <<<"$pair"
    printf '    %-8s %s -> %s\n' "$name" "$url" "$(python3 bench/mcp_session.py call "$url" "$sid")" >&2
done
STDIO_CHILD="$(cat /proc/"$GW_PID"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -m1 . || true)"

step "opening $SESSIONS idle sessions through the gateway (stdio upstream, isolation = shared)"
per_session_bytes "$STDIO_URL" "$SESSIONS" stdio
S_BEFORE=$BEFORE S_AFTER=$AFTER S_PER=$PER
step "    RSS $S_BEFORE -> $S_AFTER KiB: $S_PER bytes per session"
step "opening $SESSIONS idle sessions through the gateway (HTTP upstream)"
per_session_bytes "$GW_URL" "$SESSIONS" http
H_BEFORE=$BEFORE H_AFTER=$AFTER H_PER=$PER
step "    RSS $H_BEFORE -> $H_AFTER KiB: $H_PER bytes per session"

# --- load ---------------------------------------------------------------------
RESULTS="$OUT/results.txt"
NPROC="$(nproc)"
RETRIES="${BENCH_RETRIES:-2}"
: >"$RESULTS"

# run LABEL URL SID CONNS THREADS SECONDS [warmup]
run() {
    local label="$1" url="$2" sid="$3" c="$4" t="$5" d="$6" warm="${7:-}"
    local g0 u0 c0 w0 m0 g1 u1 c1 w1 m1 line other
    m0="$(machine_busy_ticks)"
    g0="$(cpu_ticks "$GW_PID")"; u0="$(cpu_ticks "$DEMO_PID")"; c0="$(cpu_ticks "$STDIO_CHILD")"
    children_ticks; w0=$CHILD_TICKS
    MCP_SESSION_ID="$sid" BENCH_LABEL="$label" \
        wrk -t"$t" -c"$c" -d"${d}s" --latency -s bench/tools_call.lua "$url" >"$OUT/wrk-$label.txt" 2>&1 \
        || die "wrk failed; see $OUT/wrk-$label.txt"
    children_ticks; w1=$CHILD_TICKS
    g1="$(cpu_ticks "$GW_PID")"; u1="$(cpu_ticks "$DEMO_PID")"; c1="$(cpu_ticks "$STDIO_CHILD")"
    m1="$(machine_busy_ticks)"
    # CPU used during the run by anything but wrk, the gateway and the upstreams.
    other=$(( (m1 - m0) - (g1 - g0) - (u1 - u0) - (c1 - c0) - (w1 - w0) ))
    line="$(grep '^BENCH ' "$OUT/wrk-$label.txt")" || die "no result line in $OUT/wrk-$label.txt"
    line="$line gw_ticks=$(( g1 - g0 )) demo_ticks=$(( u1 - u0 )) child_ticks=$(( c1 - c0 )) wrk_ticks=$(( w1 - w0 )) other_ticks=$other clk_tck=$TICKS"
    printf '    %s\n' "$line" >&2
    [[ -z "$warm" ]] || return 0
    # Another process took more than 10% of the machine during the run: the
    # figure is skewed. Wait for quiet (up to ~15 s) and run it again, a few times at most.
    if (( other * 100 > 10 * d * TICKS * NPROC )) && (( RETRIES > 0 )); then
        RETRIES=$(( RETRIES - 1 ))
        echo "$line" >>"$OUT/discarded.txt"
        step "    other processes used $(( other * 100 / (d * TICKS * NPROC) ))% of the machine during $label; running it again"
        for _ in $(seq 8); do (( $(cpu_busy_pct) < 10 )) && break; sleep 1; done
        run "$@"
        return
    fi
    echo "$line" >>"$RESULTS"
}

step "warm-up (3 s each, not counted)"
run warm-direct "$DIRECT_URL" "$DIRECT_SID" "$CONNS" "$THREADS" 3 warm
run warm-gateway "$GW_URL" "$GW_SID" "$CONNS" "$THREADS" 3 warm
run warm-stdio "$STDIO_URL" "$STDIO_SID" "$CONNS" "$THREADS" 3 warm

for r in $(seq "$ROUNDS"); do
    step "round $r/$ROUNDS: throughput, wrk -t$THREADS -c$CONNS -d${DURATION}s"
    run "tput-direct-$r" "$DIRECT_URL" "$DIRECT_SID" "$CONNS" "$THREADS" "$DURATION"
    run "tput-gateway-$r" "$GW_URL" "$GW_SID" "$CONNS" "$THREADS" "$DURATION"
    run "tput-stdio-$r" "$STDIO_URL" "$STDIO_SID" "$CONNS" "$THREADS" "$DURATION"
    step "round $r/$ROUNDS: latency, wrk -t1 -c1 -d${LAT_DURATION}s"
    run "lat-direct-$r" "$DIRECT_URL" "$DIRECT_SID" 1 1 "$LAT_DURATION"
    run "lat-gateway-$r" "$GW_URL" "$GW_SID" 1 1 "$LAT_DURATION"
    run "lat-stdio-$r" "$STDIO_URL" "$STDIO_SID" 1 1 "$LAT_DURATION"
done

FINAL_RSS="$(rss_kib "$GW_PID")"
{
    echo "MEM idle_rss_kib=$IDLE_RSS final_rss_kib=$FINAL_RSS sessions=$SESSIONS"
    echo "MEM stdio before_kib=$S_BEFORE after_kib=$S_AFTER per_session_bytes=$S_PER"
    echo "MEM http before_kib=$H_BEFORE after_kib=$H_AFTER per_session_bytes=$H_PER"
} >>"$RESULTS"

# --- report -------------------------------------------------------------------
echo
echo "mcpgate benchmark — $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo unknown version))"
echo "upstream: demo-server over HTTP"
echo "CPU busy before start (other work on the machine): ${BUSY_START}%"
echo "load: wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), throughput -t$THREADS -c$CONNS -d${DURATION}s, latency -t1 -c1 -d${LAT_DURATION}s, $ROUNDS rounds alternating"
python3 bench/report.py "$RESULTS"
if [[ -s "$OUT/discarded.txt" ]]; then
    echo "  $(wc -l <"$OUT/discarded.txt") run(s) were repeated because other processes were busy (see $OUT/discarded.txt)"
fi
echo
echo "raw results and logs: $OUT"
