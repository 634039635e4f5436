#!/usr/bin/env bash
# Router instructions per call under callgrind: a repeatable figure for before/after comparisons
# of hot-path changes, where wall-clock CPU on this shared machine is too noisy (the same binary
# measured 1.01x to 1.14x against itself in bench/compare.py's rpc-8x16).
#
#   bench/callgrind-rpc.sh [BIN ...]      # default: target/release/switchboard
#   SCENARIO=pubsub bench/callgrind-rpc.sh [BIN ...]   # per delivered event: 1 publisher, 10
#                                                      # subscribers, 8 publishes in flight
#
# For each binary: a node with one WebSocket transport and realm1 open to anonymous runs under
# valgrind --tool=callgrind; the load tool (target/release/switchboard-load, built with
# `cargo build --release -p switchboard-load`) warms it up for 3 s, the counters are zeroed, then
# 4 callers x 8 calls in flight run for 8 s, the counters are dumped, and the router's
# instructions of that window are divided by the calls it served. Batching depends on speed, so
# compare binaries measured in the same run of this script.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
LOAD="$REPO/target/release/switchboard-load"
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "$LOAD is missing: cargo build --release -p switchboard-load" >&2; exit 1; }
[ $# -gt 0 ] || set -- "$REPO/target/release/switchboard"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for bin in "$@"; do
  node="$work/node-$RANDOM"
  mkdir -p "$node"
  cat > "$node/config.json" <<JSON
{"version": 2, "workers": [{"type": "router",
  "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
    {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
  "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": $port, "interface": "127.0.0.1"}}]}]}
JSON
  valgrind --tool=callgrind --callgrind-out-file="$node/cg.%p" "$bin" start "$node" > "$node/router.log" 2>&1 &
  vpid=$!
  for _ in $(seq 1 150); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  if [ "${SCENARIO:-rpc}" = pubsub ]; then
    load=(pubsub --publishers 1 --subscribers 10 --in-flight 8); unit="delivered events"
  else
    load=(rpc --callers 4 --in-flight 8); unit="calls"
  fi
  "$LOAD" "${load[@]}" --url "ws://127.0.0.1:$port/ws" -q --duration 3 --warmup 1 > /dev/null
  callgrind_control -z "$vpid" > /dev/null 2>&1
  result=$("$LOAD" "${load[@]}" --url "ws://127.0.0.1:$port/ws" -q --duration 8 --warmup 0 | tail -1)
  callgrind_control -d "$vpid" > /dev/null 2>&1
  sleep 1
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  ops=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["ops"])' "$result")
  total=$(callgrind_annotate "$(ls "$node"/cg.*.1 | head -1)" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  python3 -c 'import sys; b, ops, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]); u = sys.argv[4]; print(f"{b}: {total:,} instructions for {ops:,} {u} = {total / ops:,.0f} per op")' "$bin" "$ops" "$total" "$unit"
done
