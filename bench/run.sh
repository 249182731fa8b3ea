#!/usr/bin/env bash
# The gateway benchmark, side by side with nginx (issue 17): `tools/call` on a trivial
# upstream (the demo server's echo tool) sent direct, through nginx as a plain keep-alive
# reverse proxy, and through mcpgate (no auth, API key, JWT with a warm cache, the stdio
# shared child, and a 2026-07-28 stateless call), alternating, at several concurrencies,
# with the same load generator (wrk) in the same run; plus idle RSS and memory per idle
# session. It prints the table and checks issue 17's targets from the same run.
#
#   bench/run.sh                   build (BENCH_PROFILE, default production), run everything (~5-6 min), print a table
#   BENCH_NO_BUILD=1 bench/run.sh  reuse the binary already built (BENCH_PROFILE: production or release)
#
# Everything listens on 127.0.0.1 (ports chosen by the kernel) and every process
# started here is stopped on exit. Knobs (environment, defaults in brackets):
#   BENCH_CONNS_LIST ["1 16 256"] wrk connections per cell   BENCH_THREADS [1]
#   BENCH_DURATION [4] seconds per cell   BENCH_WARMUP [2] seconds per setup, not counted
#   BENCH_ROUNDS [2] alternations of every setup at every concurrency (each round starts
#     with the next setup, so none always runs first)   BENCH_SESSIONS [1000]
#   BENCH_SETUPS [direct nginx noauth apikey jwt stdio stateless]: a subset to run
#   BENCH_NGINX_WORKERS [auto]: nginx's worker_processes
#   BENCH_RETRIES [3]: runs repeated (in all) because other processes took >10% of the CPU
#   MCPGATE_BIN: a binary to use instead of building one
#   BENCH_SERVER: lines added to every gateway's [server] table (e.g. 'worker_threads = 1')
#   BENCH_CONFIG: TOML appended to every gateway's configuration (e.g. $'[audit]\nenabled = false')
# Needs wrk (installed with apt-get if missing), nginx (likewise), openssl and python3.
# Raw wrk output, configs and process logs are kept in target/bench/last-run/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/run.sh"
WORK_PREFIX="mcpgate-bench"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

THREADS="${BENCH_THREADS:-1}"
read -r -a CONNS_LIST <<<"${BENCH_CONNS_LIST:-1 16 256}"
DURATION="${BENCH_DURATION:-4}"
WARMUP="${BENCH_WARMUP:-2}"
ROUNDS="${BENCH_ROUNDS:-2}"
SESSIONS="${BENCH_SESSIONS:-1000}"
read -r -a SETUPS <<<"${BENCH_SETUPS:-direct nginx noauth apikey jwt stdio stateless}"
NGINX_WORKERS="${BENCH_NGINX_WORKERS:-auto}"

command -v python3 >/dev/null || die "python3 is required"
for tool in python3 openssl; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

# --- wrk and nginx ------------------------------------------------------------
# Installs Debian package $2 when command $1 is missing.
need() {
    command -v "$1" >/dev/null && return 0
    [[ -x "/usr/sbin/$1" ]] && return 0
    step "installing $2 (apt-get)"
    local sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    command -v apt-get >/dev/null || die "$1 is not installed and apt-get is unavailable; install $2"
    if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$2" >/dev/null; }; then
        die "could not install $2"
    fi
}
need wrk wrk
need nginx nginx
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# --- binary -------------------------------------------------------------------
locate_binary

OUT="$ROOT/target/bench/last-run"
rm -rf "$OUT"
mkdir -p "$OUT"
NPROC="$(nproc)"

# Busy share of all CPUs over one second, in percent: other work skews every figure.
cpu_busy_pct() {
    local a b
    read -r -a a < <(head -1 /proc/stat); sleep 1; read -r -a b < <(head -1 /proc/stat)
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}
BUSY_START="$(cpu_busy_pct)"
if (( BUSY_START > 10 )); then
    step "WARNING: the CPUs are already ${BUSY_START}% busy before starting; other work will skew the figures"
fi

