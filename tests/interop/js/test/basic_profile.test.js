'use strict';
// WAMP Basic Profile through the router with Autobahn|JS on both ends, for
// every transport/serializer combination Autobahn|JS supports under Node.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { startRouter } = require('../lib/router.js');
const { autobahn, COMBOS, SessionRefused, connect, closeAll, withTimeout, uniqueUri } = require('../lib/client.js');

const TEST_TIMEOUT = 30000;

// Values every serializer must carry through the router unchanged.
// (2**53 itself would come back from the cbor decoder as a BigInt, so the
// largest exactly representable JS integer is used.)
function payload(serializer) {
  const args = [
    1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 40, -42, 1.5,
    'héllo wörld ✓ 🚀', true, false, null, '', [], [1, [2, 3], { a: 'b' }], { nested: { k: [1, 2, 3] } },
  ];
  const kwargs = { big: Number.MAX_SAFE_INTEGER, text: 'x'.repeat(100), list: ['a', 1, null], empty: {}, flag: true };
  if (serializer !== 'json') {
    // Autobahn|JS has no JSON binary convention; msgpack and cbor carry Buffers
    args.push(Buffer.from([0, 1, 2, 0xfe, 0xff]));
    kwargs.blob = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  }
  return { args, kwargs };
}

function eventOnce() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}

