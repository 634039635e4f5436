'use strict';
// Autobahn|JS (the autobahn-browser bundle) in headless Chromium against the Switchboard router.
//
//   node [--experimental-websocket] run.js       (normally via ./run.sh)
//
// 1. starts the router with a temp node dir: realm1 (anonymous, everything allowed) and one
//    universal transport on 127.0.0.1:<free port> serving web/ at "/", WebSocket at "/ws" and
//    WAMP over HTTP long-poll at "/lp";
//    web/ holds web/index.html from here and autobahn.min.js from node_modules/autobahn-browser;
// 2. opens a Node session (Autobahn|JS 26.3, JSON) that registers outside.add2 and subscribes
//    to outside.topic;
// 3. starts Chromium with --remote-debugging-port, loads http://127.0.0.1:<port>/ and polls the
//    page's <pre id="result"> over the DevTools protocol until the page reports done;
// 4. prints one line per check and a closing "N passed, N failed"; exit status 1 on any failure.
//
// Environment: SWITCHBOARD_BIN (default <repo>/target/debug/switchboard), CHROMIUM_BIN (default
// /usr/bin/chromium), INTEROP_BROWSER_TIMEOUT (seconds for the page, default 60),
// INTEROP_KEEP_NODE_DIR=1 (keep the temp node dir with config.json and router.log),
// INTEROP_LOG=1 (Autobahn|JS warnings of the Node session).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  HERE, ROUTER_BIN, PAGE_TIMEOUT_MS, STEP_TIMEOUT_MS, WATCHDOG_MS, sleep, withTimeout, until,
  freePort, canConnect, spawnGroup, killGroup, exited, startChromium, collectConsole, stopChromium,
  armWatchdog,
} = require('./harness');

// --- the router ------------------------------------------------------------------------------

function nodeConfig(port) {
  return {
    version: 2,
    workers: [{
      type: 'router',
      realms: [{
        name: 'realm1',
        roles: [{
          name: 'anonymous',
          permissions: [{
            uri: '', match: 'prefix',
            allow: { call: true, register: true, publish: true, subscribe: true },
          }],
        }],
      }],
      transports: [{
        type: 'universal',
        endpoint: { type: 'tcp', port, interface: '127.0.0.1' },
        rawsocket: {},
        websocket: {
          ws: { type: 'websocket' },
          // Cookie authentication (index.html's runCookie): a ticket login, then the cookie alone.
          wsauth: {
            type: 'websocket',
            cookie: {},
            auth: {
              ticket: { type: 'static', principals: { joe: { ticket: 'browser-ticket', role: 'anonymous' } } },
              cookie: {},
            },
          },
        },
        web: { paths: { '/': { type: 'static', directory: 'web' }, lp: { type: 'longpoll' } } },
      }],
    }],
  };
}

