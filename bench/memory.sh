#!/usr/bin/env bash
# The memory part of bench/run.sh alone (issue 17: idle RSS <= 15 MiB, an idle HTTP
# session <= 4 KiB), in about 20 s rather than run.sh's 5-6 minutes, so that each change
# can be measured on its own. The same gateway configuration and the same steps as
# run.sh: the no-auth gateway (upstream `echo`: the demo server over HTTP; upstream
# `stdio`: a shared demo-server child) is read 2 s after it says it listens (idle RSS);
# one session is opened on each endpoint; then N idle sessions on /mcp/stdio and N on
# /mcp/echo, RSS read before and 2 s after each batch.
#
#   bench/memory.sh                  build (BENCH_PROFILE, default production), measure, print the MEM lines
#   BENCH_NO_BUILD=1 bench/memory.sh reuse the binary already built (BENCH_PROFILE: production or release)
#
# Knobs: MCPGATE_BIN (a binary to use instead of building one), BENCH_SESSIONS [1000],
# BENCH_GATEWAY_ENV (extra environment for the gateway, e.g. "MALLOC_ARENA_MAX=1"),
# BENCH_CONFIG (TOML appended to the gateway's configuration, e.g. $'[audit]\nenabled = false'),
# BENCH_MEM_DETAIL=1 (also print the idle gateway's threads and smaps_rollup).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/memory.sh"
WORK_PREFIX="mcpgate-mem"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

SESSIONS="${BENCH_SESSIONS:-1000}"
command -v python3 >/dev/null || die "python3 is required"
locate_binary

"$BIN" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo-http" \
    >"$WORK/demo.out" 2>"$WORK/demo.err" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
DIRECT_URL="$(wait_line "$WORK/demo.out" 'listening on http://' "$DEMO_PID" | grep -oE 'http://[^ ]+')"

# run.sh's no-auth gateway, default observability included.
mkdir -p "$WORK/data"
{
    printf '[server]\nlisten = "127.0.0.1:0"\ndata_dir = "%s"\n\n' "$WORK/data"
    printf '[auth]\nmode = "disabled"\n'
    printf '\n[[upstream]]\nname = "echo"\nurl = "%s"\n' "$DIRECT_URL"
    printf '\n[[upstream]]\nname = "stdio"\ncommand = ["%s", "demo-server", "--data-dir", "%s"]\nisolation = "shared"\n' \
        "$BIN" "$WORK/demo-stdio"
    [[ -z "${BENCH_CONFIG:-}" ]] || printf '\n%s\n' "$BENCH_CONFIG"
} >"$WORK/gateway.toml"
read -r -a GW_ENV <<<"${BENCH_GATEWAY_ENV:-}"
env "${GW_ENV[@]}" "$BIN" serve --config "$WORK/gateway.toml" >"$WORK/gateway.out" 2>"$WORK/gateway.err" &
GW=$!
PIDS+=("$GW")
BASE="$(wait_line "$WORK/gateway.out" 'listening on http://' "$GW" | grep -oE 'http://[^ ]+')"

sleep 2
IDLE="$(rss_kib "$GW")"
echo "MEM idle_rss_kib=$IDLE threads=$(ls "/proc/$GW/task" | wc -l)"
if [[ -n "${BENCH_MEM_DETAIL:-}" ]]; then
    for t in /proc/"$GW"/task/*; do printf '  thread %s\n' "$(cat "$t/comm")"; done
    grep -E '^(Rss|Pss_Anon|Pss_File|Anonymous)' "/proc/$GW/smaps_rollup" | sed 's/^/  /'
fi

for ep in stdio echo; do
    python3 bench/mcp_session.py open "$BASE/mcp/$ep" >/dev/null
done
for ep in stdio echo; do
    before="$(rss_kib "$GW")"
    python3 bench/mcp_session.py open "$BASE/mcp/$ep" "$SESSIONS" >"$WORK/sessions-$ep.txt"
    [[ "$(wc -l <"$WORK/sessions-$ep.txt")" -eq "$SESSIONS" ]] || die "opened fewer than $SESSIONS sessions on /mcp/$ep"
    sleep 2
    after="$(rss_kib "$GW")"
    label="$ep"; [[ "$ep" == echo ]] && label=http
    echo "MEM $label before_kib=$before after_kib=$after per_session_bytes=$(( (after - before) * 1024 / SESSIONS ))"
done
