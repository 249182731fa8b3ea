# shellcheck shell=bash
# Shared by bench/run.sh and bench/guard.sh (sourced, not run): process
# bookkeeping so every process a benchmark starts is stopped when it exits,
# and readers of /proc for memory and CPU figures.
# Expects: BENCH_NAME (for messages) and WORK_PREFIX (for the scratch directory).

step() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/${WORK_PREFIX}.XXXXXX")"

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits for a line matching $2 in file $1 (or for process $3 to die); prints the line.
# BENCH_WAIT_STEPS [200] steps of 50 ms (more for a debug build under valgrind on a busy machine).
wait_line() {
    local file="$1" pattern="$2" pid="$3" line
    for _ in $(seq "${BENCH_WAIT_STEPS:-200}"); do
        line="$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)"
        if [[ -n "$line" ]]; then printf '%s\n' "$line"; return 0; fi
        kill -0 "$pid" 2>/dev/null || die "process $pid exited; see $file and its .err"
        sleep 0.05
    done
    die "timed out waiting for '$pattern' in $file"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# CPU time (user + system) of a process, in clock ticks; 0 for no process.
cpu_ticks() { if [[ -n "$1" ]]; then awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; else echo 0; fi; }
# User-mode CPU time of a process, in clock ticks (the rest of cpu_ticks is the kernel's).
user_ticks() { if [[ -n "$1" ]]; then awk '{ print $14 }' "/proc/$1/stat" 2>/dev/null || echo 0; else echo 0; fi; }
# CPU time the whole machine spent busy, in clock ticks.
machine_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
TICKS="$(getconf CLK_TCK)"

# Sets BIN: $MCPGATE_BIN, else the build of cargo profile $BENCH_PROFILE (default
# `production`, the whole-program LTO build the packages ship; `release` builds in about
# half the time), built first unless BENCH_NO_BUILD is set.
locate_binary() {
    if [[ -n "${MCPGATE_BIN:-}" ]]; then
        BIN="$MCPGATE_BIN"
    else
        local target profile="${BENCH_PROFILE:-production}"
        target="$(cargo metadata --format-version 1 --no-deps \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
        case "$profile" in
            release | production) BIN="$target/$profile/mcpgate" ;;
            *) die "BENCH_PROFILE must be production or release (got '$profile')" ;;
        esac
        if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
            step "cargo build --profile $profile -p mcpgate"
            cargo build --profile "$profile" -p mcpgate
        fi
    fi
    [[ -x "$BIN" ]] || die "no mcpgate binary at $BIN"
}

# Prints an ES256 JWT valid for a day (sub "b", scope "*") for issuer $1 and audience $2,
# signed by openssl with the P-256 key in PEM file $3; python turns openssl's DER ECDSA
# signature (SEQUENCE { INTEGER r, INTEGER s }, short lengths) into JWS's raw r||s.
make_es256_jwt() {
    ISSUER="$1" AUDIENCE="$2" KEY="$3" python3 - <<'PY'
import base64, json, os, subprocess, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
header = {"alg": "ES256", "typ": "JWT"}
claims = {"iss": os.environ["ISSUER"], "aud": os.environ["AUDIENCE"], "sub": "b",
          "client_id": "bench", "scope": "*", "iat": now, "exp": now + 86400}
signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.environ["KEY"]],
                     input=signing_input.encode(), capture_output=True, check=True).stdout
assert der[0] == 0x30
i = 2 if der[1] < 0x80 else 3
ints = []
for _ in range(2):
    assert der[i] == 0x02
    n = der[i + 1]
    ints.append(int.from_bytes(der[i + 2:i + 2 + n], "big"))
    i += 2 + n
print(signing_input + "." + b64(b"".join(v.to_bytes(32, "big") for v in ints)))
PY
}
