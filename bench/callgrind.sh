#!/usr/bin/env bash
# Instructions per request through the gateway, counted by valgrind's callgrind: the
# figure that stays the same run after run on a shared, noisy machine, so a change on the
# hot path can be judged by its own delta (issue 17). Wall-clock throughput is bench/run.sh.
#
#   bench/callgrind.sh                   build (BENCH_PROFILE, default production), count every setup (~3-5 min)
#   BENCH_NO_BUILD=1 bench/callgrind.sh  reuse the binary already built (BENCH_PROFILE: production or release)
#   MCPGATE_BIN=path bench/callgrind.sh  count another binary (e.g. an older commit's)
#
# Setups: `direct hop` (no auth, Streamable HTTP upstream), `API key`, `JWT ES256`,
# `stdio` (no auth, one shared stdio child), and `adopted` (opt-in: the direct hop, but the
# session is opened through a second gateway run natively with the same session key, so the
# one counted continues a session another replica opened, as behind a load balancer). Each runs the gateway under callgrind with
# instrumentation off (nothing counted), opens a session, sends 50 warm-up calls, zeroes the
# counters and switches instrumentation on, sends CG_REQUESTS [2000] sequential
# `tools/call echo` requests on one keep-alive connection, dumps, and divides the
# instructions (Ir) by the request count. The upstream runs natively.
# Opt-in setups for issue 18, each the direct hop with one thing added: `virtual` (the
# upstream served through a `[[virtual_server]]`, the call named `echo_echo`, prefix removed on
# the way) and `policy50` (a `[policy]` file of 50 Cedar rules, generated below, where the call
# is permitted by the last one, which reads the arguments).
# Opt-in for issue 17: `stateless`, the direct hop called as a 2026-07-28 client (no session:
# `_meta` and the routing headers on every call, as bench/tools_call.lua sends them).
# Knobs: CG_REQUESTS, CG_SETUPS (space-separated subset of: hop apikey jwt stdio adopted
# virtual policy50 stateless; default hop apikey jwt stdio), CG_TOP [12],
# CG_CONFIG: TOML appended to every gateway's configuration, e.g. to switch off the
# metrics listener and the access log: CG_CONFIG=$'[metrics]\nlisten = ""\n[telemetry]\naccess_log = false'.
# Dumps and annotated profiles are kept in target/bench/callgrind/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_NAME="bench/callgrind.sh"
WORK_PREFIX="mcpgate-callgrind"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

REQUESTS="${CG_REQUESTS:-2000}"
read -r -a SETUPS <<<"${CG_SETUPS:-hop apikey jwt stdio}"
TOP="${CG_TOP:-12}"

for tool in valgrind callgrind_control callgrind_annotate openssl python3; do
    command -v "$tool" >/dev/null || die "$tool is required (Debian: apt-get install valgrind openssl python3)"
done
locate_binary

OUT="$ROOT/target/bench/callgrind"
rm -rf "$OUT"
mkdir -p "$OUT"

# --- credentials (the same shapes as bench/guard.sh) ----------------------------
AUDIENCE="https://mcp.bench.example/mcp"
ISSUER="https://issuer.bench.example/"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/es256.key" 2>/dev/null
openssl ec -in "$WORK/es256.key" -pubout -out "$WORK/es256.pub" 2>/dev/null
JWT="$(make_es256_jwt "$ISSUER" "$AUDIENCE" "$WORK/es256.key")"

step "starting the demo upstream (Streamable HTTP, native)"
"$BIN" demo-server --http 127.0.0.1:0 --data-dir "$WORK/demo-http" >"$OUT/demo.out" 2>"$OUT/demo.err" &
DEMO_PID=$!
PIDS+=("$DEMO_PID")
UPSTREAM_URL="$(wait_line "$OUT/demo.out" 'listening on http://' "$DEMO_PID" | grep -oE 'http://[^ ]+')"

