'use strict';
// A Node backend hosted as a guest worker, as a Crossbar user configures one ("type": "guest",
// executable, arguments, options.env): the router starts it, an Autobahn|JS client calls the
// procedure it registers and gets the events it publishes, its output is in the router's log, and
// SIGTERM stops the router and the backend with it.

const fs = require('node:fs');
const path = require('node:path');
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');

const { startRouter } = require('../lib/router.js');
const { connect, closeAll, withTimeout } = require('../lib/client.js');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return false;
  }
}

describe('guest worker', () => {
  it('a node backend started by the router serves calls and events, and stops with the router', { timeout: 60000 }, async () => {
    const pidFile = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'sbguest-')), 'backend.pid');
    let port;
    const router = await startRouter({
      customize: (config) => {
        port = config.workers[0].transports[0].endpoint.port;
        config.workers.push({
          type: 'guest',
          id: 'backend',
          executable: process.execPath,
          arguments: [path.join(__dirname, '..', 'guest', 'backend.js'), String(port), 'realm1'],
          options: {
            workdir: path.join(__dirname, '..', 'guest'),
            env: {
              vars: {
                NODE_PATH: path.join(__dirname, '..', 'node_modules'),
                GUEST_PID_FILE: pidFile,
              },
            },
          },
        });
      },
    });
    let client;
    try {
      client = await connect(router, { transport: 'rawsocket_tcp', serializer: 'json' });
      // The backend joins after the router listens: call until its procedure is there.
      let sum;
      const deadline = Date.now() + 20000;
      for (;;) {
        try {
          sum = await withTimeout(client.session.call('com.example.add2', [2, 3]), 'add2');
          break;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`add2 never answered: ${e.error || e.message}\n${router.logTail()}`);
          await sleep(100);
        }
      }
      assert.equal(sum, 5);

      const counters = [];
      const gotTwo = new Promise((resolve) => {
        client.session.subscribe('com.example.oncounter', (args) => {
          counters.push(args[0]);
          if (counters.length === 2) resolve();
        });
      });
      await withTimeout(gotTwo, 'two counter events');
      assert.equal(counters[1], counters[0] + 1);

      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      assert.ok(alive(pid), 'the backend runs');
      if (router.kind === 'switchboard') {
        const log = fs.readFileSync(router.logPath, 'utf8');
        assert.ok(log.split('\n').some((l) => l.includes('worker=backend') && l.includes('backend ready')), log);
      }
      const code = await router.terminate();
      if (router.kind === 'switchboard') assert.equal(code, 0, router.logTail());
      const gone = Date.now() + 5000;
      while (alive(pid) && Date.now() < gone) await sleep(50);
      assert.ok(!alive(pid), `the backend (pid ${pid}) outlived the router`);
    } finally {
      if (client) await closeAll(client);
      await router.close();
    }
  });
});
