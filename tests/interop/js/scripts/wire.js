'use strict';
// Shared by the cross-client scripts: the JSON <-> WAMP value mapping used
// to exchange payloads with the Python tests over argv/stdout.
//
//   {"$bytes": "<base64>"}  a binary value.  Sent as a Buffer over msgpack
//                           and cbor, and over json as the WAMP JSON binary
//                           convention: a string "\u0000" + base64.
//   {"$bigint": "<digits>"} an integer the decoder returned as a BigInt.

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;
}

/** JSON value from the Python side -> value to hand to Autobahn|JS. */
function decode(v, serializer) {
  if (Array.isArray(v)) return v.map((x) => decode(x, serializer));
  if (isPlainObject(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '$bytes') {
      return serializer === 'json' ? `\u0000${v.$bytes}` : Buffer.from(v.$bytes, 'base64');
    }
    const out = {};
    for (const k of keys) out[k] = decode(v[k], serializer);
    return out;
  }
  return v;
}

/** Value received by Autobahn|JS -> JSON value for the Python side. */
function encode(v) {
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('base64') };
  if (v instanceof ArrayBuffer) return { $bytes: Buffer.from(new Uint8Array(v)).toString('base64') };
  if (typeof v === 'string' && v.startsWith('\u0000')) return { $bytes: v.slice(1) };
  if (Array.isArray(v)) return v.map(encode);
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v)) out[k] = encode(v[k]);
    return out;
  }
  return v;
}

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

module.exports = { decode, encode, emit };