# --- credentials (the same shapes as bench/guard.sh and bench/callgrind.sh) ----
AUDIENCE="https://mcp.bench.example/mcp"
ISSUER="https://issuer.bench.example/"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/es256.key" 2>/dev/null
openssl ec -in "$WORK/es256.key" -pubout -out "$WORK/es256.pub" 2>/dev/null
JWT="$(make_es256_jwt "$ISSUER" "$AUDIENCE" "$WORK/es256.key")"
API_KEY="$("$BIN" keys create --data-dir "$WORK/data-apikey" --name b --scopes '*' 2>"$OUT/keys.err")" \
    || die "mcpgate keys create failed; see $OUT/keys.err"
[[ -n "$API_KEY" ]] || die "mcpgate keys create printed no key"

# --- processes ----------------------------------------------------------------
step "starting the demo upstream (Streamable HTTP)"
"$BIN" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo-http" \
    >"$OUT/demo.out" 2>"$OUT/demo.err" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
DIRECT_URL="$(wait_line "$OUT/demo.out" 'listening on http://' "$DEMO_PID" | grep -oE 'http://[^ ]+')"
UP_HOSTPORT="${DIRECT_URL#http://}"
UP_HOSTPORT="${UP_HOSTPORT%%/*}"
UP_PATH="/${DIRECT_URL#http://*/}"

# nginx as a plain keep-alive reverse proxy, configured the way a fair operator would
# front an MCP server: HTTP/1.1 to the upstream with a keep-alive pool larger than the
# largest concurrency (no reconnects), `Connection ""` so client keep-alive is not
# forwarded as close, `proxy_buffering off` so SSE answers stream as they come (MCP
# servers may answer a POST with SSE; nginx's default buffering would hold events back),
# keepalive_requests raised so nginx does not close wrk's or the upstream's connections
# every 1,000 requests, and nginx's default access log (a line per request, as the
# gateway's default access log writes one). Master process plus `worker_processes auto` (one worker per core), as the
# gateway's runtime has one worker thread per core; nginx's CPU is the sum over the
# master and its workers.
NGINX_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx/nginx.conf" <<NGX
daemon off;
worker_processes $NGINX_WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
$( [[ "$(id -u)" -eq 0 ]] && echo "user root root;  # workers need the run's temp dir" )
events { worker_connections 4096; }
http {
    access_log $WORK/nginx/logs/access.log;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream mcp {
        server $UP_HOSTPORT;
        keepalive 512;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
        location / {
            proxy_pass http://mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_buffering off;
            proxy_read_timeout 300s;
        }
    }
}
NGX
cp "$WORK/nginx/nginx.conf" "$OUT/nginx.conf"
step "starting nginx ($NGINX_WORKERS workers) in front of the demo upstream"
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" \
    >"$OUT/nginx.out" 2>"$OUT/nginx.err" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for _ in $(seq 100); do
    (python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$NGINX_PORT" 2>/dev/null) && break
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited; see $OUT/nginx.err and $WORK/nginx/logs/error.log"
    sleep 0.1
done
NGINX_URL="http://127.0.0.1:$NGINX_PORT$UP_PATH"
# The master and its workers (forked once the master listens).
NGINX_CHILDREN=""
for _ in $(seq 100); do
    NGINX_CHILDREN="$(cat /proc/"$NGINX_PID"/task/*/children 2>/dev/null || true)"
    [[ -n "${NGINX_CHILDREN// /}" ]] && break
    sleep 0.1
done
[[ -n "${NGINX_CHILDREN// /}" ]] || die "nginx started no worker; see $WORK/nginx/logs/error.log"
NGINX_PROCS="$NGINX_PID $NGINX_CHILDREN"

# One gateway per auth setup, as bench/guard.sh does, so each verifier is the only one on.
gateway_config() {
    printf '[server]\nlisten = "127.0.0.1:0"\ndata_dir = "%s"\n%s\n\n' "$WORK/data-$1" "${BENCH_SERVER:-}"
    case "$1" in
        noauth) printf '[auth]\nmode = "disabled"\n' ;;
        apikey) printf '[auth]\nmode = "required"\nusers = false\n' ;;
        jwt)
            printf '[auth]\nmode = "required"\napi_keys = false\nusers = false\n\n'
            printf '[[auth.jwt]]\nname = "bench"\nissuer = "%s"\naudience = "%s"\n' "$ISSUER" "$AUDIENCE"
            printf 'public_key_file = "%s"\nalgorithms = ["ES256"]\n' "$WORK/es256.pub"
            ;;
    esac
    printf '\n[[upstream]]\nname = "echo"\nurl = "%s"\n' "$DIRECT_URL"
    if [[ "$1" == noauth ]]; then
        printf '\n[[upstream]]\nname = "stdio"\ncommand = ["%s", "demo-server", "--data-dir", "%s"]\nisolation = "shared"\n' \
            "$BIN" "$WORK/demo-stdio"
    fi
    printf '\n%s\n' "${BENCH_CONFIG:-}"
}
declare -A GW_PID GW_BASE
for g in noauth apikey jwt; do
    mkdir -p "$WORK/data-$g"
    gateway_config "$g" >"$WORK/gateway-$g.toml"
    cp "$WORK/gateway-$g.toml" "$OUT/gateway-$g.toml"
    step "starting the gateway: $g"
    "$BIN" serve --config "$WORK/gateway-$g.toml" >"$OUT/gateway-$g.out" 2>"$OUT/gateway-$g.err" &
    GW_PID[$g]=$!
    PIDS+=("${GW_PID[$g]}")
    GW_BASE[$g]="$(wait_line "$OUT/gateway-$g.out" 'listening on http://' "${GW_PID[$g]}" | grep -oE 'http://[^ ]+')"
