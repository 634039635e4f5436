'use strict';
// Cross-client helper: an Autobahn|JS caller.
//
// usage: node [--experimental-websocket] js_caller.js '<json spec>'
//   spec: {"target": {"wsUrl", "port", "unixPath"}, "transport", "serializer",
//          "realm", "procedure", "args", "kwargs"}
// prints one JSON line: {"result": {"args", "kwargs"}} or
// {"error": {"error", "args", "kwargs"}}, then exits 0; on a connection
// problem prints {"fatal": "..."} and exits 2.

const { autobahn, connect, closeAll, withTimeout } = require('../lib/client.js');
const { decode, encode, emit } = require('./wire.js');

async function main() {
  const spec = JSON.parse(process.argv[2]);
  const { target, transport, serializer, realm = 'realm1', procedure } = spec;
  let client;
  try {
    client = await connect(target, { transport, serializer, realm });
  } catch (e) {
    emit({ fatal: `connect failed: ${e && e.message ? e.message : e}` });
    return 2;
  }
  try {
    const args = decode(spec.args || [], serializer);
    const kwargs = decode(spec.kwargs || {}, serializer);
    try {
      const res = await withTimeout(client.session.call(procedure, args, kwargs), 'RESULT');
      if (res instanceof autobahn.Result) emit({ result: { args: encode(res.args || []), kwargs: encode(res.kwargs || {}) } });
      else emit({ result: { args: encode([res]), kwargs: {} } });
    } catch (err) {
      if (err instanceof autobahn.Error) {
        emit({ error: { error: err.error, args: encode(err.args || []), kwargs: encode(err.kwargs || {}) } });
      } else {
        emit({ fatal: `call failed: ${err && err.message ? err.message : err}` });
        return 2;
      }
    }
    return 0;
  } finally {
    await closeAll(client);
  }
}

main().then((code) => process.exit(code), (e) => { emit({ fatal: String(e && e.stack ? e.stack : e) }); process.exit(2); });
