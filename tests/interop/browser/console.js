'use strict';
// The live web console (the `console` web path, crates/switchboard-router/src/ops/console/) in
// headless Chromium against the router binary, as an operator uses it.
//
//   node [--experimental-websocket] console.js       (normally via ./run.sh)
//
// 1. starts the router with a temp node dir: realm1 (role anonymous: everything on com.example.),
//    the management realm mgmt (roles mgmt-admin: call and subscribe on switchboard.; mgmt-read:
//    the read procedures, subscribe on switchboard.), and one web transport on 127.0.0.1:<free
//    port> with a WebSocket at /ws (anonymous, and tickets for admin and viewer) and the console
//    at /console;
// 2. loads /console/ in Chromium and logs in as admin with a ticket;
// 3. checks that a Node session (Autobahn|JS) joining realm1 shows up in the sessions table live,
//    that calls from Node move the calls chart, that the Kill button of its row ends it with
//    wamp.close.killed, that Reload applies a realm added to config.json on disk and reports it,
//    and that the playground's second session calls and subscribes;
// 4. saves full-page screenshots of the overview, sessions, config and playground pages to
//    $CONSOLE_SCREENSHOTS (default <repo>/target/console-screenshots/);
// 5. loads the page afresh and logs in as viewer (role mgmt-read): no action button anywhere;
// 6. prints "PASS name" or "FAIL name: why" per check (the page's console errors and the router's
//    log with any failure) and a closing "N passed, M failed"; exit status 1 on any failure.
//
// The page hooks used are the ones console.js documents: the login form's ids, a[data-page],
// #status-line, #sessions-table tr[data-session] button.kill, canvas#chart-* data-points and
// data-last, #reload-button, #reload-report, button.action, and the playground's #pg-* ids.
//
// Environment: SWITCHBOARD_BIN (default <repo>/target/debug/switchboard), CHROMIUM_BIN (default
// /usr/bin/chromium), CONSOLE_SCREENSHOTS, INTEROP_KEEP_NODE_DIR=1 (keep the temp node dir with
// config.json and router.log), INTEROP_LOG=1 (Autobahn|JS warnings of the Node sessions).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  REPO, ROUTER_BIN, STEP_TIMEOUT_MS, WATCHDOG_MS, sleep, withTimeout, until, freePort, canConnect,
  spawnGroup, killGroup, exited, startChromium, collectConsole, stopChromium, armWatchdog,
} = require('./harness');

const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS || path.join(REPO, 'target', 'console-screenshots');
const LIVE_MS = 5000; // a live update (meta event, stats tick) must show within this
const VIEWPORT = { width: 1440, height: 900 };

// --- the router ------------------------------------------------------------------------------

const READ_PROCEDURES = [
  'switchboard.node.get_status', 'switchboard.realm.list', 'switchboard.session.list',
  'switchboard.metrics.get', 'switchboard.config.get', 'switchboard.access.get',
  'switchboard.subscription.list', 'switchboard.registration.list', 'switchboard.worker.list',
  'switchboard.worker.log', 'switchboard.transport.list', 'switchboard.link.list',
];

const everything = (uri) => ({
  uri, match: 'prefix', allow: { call: true, register: true, publish: true, subscribe: true },
});

function nodeConfig(port, extraRealms = []) {
  return {
    version: 2,
    controller: { management: { realm: 'mgmt' } },
    workers: [{
      type: 'router',
      realms: [
        { name: 'realm1', roles: [{ name: 'anonymous', permissions: [everything('com.example.')] }] },
        {
          name: 'mgmt',
          roles: [
            {
              name: 'mgmt-admin',
              permissions: [{ uri: 'switchboard.', match: 'prefix', allow: { call: true, subscribe: true } }],
            },
            {
              name: 'mgmt-read',
              permissions: [
                ...READ_PROCEDURES.map((uri) => ({ uri, allow: { call: true } })),
                { uri: 'switchboard.', match: 'prefix', allow: { subscribe: true } },
              ],
            },
          ],
        },
        ...extraRealms,
      ],
      transports: [{
        type: 'web',
        endpoint: { type: 'tcp', port, interface: '127.0.0.1' },
        paths: {
          ws: {
            type: 'websocket',
            auth: {
              anonymous: { type: 'static', role: 'anonymous' },
              ticket: {
                type: 'static',
                principals: {
                  admin: { ticket: 'admin-secret', role: 'mgmt-admin' },
                  viewer: { ticket: 'viewer-secret', role: 'mgmt-read' },
                },
              },
            },
          },
          console: { type: 'console', options: { realm: 'mgmt' } },
        },
      }],
    }],
  };
}