done
GW_NOAUTH="${GW_PID[noauth]}"

# --- memory -------------------------------------------------------------------
sleep 2
IDLE_RSS="$(rss_kib "$GW_NOAUTH")"
step "gateway idle RSS: $IDLE_RSS KiB (no sessions yet)"

# Opens $2 idle sessions on URL $1 (label $3) of the no-auth gateway; sets BEFORE, AFTER
# (KiB) and PER (bytes per session). Called after one session per endpoint is already open,
# so one-time costs (the shared child, connection pools, lazily built state) are not
# counted per session.
per_session_bytes() {
    local url="$1" n="$2"
    BEFORE="$(rss_kib "$GW_NOAUTH")"
    python3 bench/mcp_session.py open "$url" "$n" >"$OUT/sessions-$3.txt"
    [[ "$(wc -l <"$OUT/sessions-$3.txt")" -eq "$n" ]] || die "opened fewer than $n sessions on $url"
    sleep 2
    AFTER="$(rss_kib "$GW_NOAUTH")"
    PER=$(( (AFTER - BEFORE) * 1024 / n ))
}

# Per setup: URL, credential, session, the proxy's processes (CPU counted as the hop's) and
# the upstream's.
declare -A URL CRED SID PROXY UPSTREAM
for s in "${SETUPS[@]}"; do
    case "$s" in
        direct) URL[$s]="$DIRECT_URL"; PROXY[$s]="" ;;
        nginx) URL[$s]="$NGINX_URL"; PROXY[$s]="$NGINX_PROCS" ;;
        noauth | stateless) URL[$s]="${GW_BASE[noauth]}/mcp/echo"; PROXY[$s]="$GW_NOAUTH" ;;
        apikey | jwt) URL[$s]="${GW_BASE[$s]}/mcp/echo"; PROXY[$s]="${GW_PID[$s]}" ;;
        stdio) URL[$s]="${GW_BASE[noauth]}/mcp/stdio"; PROXY[$s]="$GW_NOAUTH" ;;
        *) die "unknown setup '$s' in BENCH_SETUPS" ;;
    esac
    case "$s" in
        apikey) CRED[$s]="$API_KEY" ;;
        jwt) CRED[$s]="$JWT" ;;
        *) CRED[$s]="" ;;
    esac
    UPSTREAM[$s]="$DEMO_PID"
done

