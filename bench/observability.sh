#!/usr/bin/env bash
# What observability costs in gateway throughput (issue 15): `tools/call` through
# mcpgate to the demo server's echo tool (Streamable HTTP), with wrk, against four
# gateways running the same binary side by side, measured in the same run, in
# alternating rounds so that other load on the machine hits every mode alike:
#
#   off       [metrics] listen = "", access log off, audit trail off, no exporter
#   metrics   as off, with the /metrics listener (metrics recorded)
#   tracing   as off, with spans exported over OTLP/HTTP to a receiver started
#             here (bench/otlp_sink.py), sampler ratio 1.0
#   all       metrics, tracing, the access log and the audit trail (SQLite) on
#
# Targets (issue 15): metrics / off >= 0.95, tracing / off >= 0.85.
#
#   bench/observability.sh                   build release, run (~3 min), print a table
#   BENCH_NO_BUILD=1 bench/observability.sh  reuse the release binary already built
#   MCPGATE_BIN=path bench/observability.sh  measure another binary
# Knobs: OBS_THREADS [1], OBS_CONNS [16], OBS_DURATION [10] seconds per run,
# OBS_ROUNDS [3], OBS_MODES ["off metrics tracing all"].
# wrk output, gateway logs and the receiver's counts are kept in target/bench/observability/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/observability.sh"
WORK_PREFIX="mcpgate-obs-bench"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

THREADS="${OBS_THREADS:-1}"
CONNS="${OBS_CONNS:-16}"
DURATION="${OBS_DURATION:-10}"
ROUNDS="${OBS_ROUNDS:-3}"
read -r -a MODES <<<"${OBS_MODES:-off metrics tracing all}"

for tool in wrk python3; do
    command -v "$tool" >/dev/null || die "$tool is required (Debian: apt-get install wrk python3)"
done
locate_binary

OUT="$ROOT/target/bench/observability"
rm -rf "$OUT"
mkdir -p "$OUT"

step "starting the demo upstream (Streamable HTTP) and the OTLP receiver"
"$BIN" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo-http" >"$OUT/demo.out" 2>"$OUT/demo.err" &
PIDS+=("$!")
UPSTREAM_URL="$(wait_line "$OUT/demo.out" 'listening on http://' "$!" | grep -oE 'http://[^ ]+')"
python3 "$ROOT/bench/otlp_sink.py" "$OUT/otlp.count" >"$OUT/otlp.out" 2>"$OUT/otlp.err" &
PIDS+=("$!")
OTLP_URL="$(wait_line "$OUT/otlp.out" 'listening on http://' "$!" | grep -oE 'http://[^ ]+')"

config() {
    local mode="$1"
    printf '[server]\nlisten = "127.0.0.1:0"\ndata_dir = "%s"\n\n[auth]\nmode = "disabled"\n\n' "$WORK/data-$mode"
    case "$mode" in
        off | tracing) printf '[metrics]\nlisten = ""\n\n' ;;
        *) printf '[metrics]\nlisten = "127.0.0.1:0"\n\n' ;;
    esac
    printf '[telemetry]\n'
    case "$mode" in
        tracing | all) printf 'otlp_endpoint = "%s"\nsample_ratio = 1.0\n' "$OTLP_URL" ;;
    esac
    case "$mode" in
        all) printf 'access_log = true\n\n[audit]\nenabled = true\n' ;;
        *) printf 'access_log = false\n\n[audit]\nenabled = false\n' ;;
    esac
    printf '\n[[upstream]]\nname = "echo"\nurl = "%s"\n' "$UPSTREAM_URL"
}

declare -A URL SID GW
for mode in "${MODES[@]}"; do
    config "$mode" >"$OUT/gateway-$mode.toml"
    "$BIN" serve --config "$OUT/gateway-$mode.toml" >"$OUT/gateway-$mode.out" 2>"$OUT/gateway-$mode.err" &
    GW[$mode]=$!
    PIDS+=("$!")
    base="$(wait_line "$OUT/gateway-$mode.out" 'listening on http://' "$!" | grep -oE 'http://[^ ]+')"
    URL[$mode]="$base/mcp/echo"
    SID[$mode]="$(python3 bench/mcp_session.py open "${URL[$mode]}")"
    step "$mode: ${URL[$mode]} -> $(python3 bench/mcp_session.py call "${URL[$mode]}" "${SID[$mode]}")"
