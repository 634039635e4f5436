#!/usr/bin/env bash
# The router's memory after bursts of connections: starts a router, opens and closes SESSIONS
# WebSocket sessions FLOODS times with the load tool's `idle` scenario, and prints the router's RSS
# at start, right after each burst, and WAIT seconds later. Extra arguments are environment
# assignments for the router (allocator settings, e.g. MALLOC_ARENA_MAX=2).
#
#   bench/flood-rss.sh [target/release/switchboard] [VAR=value ...]
#   SESSIONS=3000 FLOODS=3 WAIT=15 bench/flood-rss.sh
#
# Needs the release binaries (cargo build --release -p switchboard -p switchboard-load) and an
# open-files limit above SESSIONS (ulimit -n).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="${1:-target/release/switchboard}"
shift || true
sessions="${SESSIONS:-3000}" floods="${FLOODS:-3}" wait="${WAIT:-15}" port="${PORT:-18666}"
node=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$node"' EXIT
cat > "$node/config.json" <<JSON
{"version": 2, "workers": [{"type": "router",
  "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
    {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
  "transports": [{"type": "universal", "endpoint": {"type": "tcp", "port": $port, "interface": "127.0.0.1", "backlog": 4096},
    "rawsocket": {}, "websocket": {"ws": {"type": "websocket"}}}]}]}
JSON
env "$@" "$bin" start "$node" --loglevel error >/dev/null &
pid=$!
sleep 1
rss() { awk '/VmRSS/ {print $2 " KiB"}' "/proc/$pid/status"; }
echo "start: $(rss)"
for i in $(seq "$floods"); do
    target/release/switchboard-load idle --url "ws://127.0.0.1:$port/ws" --sessions "$sessions" \
        --concurrency 100 --duration 1 --quiet >/dev/null
    echo "after burst $i of $sessions sessions: $(rss)"
    sleep "$wait"
    echo "  $wait s later: $(rss)"
done