async function startRouter(nodeDir) {
  if (!fs.existsSync(ROUTER_BIN)) throw new Error(`router binary ${ROUTER_BIN} missing: cargo build --bins, or set SWITCHBOARD_BIN`);
  const port = await freePort();
  const configPath = path.join(nodeDir, 'config.json');
  fs.writeFileSync(configPath, JSON.stringify(nodeConfig(port), null, 2));
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
  return { proc, port, tail, configPath };
}

// --- Node sessions outside the browser ------------------------------------------------------------

/** A session on realm1; `closed` resolves {reason, details} when the router ends it. */
function startNodeSession(port, onopen = async () => {}) {
  const autobahn = require('autobahn');
  if (!process.env.INTEROP_LOG) autobahn.log.warn = () => {};
  const connection = new autobahn.Connection({
    url: `ws://127.0.0.1:${port}/ws`, realm: 'realm1', max_retries: 0,
    serializers: [new autobahn.serializer.JSONSerializer()],
  });
  let closedResolve;
  const closed = new Promise((resolve) => { closedResolve = resolve; });
  const ready = new Promise((resolve, reject) => {
    connection.onopen = async (session) => {
      try {
        await onopen(session);
        resolve(session);
      } catch (err) { reject(err); }
    };
    connection.onclose = (reason, details) => {
      closedResolve({ reason, details });
      reject(new Error(`Node session closed: ${reason} ${JSON.stringify(details)}`));
      return true; // no reconnect
    };
  });
  connection.open();
  return withTimeout(ready, STEP_TIMEOUT_MS, 'Node session').then((session) => ({ connection, session, closed }));
}

async function closeNodeSession(s) {
  if (!s || !s.connection.isOpen) return;
  s.connection.close();
  await Promise.race([s.closed, sleep(2000)]);
}

// --- the page -----------------------------------------------------------------------------------

/** Evaluates `expression` in the page; its value (JSON-able), or an exception as an Error. */
async function evaluate(cdp, expression) {
  const { result, exceptionDetails } = await cdp.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
  if (exceptionDetails) throw new Error(`in the page: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
  return result.value;
}

/** Waits until `expression` is truthy in the page (a page still loading counts as not yet). */
function waitFor(cdp, what, ms, expression) {
  return until(what, ms, () => evaluate(cdp, expression).catch(() => null));
}

const js = (v) => JSON.stringify(v);

/** Whether the element is laid out (its page is the one shown). */
const shown = (selector) => `(() => { const el = document.querySelector(${js(selector)}); return !!el && el.getClientRects().length > 0; })()`;

async function navigate(cdp, url) {
  const nav = await cdp.send('Page.navigate', { url });
  if (nav.errorText) throw new Error(`navigating to ${url}: ${nav.errorText}`);
}

/** Clicks the sidebar link of `page` and waits until `ready` (an element of that page) shows. */
async function openPage(cdp, page, ready) {
  const clicked = await evaluate(cdp, `(() => { const a = document.querySelector('a[data-page=${js(page)}]'); if (!a) return false; a.click(); return true; })()`);
  if (!clicked) throw new Error(`no a[data-page="${page}"] in the sidebar`);
  await waitFor(cdp, `the ${page} page`, STEP_TIMEOUT_MS, shown(ready));
}

/** Loads the console afresh and logs in with a ticket; returns the login form's prefilled values
 *  and the status line. */
async function login(cdp, consoleUrl, authid, secret) {
  await navigate(cdp, 'about:blank');
  await navigate(cdp, consoleUrl);
  await waitFor(cdp, 'the login form with settings.json read', STEP_TIMEOUT_MS,
    "!!document.querySelector('#login-form') && document.querySelector('#login-url').value !== ''");
  const prefilled = await evaluate(cdp, "({ url: document.querySelector('#login-url').value, realm: document.querySelector('#login-realm').value })");
  await evaluate(cdp, `(() => {
    const set = (id, value) => {
      const el = document.querySelector(id);
      el.value = value;
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
    };
    set('#login-method', 'ticket');
    set('#login-authid', ${js(authid)});
    set('#login-secret', ${js(secret)});
    document.querySelector('#login-submit').click();
  })()`);
  try {
    const line = await waitFor(cdp, `#status-line saying connected as ${authid}`, STEP_TIMEOUT_MS,
      `(() => { const t = document.querySelector('#status-line').textContent; return /connected as ${authid} \\(/.test(t) ? t : null; })()`);
    return { prefilled, line };
  } catch (err) {
    const shownError = await evaluate(cdp, "(document.querySelector('#login-error') || {}).textContent || ''").catch(() => '');
    throw new Error(`${err.message}${shownError ? `; the login form says: ${shownError}` : ''}`);
  }
}

