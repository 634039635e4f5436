'use strict';
// SIGTERM: the router says GOODBYE to Autobahn|JS sessions and exits 0.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');

const { startRouter } = require('../lib/router.js');
const { COMBOS, connect, closeAll, withTimeout } = require('../lib/client.js');

describe('router shutdown', () => {
  it('sigterm makes router say goodbye to js sessions on every transport and exit zero', { timeout: 60000 }, async () => {
    const router = await startRouter();
    const clients = [];
    try {
      for (const combo of COMBOS) clients.push(await connect(router, combo));
      router.proc.kill('SIGTERM');
      const results = await Promise.all(clients.map(async (c) => {
        try {
          const { reason, details } = await withTimeout(c.closed, `close of ${c.transport}/${c.serializer}`);
          return { name: `${c.transport}/${c.serializer}`, reason, goodbye: details.reason };
        } catch (e) {
          return { name: `${c.transport}/${c.serializer}`, error: e.message };
        }
      }));
      const code = await withTimeout(router.exited, 'router exit').catch((e) => e.message);
      const problems = [];
      for (const r of results) {
        if (r.error) {
          // Autobahn|JS's rawsocket transport opens its socket with
          // allowHalfOpen and never notices a peer that just closes without
          // GOODBYE (which is what Crossbar.io does on SIGTERM).
          if (!(router.kind === 'crossbar' && r.name.startsWith('rawsocket'))) problems.push(`${r.name}: ${r.error}`);
        }
        // details.reason is the GOODBYE reason; null means the transport just dropped
        else if (router.kind === 'switchboard' && !(typeof r.goodbye === 'string' && r.goodbye.startsWith('wamp.'))) {
          problems.push(`${r.name}: closed (${r.reason}) without GOODBYE`);
        }
      }
      if (router.kind === 'switchboard' && code !== 0) problems.push(`router exit status ${code}, expected 0`);
      assert.deepStrictEqual(problems, [], JSON.stringify(results));
    } finally {
      await closeAll(...clients);
      await router.close();
    }
  });
});
