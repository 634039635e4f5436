#!/usr/bin/env bash
# Browser interop: the Autobahn|JS browser bundle (npm autobahn-browser) in headless Chromium
# against the router binary: register/call and acknowledged publish/subscribe with json, msgpack
# and cbor, plus calls to and events for a Node session outside the browser (run.js); and the
# apps of `switchboard init --template`, each initialised, started and loaded (templates.js,
# which runs hello:python's backend under SWITCHBOARD_PYTHON, default <repo>/.venv/bin/python);
# and the live web console (console.js: log in, a session appears, charts move under load, kill,
# Reload, a read-only user without action buttons; screenshots in $CONSOLE_SCREENSHOTS, default
# <repo>/target/console-screenshots/).
#
#   tests/interop/browser/run.sh
#
# Assumes the router is built (cargo build --bins); the binary is $SWITCHBOARD_BIN, default
# <repo>/target/debug/switchboard. Chromium is $CHROMIUM_BIN, default /usr/bin/chromium, which is
# installed with apt-get (Debian package chromium) when missing.
# Idempotent: node_modules is (re)installed with npm ci only when package*.json changed.
# Ends with a line "N passed, N failed"; exit status non-zero on any failure.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'browser interop: %s\n0 passed, 1 failed\n' "$*"; exit 2; }

export SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$REPO/target/debug/switchboard}"
[ -x "$SWITCHBOARD_BIN" ] || die "router binary $SWITCHBOARD_BIN not found or not executable (run cargo build --bins first)"

# --- Chromium ---------------------------------------------------------------------------------
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM_BIN" ]; then
    [ "$CHROMIUM_BIN" = /usr/bin/chromium ] || die "CHROMIUM_BIN=$CHROMIUM_BIN not found"
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null && sudo -n true 2>/dev/null \
            || die "/usr/bin/chromium missing and not root: apt-get install chromium"
        SUDO=(sudo -n)
    fi
    log "installing chromium with apt-get"
    timeout 120 "${SUDO[@]}" apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive timeout 600 "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium \
        >/dev/null || die "apt-get install chromium failed"
fi
log "browser: $("$CHROMIUM_BIN" --version 2>/dev/null | head -1)"

# --- Node packages ----------------------------------------------------------------------------
command -v node >/dev/null || die "node not found"
command -v npm >/dev/null || die "npm not found"
NODE_FLAGS=()
# run.js and Autobahn|JS use the global WebSocket: built in from Node 22, behind a flag in 20/21
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 22 ] || NODE_FLAGS=(--experimental-websocket)
stamp="$HERE/node_modules/.interop-lock.sha256"
want="$(sha256sum "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "npm ci in $HERE"
    (cd "$HERE" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    printf '%s\n' "$want" > "$stamp"
else
    log "node_modules up to date"
fi

# --- run --------------------------------------------------------------------------------------
# run.js: the bundle against the router; templates.js: the apps of `switchboard init --template`;
# console.js: the live web console.
# Each bounds every step and kills what it started; these timeouts are a last resort.
cd "$HERE" || die "cd $HERE"
passed=0 failed=0 rc=0
for script in run.js templates.js console.js; do
    out="$(mktemp)"
    timeout 600 node "${NODE_FLAGS[@]}" "$script" | tee "$out"
    code=${PIPESTATUS[0]}
    [ "$code" -eq 124 ] && printf 'browser interop: %s killed after 600 s\n' "$script"
    [ "$code" -ne 0 ] && rc=1
    counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)"
    rm -f "$out"
    if [ -n "$counts" ]; then
        passed=$((passed + ${counts%% passed*}))
        f="${counts#*, }"; failed=$((failed + ${f%% failed}))
    else
        failed=$((failed + 1))
    fi
done
printf '%s passed, %s failed\n' "$passed" "$failed"
exit "$rc"
