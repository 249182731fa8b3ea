#!/usr/bin/env bash
# The soak benchmark, on the optimized binary (BENCH_PROFILE): bounded mixed load for a while,
# watching the gateway for growth. bench/soak.py does the load and sampling:
# sessions opened and closed (per-session stdio children and a Streamable HTTP
# upstream), tools/call on a long-lived session, refresh grants with rotation on
# the built-in authorization server, one child crash (SIGKILL) a minute and one
# client that hangs up mid-initialize (on a child that takes 3 s to start) a
# minute. RSS, open fds and live children of the gateway are sampled every
# 10 s into a CSV; at the end the load stops, every session is closed, and the
# growth after warm-up (least-squares trend) is printed, with PASS when RSS and fds stayed within 5 %
# and the children went back to the idle count (0: no session, no shared child).
#
#   bench/soak.sh                          build (BENCH_PROFILE, default production), soak 30 minutes
#   SOAK_MINUTES=10 BENCH_NO_BUILD=1 bench/soak.sh
#
# Knobs: SOAK_MINUTES [30]; MCPGATE_BIN: a binary to use; BENCH_NO_BUILD: reuse
# the binary already built (BENCH_PROFILE). Everything listens on 127.0.0.1; every
# process started here is stopped on exit, and the run stops by itself.
# The CSV, the config and the logs are kept in target/bench/soak-last-run/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/soak.sh"
WORK_PREFIX="mcpgate-soak"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

MINUTES="${SOAK_MINUTES:-30}"
for tool in curl python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
locate_binary

OUT="$ROOT/target/bench/soak-last-run"
rm -rf "$OUT"
mkdir -p "$OUT"

step "starting the demo upstream (Streamable HTTP)"
"$BIN" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo-http" >"$OUT/demo.out" 2>"$OUT/demo.err" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
UPSTREAM_URL="$(wait_line "$OUT/demo.out" 'listening on http://' "$DEMO_PID" | grep -oE 'http://[^ ]+')"

DATA="$WORK/data"
PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
step "creating a user and an API key"
printf '%s' "$PASSWORD" | "$BIN" users add soak --password-stdin --scopes 'notes:read notes:write' \
    --data-dir "$DATA" >/dev/null 2>"$OUT/users.err" || die "mcpgate users add failed; see $OUT/users.err"
API_KEY="$("$BIN" keys create --data-dir "$DATA" --name soak --scopes '*' 2>"$OUT/keys.err")" \
    || die "mcpgate keys create failed; see $OUT/keys.err"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
SLOW_CHILD="$ROOT/crates/mcpgate/tests/e2e/faulty_child.py"
cat >"$WORK/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
data_dir = "$DATA"
request_timeout = "10s"
# The load runs as one API key; the per-subject caps must not be what it measures.
max_sessions_per_subject = 0
max_children_per_subject = 0

[auth]
mode = "required"

[authserver]
enabled = true

[[upstream]]
name = "own"
command = ["$BIN", "demo-server", "--data-dir", "$WORK/demo-stdio"]
isolation = "session"

[[upstream]]
name = "slow"
command = ["python3", "$SLOW_CHILD"]
isolation = "session"
env = { FAULTY_INIT_DELAY = "3" }

[[upstream]]
name = "http"
url = "$UPSTREAM_URL"
EOF
cp "$WORK/gateway.toml" "$OUT/gateway.toml"
step "starting the gateway"
"$BIN" serve --config "$WORK/gateway.toml" >"$OUT/gateway.out" 2>"$OUT/gateway.err" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_line "$OUT/gateway.out" 'listening on http://' "$GW_PID" >/dev/null

step "setup: DCR, sign-in, consent, a first refresh token"
python3 bench/authserver_setup.py "$BASE" soak "$PASSWORD" "$BASE/mcp/own" "$WORK/pairs" 1 \
    >"$WORK/setup.json" || die "setup failed"
field() { python3 -c "import json,sys; v = json.load(open('$WORK/setup.json')); print(eval(sys.argv[1]))" "$1"; }
CLIENT_ID="$(field 'v["client_id"]')"
REFRESH="$(field 'v["token"]["refresh_token"]')"

step "soaking for $MINUTES minutes (a sample every 10 s into $OUT/soak.csv)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
set +e
python3 bench/soak.py "$BASE" "$GW_PID" "$API_KEY" "$CLIENT_ID" "$REFRESH" "$MINUTES" "$OUT/soak.csv" \
    >"$OUT/summary.txt" 2> >(tee "$OUT/samples.txt" >&2)
RC=$?
set -e
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
kill -0 "$GW_PID" 2>/dev/null || die "the gateway died during the soak; see $OUT/gateway.err"

echo
echo "mcpgate soak — $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo unknown version)); $MINUTES minutes"
echo "load average (1/5/15 min) before: $LOAD_START, after: $LOAD_END"
cat "$OUT/summary.txt"
echo "(samples: $OUT/soak.csv; gateway log: $OUT/gateway.err)"
exit "$RC"