/** A chart canvas's data-points and data-last (numbers, null when absent) and whether it has any
 *  pixel drawn. */
function readChart(cdp, id) {
  return evaluate(cdp, `(() => {
    const c = document.querySelector('canvas#${id}');
    if (!c) return null;
    const num = (v) => (v === undefined || v === '' ? null : Number(v));
    let drawn = false;
    if (c.width && c.height) {
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < px.length && !drawn; i += 4) drawn = px[i] !== 0;
    }
    return { points: num(c.dataset.points), last: num(c.dataset.last), drawn };
  })()`);
}

/** A PNG of the whole page (the viewport grown to the page's height for the shot). */
async function screenshot(cdp, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await sleep(300); // the last tick's redraw and layout settle
  const height = await evaluate(cdp, 'Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)');
  await cdp.send('Emulation.setDeviceMetricsOverride', { ...VIEWPORT, height: Math.max(VIEWPORT.height, Math.min(height, 4000)), deviceScaleFactor: 1, mobile: false });
  try {
    await sleep(200); // charts redraw on resize
    const { data } = await cdp.send('Page.captureScreenshot', { format: 'png' });
    const file = path.join(SCREENSHOTS, `${name}.png`);
    fs.writeFileSync(file, Buffer.from(data, 'base64'));
    return file;
  } finally {
    await cdp.send('Emulation.setDeviceMetricsOverride', { ...VIEWPORT, deviceScaleFactor: 1, mobile: false });
  }
}

// --- main --------------------------------------------------------------------------------------------

