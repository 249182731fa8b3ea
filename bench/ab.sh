#!/usr/bin/env bash
# Two builds of mcpgate side by side: the same HTTP upstream, the same configuration, and
# wrk alternating between them round after round, so that a change's effect on CPU per
# request is read within one run and the shared machine's drift falls on both alike.
# bench/run.sh compares mcpgate with nginx and the upstream called directly; this compares
# mcpgate with itself (issue 17: before/after of a change on the hot path).
#
#   MCPGATE_BIN_A=old MCPGATE_BIN_B=new bench/ab.sh
#
# Knobs: AB_CONNS ["1 16 256"] wrk connections per cell, AB_ROUNDS [3] rounds per cell (A
# and B take turns going first), AB_DURATION [4] seconds per wrk run, AB_CONFIG: TOML
# appended to both gateways' configuration, e.g. observability off:
# AB_CONFIG=$'[metrics]\nlisten = ""\n[telemetry]\naccess_log = false\n[audit]\nenabled = false'.
# AB_CONFIG_A, AB_CONFIG_B: TOML appended to one side only, to weigh a setting with one build
# (MCPGATE_BIN_A and MCPGATE_BIN_B the same binary), e.g. AB_CONFIG_B=$'[audit]\nenabled = false'.
# Both gateways run with no auth in front of one `mcpgate demo-server --http` (started
# from build A); each call is `tools/call echo` on one Streamable HTTP session.
# Prints, per connection count, the median over the rounds of requests per second and of
# the gateway's CPU time (user + system, /proc/PID/stat) per request, and B / A.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/ab.sh"
WORK_PREFIX="mcpgate-ab"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

read -r -a CONNS <<<"${AB_CONNS:-1 16 256}"
ROUNDS="${AB_ROUNDS:-3}"
DURATION="${AB_DURATION:-4}"
for tool in wrk python3; do
    command -v "$tool" >/dev/null || die "$tool is required (Debian: apt-get install wrk python3)"
done
declare -A BINS=([A]="${MCPGATE_BIN_A:-}" [B]="${MCPGATE_BIN_B:-}")
for k in A B; do
    [[ -x "${BINS[$k]}" ]] || die "MCPGATE_BIN_$k must name an mcpgate binary (got '${BINS[$k]}')"
done

step "starting the demo upstream (Streamable HTTP)"
"${BINS[A]}" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo" >"$WORK/demo.out" 2>"$WORK/demo.err" &
PIDS+=("$!")
UPSTREAM_URL="$(wait_line "$WORK/demo.out" 'listening on http://' "$!" | grep -oE 'http://[^ ]+')"

declare -A PID URL SID
for k in A B; do
    {
        printf '[server]\nlisten = "127.0.0.1:0"\ndata_dir = "%s"\n\n' "$WORK/data-$k"
        printf '[auth]\nmode = "disabled"\n\n[[upstream]]\nname = "echo"\nurl = "%s"\n' "$UPSTREAM_URL"
        [[ -z "${AB_CONFIG:-}" ]] || printf '\n%s\n' "$AB_CONFIG"
        side="AB_CONFIG_$k"
        [[ -z "${!side:-}" ]] || printf '\n%s\n' "${!side}"
    } >"$WORK/gateway-$k.toml"
    step "starting gateway $k: ${BINS[$k]}"
    "${BINS[$k]}" serve --config "$WORK/gateway-$k.toml" >"$WORK/gateway-$k.out" 2>"$WORK/gateway-$k.err" &
    PID[$k]=$!
    PIDS+=("${PID[$k]}")
    base="$(wait_line "$WORK/gateway-$k.out" 'listening on http://' "${PID[$k]}" | grep -oE 'http://[^ ]+')"
    URL[$k]="$base/mcp/echo"
    SID[$k]="$(python3 bench/mcp_session.py open "${URL[$k]}")"
done

# One wrk run on gateway $1 with $2 connections; appends "rps cpu_us_per_request".
run_one() {
    local k="$1" c="$2" before after out n rps
    before="$(cpu_ticks "${PID[$k]}")"
    out="$(MCP_SESSION_ID="${SID[$k]}" BENCH_LABEL="$k-c$c" wrk -t1 -c"$c" -d"${DURATION}s" \
        -s bench/tools_call.lua "${URL[$k]}" | grep '^BENCH ')"
    after="$(cpu_ticks "${PID[$k]}")"
    n="$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$out")"
    rps="$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$out")"
    [[ "$n" -gt 0 ]] || die "gateway $k answered no request with $c connections: $out"
    printf '%s %s\n' "$rps" "$(python3 -c "print(($after - $before) * 1e6 / $TICKS / $n)")" >>"$WORK/cell-$k-$c"
}

for c in "${CONNS[@]}"; do
    step "$c connections: $ROUNDS rounds of ${DURATION}s each, A and B taking turns"
    for r in $(seq "$ROUNDS"); do
        if ((r % 2)); then order=(A B); else order=(B A); fi
        for k in "${order[@]}"; do run_one "$k" "$c"; done
    done
done

python3 - "$WORK" "${CONNS[@]}" <<'PY'
import statistics, sys
work, conns = sys.argv[1], sys.argv[2:]
print(f"{'conns':>5}  {'A req/s':>9} {'B req/s':>9} {'B/A':>6}   {'A CPU us/req':>12} {'B CPU us/req':>12} {'B/A':>6}   (medians; each round's CPU A / B)")
for c in conns:
    cells = {}
    for k in "AB":
        rows = [tuple(map(float, line.split())) for line in open(f"{work}/cell-{k}-{c}")]
        cells[k] = rows
    med = {k: (statistics.median(r for r, _ in v), statistics.median(u for _, u in v)) for k, v in cells.items()}
    rounds = " ".join(f"{a[1]:.0f}/{b[1]:.0f}" for a, b in zip(cells["A"], cells["B"]))
    print(f"{c:>5}  {med['A'][0]:>9.0f} {med['B'][0]:>9.0f} {med['B'][0] / med['A'][0]:>6.2f}   "
          f"{med['A'][1]:>12.1f} {med['B'][1]:>12.1f} {med['B'][1] / med['A'][1]:>6.2f}   ({rounds})")
PY