API_KEY="$("$BIN" keys create --data-dir "$WORK/data-apikey" --name b --scopes '*' 2>"$OUT/keys.err")" \
    || die "mcpgate keys create failed; see $OUT/keys.err"

config() {
    printf '[server]\nlisten = "127.0.0.1:0"\ndata_dir = "%s"\n\n' "$WORK/data-$1"
    case "$1" in
        hop | stdio | adopted | opener | virtual | policy50 | stateless) printf '[auth]\nmode = "disabled"\n' ;;
        apikey) printf '[auth]\nmode = "required"\nusers = false\n' ;;
        jwt)
            printf '[auth]\nmode = "required"\napi_keys = false\nusers = false\n\n'
            printf '[[auth.jwt]]\nname = "bench"\nissuer = "%s"\naudience = "%s"\n' "$ISSUER" "$AUDIENCE"
            printf 'public_key_file = "%s"\nalgorithms = ["ES256"]\n' "$WORK/es256.pub"
            ;;
    esac
    if [[ "$1" == stdio ]]; then
        printf '\n[[upstream]]\nname = "echo"\ncommand = ["%s", "demo-server", "--data-dir", "%s"]\nisolation = "shared"\n' \
            "$BIN" "$WORK/demo-stdio"
    else
        printf '\n[[upstream]]\nname = "echo"\nurl = "%s"\n' "$UPSTREAM_URL"
    fi
    case "$1" in
        virtual) printf '\n[[virtual_server]]\nname = "work"\nupstreams = ["echo"]\n' ;;
        policy50) printf '\n[policy]\nfile = "%s"\n' "$WORK/policy50.cedar" ;;
    esac
    [[ -z "${CG_CONFIG:-}" ]] || printf '\n%s\n' "$CG_CONFIG"
}
# 50 rules of the kinds docs/POLICY.md shows (group, name pattern, upstream, argument
# conditions); none but the last applies to `tools/call echo`, so each is evaluated and
# found not to apply before the last one permits.
policy50() {
    for i in $(seq 1 20); do
        printf '@id("no-delete-%s")\nforbid (principal, action == Action::"tools/call", resource)\n' "$i"
        printf 'when { resource.name like "*_delete_%s*" }\nunless { principal in Group::"sre" };\n\n' "$i"
    done
    for i in $(seq 1 20); do
        printf '@id("team-%s")\npermit (principal in Group::"team%s", action, resource)\n' "$i" "$i"
        printf 'when { resource.upstream == "up%s" };\n\n' "$i"
    done
    for i in $(seq 1 9); do
        printf '@id("issues-%s")\npermit (principal, action == Action::"tools/call", resource == Tool::"tool%s")\n' "$i" "$i"
        printf 'when { context has repo && context.repo like "acme%s/*" };\n\n' "$i"
    done
    printf '@id("echo")\npermit (principal, action == Action::"tools/call", resource == Tool::"echo")\n'
    printf 'when { context has text && context.text like "call*" };\n'
}
policy50 >"$WORK/policy50.cedar"
credential() {
    case "$1" in
        apikey) echo "$API_KEY" ;;
        jwt) echo "$JWT" ;;
        *) echo "" ;;
    esac
}
# The api-key setup's data directory already holds the key made above.
mkdir -p "$WORK/data-hop" "$WORK/data-jwt" "$WORK/data-stdio" "$WORK/data-adopted" "$WORK/data-opener" \
    "$WORK/data-virtual" "$WORK/data-policy50" "$WORK/data-stateless"
# One session key for every gateway: the `adopted` setup's two replicas open each other's ids.
export MCPGATE_SERVER__SESSION_KEY
MCPGATE_SERVER__SESSION_KEY="$(openssl rand -base64 32)"

