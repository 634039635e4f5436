#!/usr/bin/env bash
# Interop suite: drives the router binary with Autobahn|JS (node --test) and
# Autobahn|Python (pytest).
#
#   tests/interop/run.sh [extra pytest args]
#
# Assumes the router is already built (cargo build); the binary is
# $SWITCHBOARD_BIN, default <repo>/target/debug/switchboard.
# Set INTEROP_ROUTER=crossbar (and CROSSBAR_BIN) to run the suite against
# Crossbar.io instead, to check the suite itself.
# INTEROP_ONLY=js or INTEROP_ONLY=python runs one half.
#
# Idempotent: the virtualenv (<repo>/.venv) and tests/interop/js/node_modules
# are (re)installed only when requirements.txt / package-lock.json changed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY_DIR="$HERE/python"
JS_DIR="$HERE/js"
VENV="$REPO/.venv"
ONLY="${INTEROP_ONLY:-}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'interop: %s\n' "$*" >&2; exit 2; }

hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# --- the router --------------------------------------------------------------
if [ "${INTEROP_ROUTER:-switchboard}" = "switchboard" ]; then
    export SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$REPO/target/debug/switchboard}"
    [ -x "$SWITCHBOARD_BIN" ] || die "router binary $SWITCHBOARD_BIN not found or not executable (run cargo build first)"
    log "router under test: $SWITCHBOARD_BIN"
else
    log "router under test: ${INTEROP_ROUTER} (${CROSSBAR_BIN:-crossbar})"
fi

# --- Python environment ----------------------------------------------------------
# Debian packages the tests run: nats-server (the cluster tests), curl (the HTTP bridge and
# template tests run Crossbar's documented curl lines as written), psql (the PostgreSQL bridge
# tests set up their database with it) and PostgreSQL's initdb and pg_ctl (the durable and TLS
# tests start clusters of their own, and every PostgreSQL test does where no server answers: see
# pg_cluster.py).
ensure_package() {
    "$REPO/scripts/ensure-package.sh" "$@" || die "cannot install $2"
}

setup_python() {
    command -v python3 >/dev/null || die "python3 not found"
    ensure_package curl curl
    ensure_package psql postgresql-client
    # Debian keeps initdb off PATH, in /usr/lib/postgresql/<version>/bin (pg_cluster.py looks there).
    if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        ensure_package initdb postgresql
    fi
    # nats-server: the cluster tests start a NATS cluster of their own (Debian keeps it in
    # /usr/sbin, where nats_cluster.py looks too).
    ensure_package nats-server nats-server
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "creating virtualenv $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed"
    fi
    local want stamp="$VENV/.interop-requirements.sha256"
    want="$(hash_of "$PY_DIR/requirements.txt")"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing $PY_DIR/requirements.txt into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PY_DIR/requirements.txt" \
            || die "pip install failed"
        printf '%s\n' "$want" > "$stamp"
    else
        log "python requirements up to date"
    fi
}

# --- Node environment --------------------------------------------------------------
NODE_FLAGS=()
setup_node() {
    command -v node >/dev/null || die "node not found"
    command -v npm >/dev/null || die "npm not found"
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    # Autobahn|JS uses the global WebSocket: built in from Node 22, behind a flag in Node 20/21
    if [ "$major" -lt 22 ]; then NODE_FLAGS=(--experimental-websocket); fi
    local want stamp="$JS_DIR/node_modules/.interop-lock.sha256"
    want="$(hash_of "$JS_DIR/package.json" "$JS_DIR/package-lock.json")"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "npm ci in $JS_DIR"
        (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
        printf '%s\n' "$want" > "$stamp"
    else
        log "node_modules up to date"
    fi
}

[ "$ONLY" = "js" ] || setup_python
setup_node   # also needed by the Python cross-client tests

# --- run -----------------------------------------------------------------------------
OUT_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sbinterop-run.XXXXXX")"
trap 'rm -rf "$OUT_DIR"' EXIT
js_rc=0
py_rc=0

if [ "$ONLY" != "python" ]; then
    log "node --test (Autobahn|JS $(node -p 'require("'"$JS_DIR"'/node_modules/autobahn/package.json").version'), node $(node --version))"
    (cd "$JS_DIR" && node "${NODE_FLAGS[@]}" --test test/*.test.js) 2>&1 | tee "$OUT_DIR/js.log"
    js_rc=${PIPESTATUS[0]}
fi

if [ "$ONLY" != "js" ]; then
    log "pytest (Autobahn|Python $("$VENV/bin/python" -c 'import autobahn; print(autobahn.__version__)'))"
    (cd "$PY_DIR" && "$VENV/bin/python" -m pytest "$@") 2>&1 | tee "$OUT_DIR/py.log"
    py_rc=${PIPESTATUS[0]}
fi

echo
echo "==================== interop summary ===================="
if [ "$ONLY" != "python" ]; then
    printf 'node --test (exit %s):\n' "$js_rc"
    grep -E '^(# |ℹ )(tests|pass|fail|cancelled|skipped|todo) ' "$OUT_DIR/js.log" | sed 's/^/  /'
fi
if [ "$ONLY" != "js" ]; then
    printf 'pytest (exit %s):\n' "$py_rc"
    grep -E '(passed|failed|errors?|skipped|deselected|no tests ran).* in [0-9.]+s' "$OUT_DIR/py.log" | tail -1 | sed 's/^/  /'
fi

if [ "$js_rc" -ne 0 ] || [ "$py_rc" -ne 0 ]; then
    echo "interop: FAILED"
    exit 1
fi
echo "interop: OK"
