#!/usr/bin/env bash
# Runs the load tool for a few seconds against the built router binary, as a correctness check
# only (nothing lost, duplicated or reordered; every result echoes its call). Not a benchmark:
# debug build, shared CI machine. Usage: scripts/load-check.sh [target/debug]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="${1:-target/debug}"
node="$(mktemp -d)"
trap 'kill "$router" 2>/dev/null || true; rm -rf "$node"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$node/config.json" <<JSON
{"version": 2, "workers": [{"type": "router",
  "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
    {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
  "transports": [{"type": "universal", "endpoint": {"type": "tcp", "port": $port, "interface": "127.0.0.1"},
    "rawsocket": {}, "websocket": {"ws": {"type": "websocket"}}}]}]}
JSON
"$bin/switchboard" start "$node" --loglevel warn >/dev/null &
router=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
run() { "$bin/switchboard-load" "$@" --router-pid "$router" --duration 2 --warmup 0.5 -q; }
run rpc --url "ws://127.0.0.1:$port/ws" --callers 4 --in-flight 8
run rpc --url "rs://127.0.0.1:$port" --serializer msgpack --callers 4 --in-flight 8
run pubsub --url "ws://127.0.0.1:$port/ws" --serializer cbor --subscribers 20
run pubsub --url "rs://127.0.0.1:$port" --subscribers 20
run connect --url "ws://127.0.0.1:$port/ws" --concurrency 10
echo "load check: every run complete and in order"