declare -A IR
for s in "${SETUPS[@]}"; do
    config "$s" >"$WORK/gateway-$s.toml"
    init_url=""
    if [[ "$s" == adopted ]]; then
        # The replica that opens the session, run natively; the counted one only continues it.
        config opener >"$WORK/gateway-opener.toml"
        "$BIN" serve --config "$WORK/gateway-opener.toml" >"$OUT/gateway-opener.out" 2>"$OUT/gateway-opener.err" &
        opener=$!
        PIDS+=("$opener")
        init_url="$(wait_line "$OUT/gateway-opener.out" 'listening on http://' "$opener" | grep -oE 'http://[^ ]+')/mcp/echo"
    fi
    step "$s: gateway under callgrind, $REQUESTS requests"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.$s.out" \
        "$BIN" serve --config "$WORK/gateway-$s.toml" >"$OUT/gateway-$s.out" 2>"$OUT/gateway-$s.err" &
    pid=$!
    PIDS+=("$pid")
    base="$(wait_line "$OUT/gateway-$s.out" 'listening on http://' "$pid" | grep -oE 'http://[^ ]+')"
    rm -f "$WORK/ready" "$WORK/go"
    endpoint=echo
    export CG_TOOL=echo CG_STATELESS=0
    [[ "$s" != stateless ]] || CG_STATELESS=1
    if [[ "$s" == virtual ]]; then
        endpoint=work
        CG_TOOL=echo_echo
    fi
    python3 "$ROOT/bench/callgrind_drive.py" "$base/mcp/$endpoint" "$(credential "$s")" "$REQUESTS" \
        "$WORK/ready" "$WORK/go" ${init_url:+"$init_url"} >"$OUT/drive-$s.out" 2>&1 &
    driver=$!
    for _ in $(seq 1200); do [[ -e "$WORK/ready" ]] && break; kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    [[ -e "$WORK/ready" ]] || die "$s: the driver did not get through the warm-up; see $OUT/drive-$s.out"
    callgrind_control -z "$pid" >/dev/null
    callgrind_control -i on "$pid" >/dev/null
    touch "$WORK/go"
    wait "$driver" || die "$s: the driver failed; see $OUT/drive-$s.out"
    callgrind_control -i off "$pid" >/dev/null
    callgrind_control -d "$s" "$pid" >/dev/null
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    # The dump made on request is the one named after the trigger; its totals cover exactly
    # the collected requests.
    dump="$(grep -lE "^desc: Trigger: (Client Request: )?dump $s$" "$OUT"/callgrind.$s.out* | head -1)"
    [[ -n "$dump" ]] || die "$s: no callgrind dump found in $OUT"
    total="$(awk '/^totals:/ { print $2; exit }' "$dump")"
    IR[$s]=$(( total / REQUESTS ))
    callgrind_annotate "$dump" 2>/dev/null | sed -n '1,/^Ir/d; /^$/d; p' | head -n "$TOP" >"$OUT/top-$s.txt" || true
done

names() {
    case "$1" in
        hop) echo "direct hop (no auth, HTTP upstream)" ;;
        apikey) echo "API key" ;;
        jwt) echo "JWT ES256" ;;
        stdio) echo "stdio shared child (no auth)" ;;
        adopted) echo "direct hop, adopted (opened elsewhere)" ;;
        virtual) echo "direct hop through a virtual server" ;;
        policy50) echo "direct hop, 50 Cedar rules" ;;
        stateless) echo "direct hop, 2026-07-28 stateless" ;;
    esac
}
echo
echo "instructions per tools/call in the gateway process ($REQUESTS sequential requests, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
printf '| %-38s | %14s |\n' setup "Ir per request"
printf '| %-38s | %14s |\n' "---" "---"
for s in "${SETUPS[@]}"; do
    printf '| %-38s | %14s |\n' "$(names "$s")" "${IR[$s]}"
done
for s in "${SETUPS[@]}"; do
    echo
    echo "top functions, $(names "$s") (self Ir over all $REQUESTS requests):"
    cat "$OUT/top-$s.txt"
done
