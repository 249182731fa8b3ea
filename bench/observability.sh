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
#   tracing-metrics  metrics and tracing both on (access log and audit trail off):
#             issue 15's sentence read as "metrics on and tracing on" together
#   all       metrics, tracing, the access log and the audit trail (SQLite) on
#
# Targets (issue 15): metrics / off >= 0.95, tracing / off >= 0.85 (and
# tracing-metrics / off >= 0.85), judged on the
# gateway CPU per request (off over mode, median of the rounds), req/s shown beside it.
#
#   bench/observability.sh                   build (BENCH_PROFILE, default production), run (~4 min), print a table
#   BENCH_NO_BUILD=1 bench/observability.sh  reuse the binary already built (BENCH_PROFILE: production or release)
#   MCPGATE_BIN=path bench/observability.sh  measure another binary
# Knobs: OBS_THREADS [1], OBS_CONNS [16], OBS_DURATION [10] seconds per run,
# OBS_ROUNDS [5], OBS_MODES ["off metrics tracing tracing-metrics all"].
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
ROUNDS="${OBS_ROUNDS:-5}"
read -r -a MODES <<<"${OBS_MODES:-off metrics tracing tracing-metrics all}"

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
        tracing | tracing-metrics | all) printf 'otlp_endpoint = "%s"\nsample_ratio = 1.0\n' "$OTLP_URL" ;;
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
# Each round starts with the next mode, so that no mode always runs first
# (right after another mode's load) or last.
n=${#MODES[@]}
for r in $(seq "$ROUNDS"); do
    step "round $r/$ROUNDS: wrk -t$THREADS -c$CONNS -d${DURATION}s per mode"
    for i in $(seq 0 $(( n - 1 ))); do
        mode="${MODES[$(( (i + r - 1) % n ))]}"
        run "$mode" "$DURATION" "$mode-$r"
    done
done
sleep 6 # the exporters' batch interval (5 s): the last spans reach the receiver

echo
echo "observability cost — $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo unknown version)), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "load: wrk -t$THREADS -c$CONNS -d${DURATION}s, $ROUNDS rounds alternating ${MODES[*]}; upstream: demo-server over HTTP"
python3 - "$RESULTS" "${MODES[@]}" <<'PY'
import statistics
import sys

# Two figures per mode, both as medians over the rounds: req/s and the
# gateway's CPU time per request (from /proc/PID/stat around each run). On a
# shared machine other load moves req/s by tens of percent from run to run;
# CPU per request moves much less, so its ratio is the primary figure: off's
# CPU per request over the mode's is the throughput ratio a machine whose
# cores the gateway does not share with wrk and the upstream would see.
path, modes = sys.argv[1], sys.argv[2:]
runs = {}
for line in open(path):
    if line.startswith("BENCH "):
        f = dict(kv.split("=", 1) for kv in line.split()[1:])
        f["round"] = f["label"].rsplit("-", 1)[1]
        runs.setdefault(f["mode"], {})[f["round"]] = f
targets = {"metrics": 0.95, "tracing": 0.85, "tracing-metrics": 0.85}
def rps(r):
    return int(r["requests"]) / max(int(r["duration_us"]) / 1e6, 1e-9)
def cpu_us(r):
    return 1e6 * int(r["gw_ticks"]) / int(r["clk_tck"]) / max(int(r["requests"]), 1)
def med(xs):
    return statistics.median(xs) if xs else float("nan")
off = runs.get("off", {})
print(f"| {'mode':<8} | {'req/s':>8} | {'req/s vs off':>12} | {'CPU µs/req':>10} | {'CPU ratio off/mode':>18} | {'target':>7} | {'p50 ms':>6} | {'p99 ms':>6} |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in modes:
    rs = runs.get(m, {})
    if not rs:
        continue
    rounds = sorted(rs)
    # Paired by round: both runs of a pair saw the same other load.
    tput = med([rps(rs[k]) / rps(off[k]) for k in rounds if k in off])
    cpu = med([cpu_us(off[k]) / cpu_us(rs[k]) for k in rounds if k in off and cpu_us(rs[k]) > 0])
    p50 = med([int(r["p50_us"]) for r in rs.values()]) / 1000
    p99 = med([int(r["p99_us"]) for r in rs.values()]) / 1000
    target = ""
    if m in targets:
        verdict = "met" if cpu >= targets[m] else "MISSED"
        target = f">= {targets[m]} {verdict}"
    errors = sum(int(r["errors"]) + int(r["non2xx"]) for r in rs.values())
    note = f" ({errors} errors)" if errors else ""
    print(f"| {m:<8} | {med([rps(r) for r in rs.values()]):8.0f} | {tput:12.3f} | {med([cpu_us(r) for r in rs.values()]):10.1f} | {cpu:18.3f} | {target:>7} | {p50:6.2f} | {p99:6.2f} |{note}")
print()
print("per round (req/s, gateway CPU µs/req):")
for m in modes:
    rs = runs.get(m, {})
    print(f"  {m:<8} " + "  ".join(f"{rps(rs[k]):7.0f} {cpu_us(rs[k]):6.1f}" for k in sorted(rs)))
PY
if [[ -s "$OUT/otlp.count" ]]; then
    read -r exports bytes spans <"$OUT/otlp.count"
    # Every request to a tracing gateway (warm-up included) has one request span;
    # the spans of the last few seconds may still be queued in the gateway.
    sent="$(cat "$OUT"/wrk-*.txt | awk '/^BENCH label=(warm-)?(tracing|all)/ { for (i = 1; i <= NF; i++) if ($i ~ /^requests=/) { split($i, kv, "="); n += kv[2] } } END { print n + 0 }')"
    verdict="every request's span arrived"
    # A few spans of the last seconds may still be queued: only a real shortfall is a drop.
    (( spans * 100 < sent * 99 )) && verdict="fewer than sent: spans were dropped (see the gateways' logs)"
    echo "OTLP receiver: $exports exports, $bytes bytes of spans, $spans request spans for $sent requests sent to the tracing modes ($verdict)"
else
    echo "OTLP receiver: nothing received"
fi
echo "raw results and logs: $OUT"
