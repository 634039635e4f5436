#!/bin/bash
# Cached dynamic authorization against static permissions: the same release router, alternating
# runs, router CPU per operation from /proc. The dynamic config gives the WebSocket endpoint's
# anonymous role an authorizer (authorizer.py, over RawSocket with a static role) that allows
# everything with cache: true. Run from the repo root after a release build:
#   bench/dynamic-authz/ab.sh
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"
L="$BIN/switchboard-load"
for i in 1 2 3; do
  for v in static dynamic; do
    rm -rf ${TMPDIR:-/tmp}/sb-dynauthz-run && cp -r "$HERE/$v" ${TMPDIR:-/tmp}/sb-dynauthz-run
    "$BIN/switchboard" start ${TMPDIR:-/tmp}/sb-dynauthz-run >/dev/null 2>&1 &
    pid=$!
    sleep 0.7
    if [ $v = dynamic ]; then "$REPO/.venv/bin/python" "$HERE/authorizer.py" > ${TMPDIR:-/tmp}/sb-dynauthz-$i.log 2>&1 & apid=$!; sleep 2.5; fi
    for sc in "rpc --callers 8 --in-flight 16 --payload 64" "pubsub --publishers 1 --subscribers 100 --in-flight 16 --payload 64"; do
      out=$($L $sc --url ws://127.0.0.1:18080/ws --duration 4 --warmup 1 --router-pid $pid --quiet)
      python3 -c "
import json,sys
d=json.loads(sys.argv[1]); r=d['router']
print('$v', d['scenario'], 'rate=%.0f'%d['rate'], 'cpu_us_per_op=%s'%r['cpu_us_per_op'], 'errors=%s'%d['errors'])
" "$out"
    done
    [ $v = dynamic ] && { echo "  authorizer calls: $(grep -c authorize ${TMPDIR:-/tmp}/sb-dynauthz-$i.log)"; kill $apid; }
    kill $pid; wait $pid 2>/dev/null
  done
done