step "initializing one session on each endpoint"
for s in "${SETUPS[@]}"; do
    SID[$s]=""
    if [[ "$s" == stateless ]]; then
        printf '    %-9s %s -> %s\n' "$s" "${URL[$s]}" "$(python3 bench/mcp_session.py call "${URL[$s]}" stateless)" >&2
        continue
    fi
    SID[$s]="$(BENCH_BEARER="${CRED[$s]}" python3 bench/mcp_session.py open "${URL[$s]}")"
    printf '    %-9s %s -> %s\n' "$s" "${URL[$s]}" \
        "$(BENCH_BEARER="${CRED[$s]}" python3 bench/mcp_session.py call "${URL[$s]}" "${SID[$s]}")" >&2
    if [[ -n "${CRED[$s]}" ]]; then
        # The guard must be on: the same call without the credential is refused.
        if python3 bench/mcp_session.py call "${URL[$s]}" "${SID[$s]}" >/dev/null 2>&1; then
            die "$s: a call without the credential was accepted; the guard is not on"
        fi
    fi
done
STDIO_CHILD="$(cat /proc/"$GW_NOAUTH"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -m1 . || true)"
if [[ " ${SETUPS[*]} " == *" stdio "* ]]; then
    [[ -n "$STDIO_CHILD" ]] || die "no stdio child under the gateway"
    UPSTREAM[stdio]="$STDIO_CHILD"
    step "opening $SESSIONS idle sessions through the gateway (stdio upstream, isolation = shared)"
    per_session_bytes "${URL[stdio]}" "$SESSIONS" stdio
    S_BEFORE=$BEFORE S_AFTER=$AFTER S_PER=$PER
    step "    RSS $S_BEFORE -> $S_AFTER KiB: $S_PER bytes per session"
fi
if [[ " ${SETUPS[*]} " == *" noauth "* ]]; then
    step "opening $SESSIONS idle sessions through the gateway (HTTP upstream)"
    per_session_bytes "${URL[noauth]}" "$SESSIONS" http
    H_BEFORE=$BEFORE H_AFTER=$AFTER H_PER=$PER
    step "    RSS $H_BEFORE -> $H_AFTER KiB: $H_PER bytes per session"
fi

# --- load ---------------------------------------------------------------------
RESULTS="$OUT/results.txt"
RETRIES="${BENCH_RETRIES:-3}"
: >"$RESULTS"
# Every process this script started (gateways, nginx and its workers, upstreams): CPU
# they use is not "other" load.
OURS="$DEMO_PID $NGINX_PROCS ${GW_PID[*]} $STDIO_CHILD"
# Ticks of every process in $1, as counted by $2 (cpu_ticks, the default, or user_ticks:
# nginx and the gateway make about the same system calls per request, so the
# difference between them is mostly user time).
sum_ticks() {
    local total=0 pid count="${2:-cpu_ticks}"
    for pid in $1; do total=$(( total + $("$count" "$pid") )); done
    echo "$total"
}
# CPU time (user + system) of this shell's finished children (wrk), in clock ticks.
wrk_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }

