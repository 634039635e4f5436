'use strict';
// Autobahn|JS client helpers: every wait is bounded by a timeout.
//
// Autobahn|JS 26.x uses the global (native) WebSocket for its "websocket"
// transport (Node 22+, or Node 20 with --experimental-websocket), and has a
// Node-only "rawsocket" transport over TCP or a unix socket, which speaks
// JSON only.

const autobahn = require('autobahn');

// Autobahn|JS logs every connection close with console.warn; keep test
// output readable unless INTEROP_LOG is set.
if (!process.env.INTEROP_LOG) autobahn.log.warn = () => {};

const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT || 10) * 1000;

/** The transport/serializer combinations Autobahn|JS supports. */
const COMBOS = [
  { transport: 'websocket_tcp', serializer: 'json' },
  { transport: 'websocket_tcp', serializer: 'msgpack' },
  { transport: 'websocket_tcp', serializer: 'cbor' },
  { transport: 'rawsocket_tcp', serializer: 'json' },
  { transport: 'rawsocket_unix', serializer: 'json' },
];

function makeSerializer(name) {
  switch (name) {
    case 'json': return new autobahn.serializer.JSONSerializer();
    case 'msgpack': return new autobahn.serializer.MsgpackSerializer();
    case 'cbor': return new autobahn.serializer.CBORSerializer();
    default: throw new Error(`unknown serializer ${name}`);
  }
}

/** target: {wsUrl, port, unixPath} (a Router, or plain values from argv) */
function transportOptions(target, transport, serializer) {
  switch (transport) {
    case 'websocket_tcp':
      if (typeof WebSocket === 'undefined') {
        throw new Error('no global WebSocket: run node with --experimental-websocket (Node 20) or use Node >= 22');
      }
      return { type: 'websocket', url: target.wsUrl, serializers: [makeSerializer(serializer)] };
    case 'rawsocket_tcp':
      if (serializer !== 'json') throw new Error('Autobahn|JS rawsocket supports json only');
      return { type: 'rawsocket', host: '127.0.0.1', port: target.port };
    case 'rawsocket_unix':
      if (serializer !== 'json') throw new Error('Autobahn|JS rawsocket supports json only');
      return { type: 'rawsocket', path: target.unixPath };
    default:
      throw new Error(`unknown transport ${transport}`);
  }
}

class SessionRefused extends Error {
  constructor(closeReason, details) {
    super(`session closed before join: ${closeReason} ${JSON.stringify(details)}`);
    this.closeReason = closeReason;
    this.details = details;
    this.reason = details && details.reason;
  }
}

function withTimeout(promise, what, ms = TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

/**
 * Open a connection and join `realm`.  Resolves to a client object
 * {connection, session, details, closed, close()}, where `closed` resolves
 * to {reason, details} when the connection closes.  Rejects with
 * SessionRefused if the router ends the session before WELCOME.
 */
function connect(target, { transport = 'websocket_tcp', serializer = 'json', realm = 'realm1', auth = {} } = {}) {
  // `auth`: Autobahn|JS's authentication options (authmethods, authid, authextra, onchallenge).
  const connection = new autobahn.Connection({
    transports: [transportOptions(target, transport, serializer)],
    realm,
    max_retries: 0,
    retry_if_unreachable: false,
    ...auth,
  });
  let resolveClosed;
  const closed = new Promise((r) => { resolveClosed = r; });
  const client = { connection, session: null, details: null, closed, transport, serializer };

  client.close = async function close() {
    try {
      if (connection.session && connection.session.isOpen) connection.close();
      else if (connection._transport) connection._transport.close();
    } catch (e) { /* already closed */ }
    try {
      await withTimeout(closed, 'connection close');
    } catch (e) {
      try { if (connection._transport) connection._transport.close(); } catch (e2) { /* ignore */ }
    }
  };

  const opened = new Promise((resolve, reject) => {
    connection.onopen = (session, details) => {
      client.session = session;
      client.details = details;
      resolve(client);
    };
    connection.onclose = (reason, details) => {
      resolveClosed({ reason, details });
      reject(new SessionRefused(reason, details));
      return true; // never reconnect
    };
  });
  connection.open();
  return withTimeout(opened, `WELCOME (${transport}/${serializer}, realm ${realm})`).catch(async (e) => {
    if (!(e instanceof SessionRefused)) await client.close();
    throw e;
  });
}

async function closeAll(...clients) {
  await Promise.allSettled(clients.filter(Boolean).map((c) => c.close()));
}

/** A unique URI under `prefix`. */
function uniqueUri(prefix) {
  return `${prefix}.${Math.random().toString(16).slice(2, 14)}`;
}

module.exports = { autobahn, COMBOS, TIMEOUT_MS, SessionRefused, connect, closeAll, withTimeout, uniqueUri, transportOptions };