async function main() {
  const checks = [];
  const check = (name, ok, error) => checks.push({ name, ok, error: ok ? undefined : error });
  /** Runs one step; a throw fails it with the reason, and the steps after it still run. */
  const step = async (name, fn) => {
    try {
      const note = await fn();
      check(note ? `${name} (${note})` : name, true);
      return true;
    } catch (err) {
      check(name, false, err.message || String(err));
      return false;
    }
  };
  const nodeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbinterop-console-'));
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbinterop-chromium-'));
  const consoleLines = [];
  const t0 = Date.now();
  let router;
  let chromium;
  let victim; // the Node session the console kills
  let bystander; // a Node session that stays: the callee and caller of the load, a row for the viewer
  try {
    router = await startRouter(nodeDir);
    chromium = await startChromium(userDataDir);
    const { cdp } = chromium;
    await collectConsole(cdp, consoleLines);
    await cdp.send('Page.enable');
    await cdp.send('Emulation.setDeviceMetricsOverride', { ...VIEWPORT, deviceScaleFactor: 1, mobile: false });
    const base = `http://127.0.0.1:${router.port}`;
    const consoleUrl = `${base}/console/`;
    console.log(`router ${ROUTER_BIN} on 127.0.0.1:${router.port}; ${chromium.version}`);

    await step('the console path serves the page under a CSP without inline script or style, and settings.json', async () => {
      const page = await fetch(consoleUrl, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
      const csp = page.headers.get('content-security-policy') || '';
      if (page.status !== 200) throw new Error(`GET /console/: HTTP ${page.status}`);
      if (!/script-src 'self'/.test(csp) || !/style-src 'self'/.test(csp)) throw new Error(`CSP: ${csp}`);
      const settings = await (await fetch(`${consoleUrl}settings.json`, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })).json();
      if (settings.realm !== 'mgmt' || settings.websocket_path !== '/ws') throw new Error(`settings.json: ${js(settings)}`);
    });

    const loggedIn = await step('log in as admin with a ticket: #status-line says connected as admin (mgmt-admin)', async () => {
      const { prefilled, line } = await login(cdp, consoleUrl, 'admin', 'admin-secret');
      if (prefilled.url !== `ws://127.0.0.1:${router.port}/ws` || prefilled.realm !== 'mgmt') {
        throw new Error(`the form was prefilled with ${js(prefilled)}, not settings.json's URL and realm`);
      }
      if (!line.includes('connected as admin (mgmt-admin)')) throw new Error(`status line: ${line}`);
    });
    if (!loggedIn) throw new Error('cannot go on without a login');

    bystander = await startNodeSession(router.port, (s) => s.register('com.example.add2', (args) => args[0] + args[1]));

    await step('a Node session joining realm1 appears in #sessions-table live', async () => {
      await openPage(cdp, 'sessions', '#sessions-table');
      await waitFor(cdp, 'the sessions table filled', STEP_TIMEOUT_MS, "document.querySelectorAll('#sessions-table tr[data-session]').length > 0");
      victim = await startNodeSession(router.port);
      const id = victim.session.id;
      const t = Date.now();
      await waitFor(cdp, `row tr[data-session="${id}"]`, LIVE_MS, `!!document.querySelector('#sessions-table tr[data-session="${id}"]')`);
      return `session ${id} after ${Date.now() - t} ms`;
    });

    await step('calls from Node move the overview\'s charts (canvas#chart-calls data-last > 0, data-points growing)', async () => {
      await openPage(cdp, 'overview', 'canvas#chart-calls');
      const first = await until('a first stats tick on the charts', LIVE_MS, async () => {
        const c = await readChart(cdp, 'chart-calls');
        return c && c.points > 0 ? c : null;
      });
      // About 100 calls a second for 3 s, from the bystander to its own procedure.
      let calls = 0;
      const load = (async () => {
        for (let i = 0; i < 30; i++) {
          await Promise.all(Array.from({ length: 10 }, () => bystander.session.call('com.example.add2', [i, 1])));
          calls += 10;
          await sleep(100);
        }
      })();
      let maxCalls = 0;
      let maxMessages = 0;
      let last = first;
      const watch = async () => {
        const c = await readChart(cdp, 'chart-calls');
        const m = await readChart(cdp, 'chart-messages');
        if (c) { last = c; maxCalls = Math.max(maxCalls, c.last || 0); }
        if (m) maxMessages = Math.max(maxMessages, m.last || 0);
      };
      let done = false;
      load.then(() => { done = true; }, () => { done = true; });
      while (!done) { await watch(); await sleep(200); }
      await load;
      await until('the calls in the charts', LIVE_MS, async () => {
        await watch();
        return maxCalls > 0 && maxMessages > 0 && last.points >= first.points + 3;
      }).catch((err) => {
        throw new Error(`${err.message}: ${calls} calls made; chart-calls data-points ${first.points} -> ${last.points}, max data-last ${maxCalls}; chart-messages max data-last ${maxMessages}`);
      });
      if (!last.drawn) throw new Error('canvas#chart-calls has nothing drawn');
      return `${calls} calls; up to ${maxCalls} calls/s, ${maxMessages} messages/s; ${first.points} -> ${last.points} points`;
    });

    await step('screenshot of the overview', async () => path.relative(REPO, await screenshot(cdp, 'overview')));

    await step('sorted by Msgs in (descending, by the router), the busiest session is the Node caller, its counters moved', async () => {
      await openPage(cdp, 'sessions', '#sessions-table');
      const header = "#sessions-table th[data-sort='messages_in']";
      // The first click sorts ascending, the second descending.
      await evaluate(cdp, `document.querySelector("${header}").click()`);
      await sleep(300);
      await evaluate(cdp, `document.querySelector("${header}").click()`);
      const id = bystander.session.id;
      const first = await until('the Node caller first, with its messages counted', LIVE_MS, async () => {
        const row = await evaluate(cdp, `(() => {
          const tr = document.querySelector('#sessions-table tbody tr[data-session]');
          if (!tr) return null;
          const columns = [...document.querySelectorAll('#sessions-table thead th')].map((th) => th.dataset.sort);
          const cells = {};
          columns.forEach((name, i) => { if (name) cells[name] = tr.cells[i].textContent; });
          return { session: tr.dataset.session, cells };
        })()`);
        return row && row.session === String(id) ? row : null;
      });
      const { transport, peer, messages_in: msgsIn, messages_out: msgsOut } = first.cells;
      const parse = (t) => (t.endsWith('k') ? parseFloat(t) * 1000 : Number(t));
      if (transport !== 'websocket' || !peer.startsWith('tcp4:127.0.0.1:') || !(parse(msgsIn) >= 300) || !(parse(msgsOut) >= 300)) {
        throw new Error(`row ${js(first.cells)}`);
      }
      return `session ${id}: ${msgsIn} in, ${msgsOut} out over ${transport} from ${peer}`;
    });

    await step('the transports page stops and starts the transport: new connections refused while stopped, the console stays connected', async () => {
      await openPage(cdp, 'transports', '#transports-table');
      const row = '#transports-table tbody tr';
      await waitFor(cdp, 'a Stop button (shown when switchboard.access.get says may switchboard.transport.stop)', STEP_TIMEOUT_MS,
        `!!document.querySelector('${row} button.action')`);
      await evaluate(cdp, `document.querySelector('${row} button.action').click()`);
      await waitFor(cdp, 'the transport stopped', STEP_TIMEOUT_MS,
        `document.querySelector('${row}').textContent.includes('stopped')`);
      let refused = false;
      await startNodeSession(router.port).then(closeNodeSession, () => { refused = true; });
      if (!refused) throw new Error('a new connection was accepted by the stopped transport');
      await waitFor(cdp, 'a Start button', STEP_TIMEOUT_MS, `document.querySelector('${row} button.action').textContent === 'Start'`);
      await evaluate(cdp, `document.querySelector('${row} button.action').click()`);
      await waitFor(cdp, 'the transport listening again', STEP_TIMEOUT_MS,
        `document.querySelector('${row}').textContent.includes('listening')`);
      await closeNodeSession(await startNodeSession(router.port));
    });

    await step('the Kill button of the Node session\'s row ends it with wamp.close.killed', async () => {
      if (!victim) throw new Error('no Node session to kill (the step that opened it failed)');
      const id = victim.session.id;
      await openPage(cdp, 'sessions', '#sessions-table');
      const row = `#sessions-table tr[data-session="${id}"]`;
      await waitFor(cdp, `${row} button.kill (shown when switchboard.access.get says may switchboard.session.kill)`, STEP_TIMEOUT_MS,
        `!!document.querySelector('${row} button.kill')`);
      await evaluate(cdp, `document.querySelector('${row} button.kill').click()`);
      const { reason, details } = await withTimeout(victim.closed, STEP_TIMEOUT_MS, 'the Node session closing');
      if (details.reason !== 'wamp.close.killed') throw new Error(`closed with ${reason} ${js(details)}`);
      await waitFor(cdp, `${row} gone from the table`, LIVE_MS, `!document.querySelector('${row}')`);
    });

    await step('screenshot of the sessions page', async () => path.relative(REPO, await screenshot(cdp, 'sessions')));

    await step('Reload applies a realm added to config.json and #reload-report says realm "added" added', async () => {
      const config = nodeConfig(router.port, [{ name: 'added', roles: [{ name: 'anonymous', permissions: [everything('com.example.')] }] }]);
      fs.writeFileSync(router.configPath, JSON.stringify(config, null, 2));
      await openPage(cdp, 'config', '#reload-report');
      await waitFor(cdp, '#reload-button (shown when switchboard.access.get says may switchboard.config.reload)', STEP_TIMEOUT_MS,
        "!!document.querySelector('#reload-button')");
      await evaluate(cdp, "document.querySelector('#reload-button').click()");
      await waitFor(cdp, '#reload-report saying realm "added" added', STEP_TIMEOUT_MS,
        "document.querySelector('#reload-report').textContent.includes('realm \"added\" added')").catch(async (err) => {
        const report = await evaluate(cdp, "document.querySelector('#reload-report').textContent").catch(() => '?');
        throw new Error(`${err.message}; it says: ${report}`);
      });
    });

    await step('screenshot of the config page', async () => path.relative(REPO, await screenshot(cdp, 'config')));

    await step('the playground\'s second session calls and subscribes on the management realm', async () => {
      await openPage(cdp, 'playground', '#pg-realm');
      await evaluate(cdp, `(() => {
        document.querySelector('#pg-realm').value = 'mgmt';
        document.querySelector('#pg-open').click();
      })()`);
      await waitFor(cdp, 'the playground session', STEP_TIMEOUT_MS, "!document.querySelector('#pg-call-button').disabled");
      await evaluate(cdp, `(() => {
        document.querySelector('#pg-sub-topic').value = 'switchboard.stats.on_update';
        document.querySelector('#pg-sub-button').click();
        document.querySelector('#pg-call-proc').value = 'switchboard.realm.list';
        document.querySelector('#pg-call-button').click();
      })()`);
      await waitFor(cdp, 'a result and an event in #pg-log', LIVE_MS, `(() => {
        const text = document.querySelector('#pg-log').textContent;
        return text.includes('"realm1"') && text.includes('switchboard.stats.on_update') && text.includes('"realms"');
      })()`).catch(async (err) => {
        const log = await evaluate(cdp, "document.querySelector('#pg-log').textContent").catch(() => '?');
        throw new Error(`${err.message}; the log says: ${log.slice(0, 600)}`);
      });
    });

    await step('screenshot of the playground', async () => path.relative(REPO, await screenshot(cdp, 'playground')));

    await step('logged in as viewer (mgmt-read), the sessions, config and transports pages have no action button', async () => {
      const { line } = await login(cdp, consoleUrl, 'viewer', 'viewer-secret');
      if (!line.includes('connected as viewer (mgmt-read)')) throw new Error(`status line: ${line}`);
      await openPage(cdp, 'sessions', '#sessions-table');
      // The bystander's row is there: a role that may kill would see its button.
      await waitFor(cdp, 'the bystander in the sessions table', STEP_TIMEOUT_MS,
        `!!document.querySelector('#sessions-table tr[data-session="${bystander.session.id}"]')`);
      const onSessions = await evaluate(cdp, "document.querySelectorAll('button.action').length");
      await openPage(cdp, 'config', '#reload-report');
      await waitFor(cdp, 'the config shown', STEP_TIMEOUT_MS, "document.querySelector('#config-json').textContent.includes('realm1')");
      const onConfig = await evaluate(cdp, "document.querySelectorAll('button.action').length");
      await openPage(cdp, 'transports', '#transports-table');
      await waitFor(cdp, 'the transports listed', STEP_TIMEOUT_MS, "document.querySelectorAll('#transports-table tbody tr').length > 0");
      const onTransports = await evaluate(cdp, "document.querySelectorAll('button.action').length");
      if (onSessions || onConfig || onTransports) {
        throw new Error(`${onSessions} button.action on the sessions page, ${onConfig} on the config page, ${onTransports} on the transports page`);
      }
    });

    const errors = consoleLines.filter((l) => /^(exception|console\.error|log\.error)/.test(l));
    check('the page logged no errors, exceptions or CSP violations', errors.length === 0, errors.join('\n  '));
  } catch (err) {
    check('harness (router, Chromium, login or Node sessions)', false, err.message);
  } finally {
    if (chromium) await stopChromium(chromium);
    await closeNodeSession(victim);
    await closeNodeSession(bystander);
    if (router) {
      killGroup(router.proc, 'SIGTERM');
      if (!await exited(router.proc, 10000)) {
        killGroup(router.proc);
        check('router stops on SIGTERM', false, 'still running after 10 s, killed');
      } else if (router.proc.exitCode !== 0) {
        check('router stops on SIGTERM', false, `exit ${router.proc.exitCode ?? router.proc.signalCode}`);
      }
    }
  }

  let failed = 0;
  for (const c of checks) {
    if (c.ok) console.log(`PASS ${c.name}`);
    else { failed++; console.log(`FAIL ${c.name}: ${c.error}`); }
  }
  if (failed) {
    if (consoleLines.length) console.log(`browser console:\n  ${consoleLines.join('\n  ')}`);
    if (router) console.log(`router.log (last lines):\n${router.tail()}`);
  }
  if (process.env.INTEROP_KEEP_NODE_DIR) console.log(`node dir kept: ${nodeDir}`);
  else fs.rmSync(nodeDir, { recursive: true, force: true });
  fs.rmSync(userDataDir, { recursive: true, force: true });
  console.log(`console test took ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${SCREENSHOTS}`);
  console.log(`${checks.length - failed} passed, ${failed} failed`);
  return failed === 0 && checks.length > 0 ? 0 : 1;
}

if (typeof WebSocket === 'undefined') {
  console.error('console.js needs the global WebSocket: Node 22+, or node --experimental-websocket');
  console.log('0 passed, 1 failed');
  process.exit(2);
}
const watchdog = armWatchdog(3 * WATCHDOG_MS);
main().then((code) => {
  clearTimeout(watchdog);
  process.exitCode = code;
  // an Autobahn|JS connection or DevTools socket left open must not keep node alive
  setTimeout(() => process.exit(code), 500).unref();
});