# run SETUP CONNS SECONDS LABEL [warm]
run() {
    local s="$1" c="$2" d="$3" label="$4" warm="${5:-}"
    local t="$THREADS" p0 pu0 u0 o0 w0 m0 p1 pu1 u1 o1 w1 m1 line other t0 wall
    (( c >= t )) || t="$c"
    t0="${EPOCHREALTIME/./}"
    m0="$(machine_busy_ticks)"; o0="$(sum_ticks "$OURS")"
    p0="$(sum_ticks "${PROXY[$s]}")"; pu0="$(sum_ticks "${PROXY[$s]}" user_ticks)"
    u0="$(sum_ticks "${UPSTREAM[$s]}")"; w0="$(wrk_ticks)"
    MCP_SESSION_ID="${SID[$s]}" BENCH_LABEL="$label" BENCH_BEARER="${CRED[$s]}" \
        BENCH_STATELESS="$([[ "$s" == stateless ]] && echo 1 || echo 0)" \
        wrk -t"$t" -c"$c" -d"${d}s" --latency -s bench/tools_call.lua "${URL[$s]}" >"$OUT/wrk-$label.txt" 2>&1 \
        || die "wrk failed; see $OUT/wrk-$label.txt"
    w1="$(wrk_ticks)"; p1="$(sum_ticks "${PROXY[$s]}")"; pu1="$(sum_ticks "${PROXY[$s]}" user_ticks)"
    u1="$(sum_ticks "${UPSTREAM[$s]}")"
    o1="$(sum_ticks "$OURS")"; m1="$(machine_busy_ticks)"
    wall=$(( ${EPOCHREALTIME/./} - t0 ))
    # CPU used during the run by anything but wrk and the processes started here (this
    # script's own /proc readers included), over the whole sampled window.
    other=$(( (m1 - m0) - (o1 - o0) - (w1 - w0) ))
    line="$(grep '^BENCH ' "$OUT/wrk-$label.txt")" || die "no result line in $OUT/wrk-$label.txt"
    line="$line setup=$s conns=$c proxy_ticks=$(( p1 - p0 )) proxy_user_ticks=$(( pu1 - pu0 )) up_ticks=$(( u1 - u0 )) wrk_ticks=$(( w1 - w0 )) other_ticks=$other window_us=$wall clk_tck=$TICKS"
    printf '    %s\n' "$line" >&2
    [[ -z "$warm" ]] || return 0
    # Another process took more than 10% of the machine during the run: the
    # figure is skewed. Wait for quiet (up to ~8 s) and run it again, a few times at most.
    local pct=$(( other * 100 * 1000000 / (wall * TICKS * NPROC) ))
    if (( pct > 10 )) && (( RETRIES > 0 )); then
        RETRIES=$(( RETRIES - 1 ))
        echo "$line" >>"$OUT/discarded.txt"
        step "    other processes used ${pct}% of the machine during $label; running it again"
        for _ in $(seq 8); do (( $(cpu_busy_pct) < 10 )) && break; done
        run "$@"
        return
    fi
    echo "$line" >>"$RESULTS"
}

step "warm-up (${WARMUP} s each at 16 connections, not counted)"
for s in "${SETUPS[@]}"; do run "$s" 16 "$WARMUP" "warm-$s" warm; done

for r in $(seq "$ROUNDS"); do
    for c in "${CONNS_LIST[@]}"; do
        step "round $r/$ROUNDS: wrk -c$c -d${DURATION}s on each setup"
        for i in "${!SETUPS[@]}"; do
            s="${SETUPS[$(( (i + r - 1) % ${#SETUPS[@]} ))]}"
            run "$s" "$c" "$DURATION" "$s-c$c-$r"
        done
    done
done

FINAL_RSS="$(rss_kib "$GW_NOAUTH")"
{
    echo "MEM idle_rss_kib=$IDLE_RSS final_rss_kib=$FINAL_RSS sessions=$SESSIONS"
    [[ -z "${S_PER:-}" ]] || echo "MEM stdio before_kib=$S_BEFORE after_kib=$S_AFTER per_session_bytes=$S_PER"
    [[ -z "${H_PER:-}" ]] || echo "MEM http before_kib=$H_BEFORE after_kib=$H_AFTER per_session_bytes=$H_PER"
} >>"$RESULTS"

# --- report -------------------------------------------------------------------
echo
echo "mcpgate benchmark — $(date -u '+%Y-%m-%d %H:%M UTC') — $NPROC cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo unknown version)), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "upstream: demo-server over HTTP (stdio: a shared demo-server child); $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), worker_processes $NGINX_WORKERS"
echo "CPU busy before start (other work on the machine): ${BUSY_START}%; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "load: wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}') -t$THREADS, -c ${CONNS_LIST[*]}, -d${DURATION}s per cell, $ROUNDS rounds alternating ${SETUPS[*]} (rotated)"
python3 bench/report.py "$RESULTS"
if [[ -s "$OUT/discarded.txt" ]]; then
    echo "  $(wc -l <"$OUT/discarded.txt") run(s) were repeated because other processes were busy (see $OUT/discarded.txt)"
fi
echo
echo "raw results and logs: $OUT"
