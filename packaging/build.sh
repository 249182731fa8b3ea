#!/usr/bin/env bash
# Builds mcpgate's packages from an already-built binary:
#   target/dist/mcpgate_<version>_amd64.deb       (cargo deb --no-build)
#   target/dist/mcpgate-<version>.tgz,
#   target/dist/mcpgate-linux-x64-<version>.tgz   (npm pack)
#   target/dist/mcpgate-<version>-py3-none-*.whl  (maturin, bindings = "bin")
#   target/package/mcpgate.debug                  (the debug info split off the shipped binary)
#
# Usage: packaging/build.sh [--profile production|release|dev]
#   production (default): target/production/mcpgate, from
#     `cargo build --profile production -p mcpgate` (whole-program LTO: what releases ship)
#   release: target/release/mcpgate, from `cargo build --release -p mcpgate` (quicker to build)
#   dev: target/debug/mcpgate, what CI has already built (packaging/test.sh uses it)
# Needs: objcopy (binutils), gzip, node + npm, cargo-deb (`cargo install cargo-deb`)
# and maturin (`pip install maturin`); packaging/test.sh installs both.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PROFILE=production
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) PROFILE="$2"; shift 2 ;;
        *) echo "usage: $0 [--profile production|release|dev]" >&2; exit 2 ;;
    esac
done
case "$PROFILE" in
    # maturin passes its own flags for the final crate, so it redoes that crate's
    # build: with whole-program LTO, the whole link (several minutes).
    production) PROFILE_DIR=production; MATURIN_PROFILE=(--profile production); DEB_FLAGS=() ;;
    release) PROFILE_DIR=release; MATURIN_PROFILE=(--release); DEB_FLAGS=() ;;
    # A debug binary is large: compress it quickly, it is not shipped.
    dev) PROFILE_DIR=debug; MATURIN_PROFILE=(--profile dev); DEB_FLAGS=(--fast) ;;
    *) echo "build.sh: --profile production, release or dev" >&2; exit 2 ;;
esac
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/$PROFILE_DIR/mcpgate"
# cargo-deb's asset paths (crates/mcpgate/Cargo.toml) name target/package under the
# workspace, wherever CARGO_TARGET_DIR puts cargo's own output.
STAGE="$ROOT/target/package"
DIST="$TARGET/dist"
[[ -x "$BIN" ]] || { echo "build.sh: $BIN is missing: cargo build --profile $PROFILE -p mcpgate" >&2; exit 1; }
for tool in objcopy gzip node npm cargo-deb maturin; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is not on PATH" >&2; exit 1; }
done
VERSION="$("$BIN" --version | awk '{print $2}')"
rm -rf "$STAGE" "$DIST"
mkdir -p "$STAGE/completions" "$DIST"

echo "== the binary: debug info split off into mcpgate.debug"
# The shipped binary has no debug info; the separate file keeps the line
# tables (release: debug = "line-tables-only") for profilers and backtraces,
# found through the .gnu_debuglink section.
objcopy --only-keep-debug "$BIN" "$STAGE/mcpgate.debug"
objcopy --strip-debug --strip-unneeded --add-gnu-debuglink="$STAGE/mcpgate.debug" "$BIN" "$STAGE/mcpgate"
chmod 755 "$STAGE/mcpgate"

echo "== the man page, completions and the starter configuration, from the binary"
"$STAGE/mcpgate" man | gzip -9n > "$STAGE/mcpgate.1.gz"
"$STAGE/mcpgate" completions bash > "$STAGE/completions/mcpgate.bash"
"$STAGE/mcpgate" completions zsh > "$STAGE/completions/_mcpgate"
"$STAGE/mcpgate" completions fish > "$STAGE/completions/mcpgate.fish"
"$STAGE/mcpgate" init --config "$STAGE/mcpgate.toml" --force > /dev/null
sed -i 's|^data_dir = .*|data_dir = "/var/lib/mcpgate"|' "$STAGE/mcpgate.toml"
grep -q '^data_dir = "/var/lib/mcpgate"$' "$STAGE/mcpgate.toml"

echo "== .deb (cargo deb)"
# --quiet: cargo-deb warns that assets outside target/release/ are not built; build.sh made them.
(cd "$ROOT" && cargo deb -p mcpgate --no-build --no-strip --quiet "${DEB_FLAGS[@]}" --deb-version "$VERSION" -o "$DIST/")

echo "== npm packages"
for pkg in mcpgate mcpgate-linux-x64; do
    cp -r "$ROOT/packaging/npm/$pkg" "$STAGE/npm-$pkg"
    node -e '
        const fs = require("fs");
        const [file, version] = process.argv.slice(1);
        const p = JSON.parse(fs.readFileSync(file, "utf8"));
        p.version = version;
        if (p.optionalDependencies) for (const k of Object.keys(p.optionalDependencies)) p.optionalDependencies[k] = version;
        fs.writeFileSync(file, JSON.stringify(p, null, 2) + "\n");
    ' "$STAGE/npm-$pkg/package.json" "$VERSION"
done
mkdir -p "$STAGE/npm-mcpgate-linux-x64/bin"
cp "$STAGE/mcpgate" "$STAGE/npm-mcpgate-linux-x64/bin/mcpgate"
for pkg in mcpgate mcpgate-linux-x64; do
    (cd "$STAGE/npm-$pkg" && npm pack --silent --pack-destination "$DIST" > /dev/null)
done

echo "== Python wheel (maturin, bindings = \"bin\")"
# maturin runs cargo for the crate; with the profile's build already done,
# only the final link step (stripping) is redone.
(cd "$ROOT/packaging/python" && maturin build "${MATURIN_PROFILE[@]}" --out "$DIST" --quiet)

echo "== built"
ls -l "$DIST" "$STAGE/mcpgate" "$STAGE/mcpgate.debug"