describe('Autobahn|JS client against the router', () => {
  let router;
  before(async () => { router = await startRouter(); });
  after(async () => { if (router) await router.close(); });

  for (const { transport, serializer } of COMBOS) {
    const over = `over ${transport} ${serializer}`;

    describe(over, () => {
      it(`js caller reaches js callee with args and kwargs ${over}`, { timeout: TEST_TIMEOUT }, async () => {
        let callee; let caller;
        try {
          callee = await connect(router, { transport, serializer });
          caller = await connect(router, { transport, serializer });
          const proc = uniqueUri('com.example.echo');
          const { args, kwargs } = payload(serializer);
          const seen = [];
          const reg = await withTimeout(callee.session.register(proc, (a, kw) => {
            seen.push([a, kw]);
            return new autobahn.Result(a, kw);
          }), 'REGISTERED');
          assert.ok(reg.id);
          const res = await withTimeout(caller.session.call(proc, args, kwargs), 'RESULT');
          assert.equal(seen.length, 1);
          assert.deepStrictEqual(seen[0][0], args, 'INVOCATION args');
          assert.deepStrictEqual(seen[0][1], kwargs, 'INVOCATION kwargs');
          assert.ok(res instanceof autobahn.Result, `expected Result, got ${JSON.stringify(res)}`);
          assert.deepStrictEqual(res.args, args, 'RESULT args');
          assert.deepStrictEqual(res.kwargs, kwargs, 'RESULT kwargs');

          // a single positional result arrives as a plain value
          await withTimeout(callee.session.register(`${proc}.add`, (a) => a[0] + a[1]), 'REGISTERED');
          assert.equal(await withTimeout(caller.session.call(`${proc}.add`, [2 ** 40, 1]), 'RESULT'), 2 ** 40 + 1);
        } finally {
          await closeAll(caller, callee);
        }
      });

      it(`callee error reaches js caller with the same error uri ${over}`, { timeout: TEST_TIMEOUT }, async () => {
        let callee; let caller;
        try {
          callee = await connect(router, { transport, serializer });
          caller = await connect(router, { transport, serializer });
          const proc = uniqueUri('com.example.fails');
          const errorUri = 'com.example.error.invalid_input';
          await withTimeout(callee.session.register(proc, (a) => {
            throw new autobahn.Error(errorUri, ['bad input', a[0]], { detail: { x: a[0] } });
          }), 'REGISTERED');
          await assert.rejects(withTimeout(caller.session.call(proc, [23]), 'ERROR'), (err) => {
            assert.equal(err.error, errorUri);
            assert.deepStrictEqual(err.args, ['bad input', 23]);
            assert.deepStrictEqual(err.kwargs, { detail: { x: 23 } });
            return true;
          });
        } finally {
          await closeAll(caller, callee);
        }
      });

      it(`acknowledged publish delivers event to js subscriber with args and kwargs ${over}`, { timeout: TEST_TIMEOUT }, async () => {
        let sub; let pub;
        try {
          sub = await connect(router, { transport, serializer });
          pub = await connect(router, { transport, serializer });
          const topic = uniqueUri('com.example.topic');
          const { args, kwargs } = payload(serializer);
          const got = eventOnce();
          const ownEvents = [];
          const subscription = await withTimeout(sub.session.subscribe(topic, (a, kw) => got.resolve([a, kw])), 'SUBSCRIBED');
          assert.ok(subscription.id);
          // the publisher subscribes too: by default it must not get its own event
          await withTimeout(pub.session.subscribe(topic, (a) => ownEvents.push(a)), 'SUBSCRIBED');
          const publication = await withTimeout(pub.session.publish(topic, args, kwargs, { acknowledge: true }), 'PUBLISHED');
          assert.ok(publication && publication.id, `no PUBLISHED id: ${JSON.stringify(publication)}`);
          const [evArgs, evKwargs] = await withTimeout(got.promise, 'EVENT');
          assert.deepStrictEqual(evArgs, args, 'EVENT args');
          assert.deepStrictEqual(evKwargs, kwargs, 'EVENT kwargs');
          await new Promise((r) => setTimeout(r, 200));
          assert.deepStrictEqual(ownEvents, [], 'publisher received its own event');
        } finally {
          await closeAll(pub, sub);
        }
      });

      it(`publisher receives its own event when exclude_me is false ${over}`, { timeout: TEST_TIMEOUT }, async () => {
        let c;
        try {
          c = await connect(router, { transport, serializer });
          const topic = uniqueUri('com.example.self');
          const got = eventOnce();
          await withTimeout(c.session.subscribe(topic, (a, kw) => got.resolve([a, kw])), 'SUBSCRIBED');
          await withTimeout(c.session.publish(topic, [1, 'two'], { k: 'v' }, { acknowledge: true, exclude_me: false }), 'PUBLISHED');
          assert.deepStrictEqual(await withTimeout(got.promise, 'own EVENT'), [[1, 'two'], { k: 'v' }]);
        } finally {
          await closeAll(c);
        }
      });

      it(`calling unregistered procedure fails with no_such_procedure ${over}`, { timeout: TEST_TIMEOUT }, async () => {
        let caller;
        try {
          caller = await connect(router, { transport, serializer });
          await assert.rejects(
            withTimeout(caller.session.call(uniqueUri('com.example.nobody_home'), [1]), 'ERROR'),
            (err) => { assert.equal(err.error, 'wamp.error.no_such_procedure'); return true; },
          );
          assert.ok(caller.session.isOpen);
        } finally {
          await closeAll(caller);
        }
      });

      it(`joining unknown realm is refused with no_such_realm ${over}`, { timeout: TEST_TIMEOUT }, async () => {
        await assert.rejects(
          connect(router, { transport, serializer, realm: 'com.example.no_such_realm' }),
          (err) => {
            assert.ok(err instanceof SessionRefused, `expected SessionRefused, got ${err}`);
            assert.equal(err.reason, 'wamp.error.no_such_realm');
            return true;
          },
        );
      });
    });
  }

  describe('mixed transports and serializers', () => {
    for (const callerCombo of COMBOS) {
      const calleeCombo = { transport: 'rawsocket_unix', serializer: 'json' };
      if (callerCombo.transport === calleeCombo.transport) continue;
      const name = `${callerCombo.transport} ${callerCombo.serializer} caller reaches rawsocket_unix json callee`;
      it(name, { timeout: TEST_TIMEOUT }, async () => {
        let callee; let caller;
        try {
          callee = await connect(router, calleeCombo);
          caller = await connect(router, callerCombo);
          const proc = uniqueUri('com.example.mixed');
          const { args, kwargs } = payload('json');
          await withTimeout(callee.session.register(proc, (a, kw) => new autobahn.Result(a, kw)), 'REGISTERED');
          const res = await withTimeout(caller.session.call(proc, args, kwargs), 'RESULT');
          assert.deepStrictEqual(res.args, args);
          assert.deepStrictEqual(res.kwargs, kwargs);
        } finally {
          await closeAll(caller, callee);
        }
      });
    }

    it('msgpack publisher reaches cbor subscriber with binary intact', { timeout: TEST_TIMEOUT }, async () => {
      let sub; let pub;
      try {
        sub = await connect(router, { transport: 'websocket_tcp', serializer: 'cbor' });
        pub = await connect(router, { transport: 'websocket_tcp', serializer: 'msgpack' });
        const topic = uniqueUri('com.example.mixed_topic');
        const { args, kwargs } = payload('msgpack');
        const got = eventOnce();
        await withTimeout(sub.session.subscribe(topic, (a, kw) => got.resolve([a, kw])), 'SUBSCRIBED');
        await withTimeout(pub.session.publish(topic, args, kwargs, { acknowledge: true }), 'PUBLISHED');
        assert.deepStrictEqual(await withTimeout(got.promise, 'EVENT'), [args, kwargs]);
      } finally {
        await closeAll(pub, sub);
      }
    });
  });
});
