'use strict';
// Cross-client helper: an Autobahn|JS subscriber.
//
// usage: node [--experimental-websocket] js_subscriber.js '<json spec>'
//   spec: {"target": {"wsUrl", "port", "unixPath"}, "transport", "serializer",
//          "realm", "topic", "count" (default 1), "timeout_s" (default 20)}
// prints {"ready": true} once SUBSCRIBED, then one {"event": {"args",
// "kwargs"}} line per event; exits 0 after `count` events, 3 on timeout,
// 2 on a connection problem ({"fatal": "..."}).

const { connect, closeAll, withTimeout } = require('../lib/client.js');
const { encode, emit } = require('./wire.js');

async function main() {
  const spec = JSON.parse(process.argv[2]);
  const { target, transport, serializer, realm = 'realm1', topic } = spec;
  const count = spec.count || 1;
  const timeoutMs = (spec.timeout_s || 20) * 1000;
  let client;
  try {
    client = await connect(target, { transport, serializer, realm });
  } catch (e) {
    emit({ fatal: `connect failed: ${e && e.message ? e.message : e}` });
    return 2;
  }
  try {
    let seen = 0;
    let done;
    const allSeen = new Promise((r) => { done = r; });
    await withTimeout(client.session.subscribe(topic, (args, kwargs) => {
      emit({ event: { args: encode(args || []), kwargs: encode(kwargs || {}) } });
      seen += 1;
      if (seen >= count) done();
    }), 'SUBSCRIBED');
    emit({ ready: true });
    try {
      await withTimeout(allSeen, `${count} event(s)`, timeoutMs);
    } catch (e) {
      emit({ fatal: e.message });
      return 3;
    }
    return 0;
  } finally {
    await closeAll(client);
  }
}

main().then((code) => process.exit(code), (e) => { emit({ fatal: String(e && e.stack ? e.stack : e) }); process.exit(2); });
