'use strict';
// Authentication with Autobahn|JS's own helpers: ticket, WAMP-CRA with a salted secret, and
// cryptosign, each with the right and a wrong credential; the role then governs permissions.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { autobahn, connect, closeAll, SessionRefused, uniqueUri } = require('../lib/client');
const { startRouter } = require('../lib/router');

const TICKET = 'js-ticket-secret';
const CRA = { secret: 'js-cra-password', salt: 'js-salt', iterations: 100, keylen: 16 };
// A fixed Ed25519 seed: the test's own key, made up for it.
const SEED_HEX = '4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510';

let router;
let pubkeyHex;

function hex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

before(async () => {
  const nacl = require('tweetnacl');
  pubkeyHex = hex(nacl.sign.keyPair.fromSeed(Buffer.from(SEED_HEX, 'hex')).publicKey);
  router = await startRouter({
    customize(config) {
      const realm = config.workers[0].realms[0];
      realm.roles.push({
        name: 'frontend',
        permissions: [{ uri: 'com.example.', match: 'prefix', allow: { call: true, subscribe: true } }],
      });
      const ws = config.workers[0].transports[0].websocket.ws;
      ws.auth = {
        anonymous: { type: 'static', role: 'anonymous' },
        ticket: { type: 'static', principals: { joe: { ticket: TICKET, role: 'frontend' } } },
        wampcra: { type: 'static', users: { peter: { ...CRA, role: 'frontend' } } },
        cryptosign: { type: 'static', principals: { carol: { authorized_keys: [pubkeyHex], role: 'frontend' } } },
      };
    },
  });
});

after(async () => {
  if (router) await router.close();
});

function ticketAuth(authid, ticket) {
  return { authmethods: ['ticket'], authid, onchallenge: () => ticket };
}

function craAuth(authid, secret) {
  return {
    authmethods: ['wampcra'],
    authid,
    onchallenge: (session, method, extra) => {
      const key = extra.salt
        ? autobahn.auth_cra.derive_key(secret, extra.salt, extra.iterations, extra.keylen)
        : secret;
      return autobahn.auth_cra.sign(key, extra.challenge);
    },
  };
}

function cryptosignAuth(seedHex) {
  // Autobahn|JS's load_private_key keeps seeds in the browser's localStorage; under Node the key
  // pair comes from tweetnacl (Autobahn|JS's own dependency) and Autobahn|JS signs with it.
  const nacl = require('tweetnacl');
  const key = nacl.sign.keyPair.fromSeed(Buffer.from(seedHex, 'hex'));
  return {
    authmethods: ['cryptosign'],
    authextra: { pubkey: hex(key.publicKey) },
    onchallenge: (session, method, extra) => autobahn.auth_cryptosign.sign_challenge(key, extra),
  };
}

/** The ABORT reason a connection with `auth` is refused with (fails the test if it joins). */
async function refusedWith(auth) {
  let client;
  try {
    client = await connect(router, { auth });
  } catch (e) {
    if (!(e instanceof SessionRefused)) throw e;
    return e.reason;
  }
  await closeAll(client);
  assert.fail('the session joined');
}

// Crossbar.io denies with not_authorized; Switchboard with the spec's authentication_denied.
const DENIED = (r) => (r.kind === 'crossbar' ? 'wamp.error.not_authorized' : 'wamp.error.authentication_denied');

test('ticket: the right ticket joins as the principal, a wrong one is denied', async () => {
  const c = await connect(router, { auth: ticketAuth('joe', TICKET) });
  try {
    assert.equal(c.details.authid, 'joe');
    assert.equal(c.details.authrole, 'frontend');
    assert.equal(c.details.authmethod, 'ticket');
  } finally {
    await closeAll(c);
  }
  assert.equal(await refusedWith(ticketAuth('joe', 'wrong')), DENIED(router));
});

test('wampcra with a salted secret joins; a wrong secret is denied', async () => {
  const c = await connect(router, { auth: craAuth('peter', CRA.secret) });
  try {
    assert.equal(c.details.authid, 'peter');
    assert.equal(c.details.authmethod, 'wampcra');
  } finally {
    await closeAll(c);
  }
  assert.equal(await refusedWith(craAuth('peter', 'not-the-secret')), DENIED(router));
});

test('cryptosign joins with an authorized key; another key is refused', async () => {
  const c = await connect(router, { auth: cryptosignAuth(SEED_HEX) });
  try {
    assert.equal(c.details.authid, 'carol');
    assert.equal(c.details.authmethod, 'cryptosign');
  } finally {
    await closeAll(c);
  }
  const other = 'aa'.repeat(32);
  const reason = await refusedWith(cryptosignAuth(other));
  assert.ok(reason === 'wamp.error.no_such_principal' || reason === 'wamp.error.not_authorized', reason);
});

test('the authenticated role governs permissions', async () => {
  const callee = await connect(router);
  const caller = await connect(router, { auth: ticketAuth('joe', TICKET) });
  try {
    const proc = uniqueUri('com.example.js.add');
    await callee.session.register(proc, (args) => args[0] + args[1]);
    assert.equal(await caller.session.call(proc, [2, 3]), 5);
    await assert.rejects(caller.session.register(uniqueUri('com.example.js.not'), () => 0), (e) => {
      assert.equal(e.error, 'wamp.error.not_authorized');
      return true;
    });
  } finally {
    await closeAll(callee, caller);
  }
});