done

RESULTS="$OUT/results.txt"
: >"$RESULTS"
# run MODE SECONDS LABEL: one wrk run; appends its BENCH line (with the gateway's CPU ticks).
run() {
    local mode="$1" d="$2" label="$3" g0 g1 line
    g0="$(cpu_ticks "${GW[$mode]}")"
    MCP_SESSION_ID="${SID[$mode]}" BENCH_LABEL="$label" \
        wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --latency -s bench/tools_call.lua "${URL[$mode]}" \
        >"$OUT/wrk-$label.txt" 2>&1 || die "wrk failed; see $OUT/wrk-$label.txt"
    g1="$(cpu_ticks "${GW[$mode]}")"
    line="$(grep '^BENCH ' "$OUT/wrk-$label.txt")" || die "no result line in $OUT/wrk-$label.txt"
    line="$line mode=$mode gw_ticks=$(( g1 - g0 )) clk_tck=$TICKS"
    printf '    %s\n' "$line" >&2
    echo "$line" >>"$RESULTS"
}

step "warm-up (3 s per mode, not counted)"
for mode in "${MODES[@]}"; do run "$mode" 3 "warm-$mode" 2>/dev/null; done
: >"$RESULTS"
for r in $(seq "$ROUNDS"); do
    step "round $r/$ROUNDS: wrk -t$THREADS -c$CONNS -d${DURATION}s per mode"
    for mode in "${MODES[@]}"; do run "$mode" "$DURATION" "$mode-$r"; done
done
sleep 6 # the exporters' batch interval (5 s): the last spans reach the receiver

echo
echo "observability cost — $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo unknown version)), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "load: wrk -t$THREADS -c$CONNS -d${DURATION}s, $ROUNDS rounds alternating ${MODES[*]}; upstream: demo-server over HTTP"
python3 - "$RESULTS" "${MODES[@]}" <<'PY'
import sys

path, modes = sys.argv[1], sys.argv[2:]
runs = {}
for line in open(path):
    if line.startswith("BENCH "):
        f = dict(kv.split("=", 1) for kv in line.split()[1:])
        runs.setdefault(f["mode"], []).append(f)
targets = {"metrics": 0.95, "tracing": 0.85}
def rps(m):
    rs = runs.get(m, [])
    return sum(int(r["requests"]) for r in rs) / max(sum(int(r["duration_us"]) for r in rs) / 1e6, 1e-9)
def per_request_cpu_us(m):
    rs = runs.get(m, [])
    ticks = sum(int(r["gw_ticks"]) for r in rs) / int(rs[0]["clk_tck"])
    return 1e6 * ticks / max(sum(int(r["requests"]) for r in rs), 1)
base = rps("off") if "off" in runs else None
print(f"| {'mode':<8} | {'req/s':>8} | {'vs off':>6} | {'target':>7} | {'p50 ms':>6} | {'p99 ms':>6} | {'gateway CPU µs/req':>18} |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in modes:
    rs = runs.get(m, [])
    if not rs:
        continue
    p50 = sorted(int(r["p50_us"]) for r in rs)[len(rs) // 2] / 1000
    p99 = sorted(int(r["p99_us"]) for r in rs)[len(rs) // 2] / 1000
    ratio = rps(m) / base if base else float("nan")
    target = f">= {targets[m]}" if m in targets else ""
    verdict = ("ok" if ratio >= targets[m] else "MISSED") if m in targets and base else ""
    errors = sum(int(r["errors"]) + int(r["non2xx"]) for r in rs)
    note = f" ({errors} errors)" if errors else ""
    print(f"| {m:<8} | {rps(m):8.0f} | {ratio:6.3f} | {target:>7} {verdict} | {p50:6.2f} | {p99:6.2f} | {per_request_cpu_us(m):18.1f} |{note}")
PY
if [[ -s "$OUT/otlp.count" ]]; then
    read -r exports bytes <"$OUT/otlp.count"
    echo "OTLP receiver: $exports exports, $bytes bytes of spans"
else
    echo "OTLP receiver: nothing received"
fi
echo "raw results and logs: $OUT"