async function startRouter(nodeDir) {
  if (!fs.existsSync(ROUTER_BIN)) throw new Error(`router binary ${ROUTER_BIN} missing: cargo build --bins, or set SWITCHBOARD_BIN`);
  const port = await freePort();
  const web = path.join(nodeDir, 'web');
  fs.mkdirSync(web);
  fs.copyFileSync(path.join(HERE, 'web', 'index.html'), path.join(web, 'index.html'));
  fs.copyFileSync(require.resolve('autobahn-browser/autobahn.min.js'), path.join(web, 'autobahn.min.js'));
  fs.writeFileSync(path.join(nodeDir, 'config.json'), JSON.stringify(nodeConfig(port), null, 2));
  const logPath = path.join(nodeDir, 'router.log');
  const logFd = fs.openSync(logPath, 'w');
  const proc = spawnGroup([ROUTER_BIN, 'start', nodeDir], { cwd: nodeDir, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  // eslint-disable-next-line no-control-regex
  const tail = () => fs.readFileSync(logPath, 'utf8').replace(/\x1b\[[0-9;]*m/g, '').split('\n').slice(-30).join('\n');
  try {
    await until('router listening', STEP_TIMEOUT_MS, async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`router exited (${proc.exitCode ?? proc.signalCode})`);
      return canConnect(port);
    });
  } catch (err) {
    throw new Error(`${err.message}; router.log:\n${tail()}`);
  }
  return { proc, port, tail };
}

// --- the Node session outside the browser ------------------------------------------------------

function startOutsideSession(port) {
  const autobahn = require('autobahn');
  if (!process.env.INTEROP_LOG) autobahn.log.warn = () => {}; // "connection closed", like ../js/lib/client.js
  const events = [];
  const connection = new autobahn.Connection({
    url: `ws://127.0.0.1:${port}/ws`, realm: 'realm1', max_retries: 0,
    serializers: [new autobahn.serializer.JSONSerializer()],
  });
  const ready = new Promise((resolve, reject) => {
    connection.onopen = async (session) => {
      try {
        await session.register('outside.add2', (args) => args[0] + args[1]);
        await session.subscribe('outside.topic', (args) => events.push(args[0]));
        resolve();
      } catch (err) { reject(err); }
    };
    connection.onclose = (reason, details) => reject(new Error(`Node session closed: ${reason} ${JSON.stringify(details)}`));
  });
  connection.open();
  return withTimeout(ready, STEP_TIMEOUT_MS, 'Node session').then(() => ({ connection, events }));
}

async function runPage(cdp, url, consoleLines) {
  await collectConsole(cdp, consoleLines);
  const nav = await cdp.send('Page.navigate', { url });
  if (nav.errorText) throw new Error(`navigating to ${url}: ${nav.errorText}`);
  const text = await until('page result', PAGE_TIMEOUT_MS, async () => {
    const { result } = await cdp.send('Runtime.evaluate', {
      expression: "(document.getElementById('result') || {}).textContent || ''",
      returnByValue: true,
    });
    return result.value;
  });
  return JSON.parse(text);
}

// --- main --------------------------------------------------------------------------------------------

async function main() {
  const checks = [];
  const fail = (name, err) => checks.push({ name, ok: false, error: err.message || String(err) });
  const nodeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbinterop-browser-'));
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbinterop-chromium-'));
  let router;
  let outside;
  let chromium;
  const consoleLines = [];
  const t0 = Date.now();
  const timings = [];
  let tPhase = t0;
  const phase = (name) => { const now = Date.now(); timings.push(`${name} ${((now - tPhase) / 1000).toFixed(1)}`); tPhase = now; };
  try {
    router = await startRouter(nodeDir);
    outside = await startOutsideSession(router.port);
    phase('router+node');
    chromium = await startChromium(userDataDir);
    phase('chromium');
    console.log(`router ${ROUTER_BIN} on 127.0.0.1:${router.port}; ${chromium.version}; autobahn-browser ${require('autobahn-browser/package.json').version}`);
    const result = await runPage(chromium.cdp, `http://127.0.0.1:${router.port}/`, consoleLines);
    phase('page');
    checks.push(...result.checks);
    // the Node subscriber must have received one event per serializer whose publish passed
    await sleep(200);
    for (const ser of result.serializers) {
      const published = result.checks.find((c) => c.name === `${ser}: publish to outside.topic (Node subscriber)`);
      if (!published || !published.ok) continue;
      const ok = outside.events.includes(`browser ${ser}`);
      checks.push({ name: `${ser}: Node subscriber received the browser's event`, ok, error: ok ? undefined : `events: ${JSON.stringify(outside.events)}` });
    }
  } catch (err) {
    fail('harness (router, Node session, Chromium or page)', err);
  } finally {
    if (chromium) await stopChromium(chromium);
    if (outside) {
      const closed = new Promise((resolve) => { outside.connection.onclose = () => resolve(); });
      outside.connection.close();
      await Promise.race([closed, sleep(2000)]);
    }
    if (router) {
      killGroup(router.proc, 'SIGTERM');
      if (!await exited(router.proc, 10000)) {
        killGroup(router.proc);
        fail('router stops on SIGTERM', new Error('still running after 10 s, killed'));
      } else if (router.proc.exitCode !== 0) {
        fail('router stops on SIGTERM', new Error(`exit ${router.proc.exitCode ?? router.proc.signalCode}`));
      }
    }
    phase('shutdown');
  }

  let failed = 0;
  for (const c of checks) {
    if (c.ok) console.log(`ok   ${c.name}`);
    else { failed++; console.log(`FAIL ${c.name}: ${c.error}`); }
  }
  if (failed) {
    if (consoleLines.length) console.log(`browser console:\n  ${consoleLines.join('\n  ')}`);
    if (router) console.log(`router.log (last lines):\n${router.tail()}`);
  }
  if (process.env.INTEROP_KEEP_NODE_DIR) console.log(`node dir kept: ${nodeDir}`);
  else fs.rmSync(nodeDir, { recursive: true, force: true });
  fs.rmSync(userDataDir, { recursive: true, force: true });
  console.log(`browser interop took ${((Date.now() - t0) / 1000).toFixed(1)} s (${timings.join(', ')})`);
  console.log(`${checks.length - failed} passed, ${failed} failed`);
  return failed === 0 && checks.length > 0 ? 0 : 1;
}

if (typeof WebSocket === 'undefined') {
  console.error('run.js needs the global WebSocket: Node 22+, or node --experimental-websocket');
  console.log('0 passed, 1 failed');
  process.exit(2);
}
const watchdog = armWatchdog(WATCHDOG_MS);
main().then((code) => {
  clearTimeout(watchdog);
  process.exitCode = code;
  // an Autobahn|JS connection or DevTools socket left open must not keep node alive
  setTimeout(() => process.exit(code), 500).unref();
});
