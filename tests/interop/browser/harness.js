'use strict';
// What the browser tests share (run.js, templates.js): bounded waits, free ports, process groups
// killed on every way out, and headless Chromium driven over the DevTools protocol.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const HERE = __dirname;
const REPO = path.resolve(HERE, '..', '..', '..');
const ROUTER_BIN = process.env.SWITCHBOARD_BIN || path.join(REPO, 'target', 'debug', 'switchboard');
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const PAGE_TIMEOUT_MS = Number(process.env.INTEROP_BROWSER_TIMEOUT || 60) * 1000;
const STEP_TIMEOUT_MS = 15000; // router start, Node session, Chromium start, one DevTools request
const WATCHDOG_MS = PAGE_TIMEOUT_MS + 4 * STEP_TIMEOUT_MS;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function until(what, ms, probe) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => { sock.destroy(); resolve(ok); };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true)).once('error', () => done(false));
  });
}

// Process groups we started (router, Chromium and its helpers); killed on every way out.
const children = [];
function spawnGroup(argv, opts) {
  const proc = spawn(argv[0], argv.slice(1), { ...opts, detached: true });
  proc.on('error', () => {}); // reported by the caller's start checks
  children.push(proc);
  return proc;
}
function killGroup(proc, signal = 'SIGKILL') {
  if (proc.pid && proc.exitCode === null && proc.signalCode === null) {
    try { process.kill(-proc.pid, signal); } catch (e) { /* gone */ }
  }
}
function exited(proc, ms) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return Promise.race([new Promise((r) => proc.once('exit', () => r(true))), sleep(ms).then(() => false)]);
}

// --- Chromium over the DevTools protocol -----------------------------------------------------------

async function startChromium(userDataDir) {
  if (!fs.existsSync(CHROMIUM_BIN)) throw new Error(`${CHROMIUM_BIN} missing (apt-get install chromium), or set CHROMIUM_BIN`);
  const proc = spawnGroup([CHROMIUM_BIN,
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage', `--user-data-dir=${userDataDir}`,
    '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (chunk) => { stderr += chunk; });
  const browserUrl = await until('Chromium DevTools endpoint', STEP_TIMEOUT_MS, async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`chromium exited (${proc.exitCode ?? proc.signalCode}):\n${stderr}`);
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
    return m && m[1];
  });
  const httpBase = new URL(browserUrl).origin.replace('ws:', 'http:');
  const getJson = async (p) => (await fetch(`${httpBase}${p}`, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })).json();
  const page = await until('Chromium page target', STEP_TIMEOUT_MS,
    () => getJson('/json/list').then((targets) => targets.find((t) => t.type === 'page'), () => null));
  const version = await getJson('/json/version');
  return { proc, cdp: await Cdp.connect(page.webSocketDebuggerUrl), version: version.Browser, stderr: () => stderr };
}

/** A minimal DevTools protocol client over the global WebSocket. */
class Cdp {
  static connect(url) {
    return withTimeout(new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(new Cdp(ws));
      ws.onerror = () => reject(new Error(`DevTools WebSocket ${url} failed`));
    }), STEP_TIMEOUT_MS, 'DevTools connect');
  }

  constructor(ws) {
    this.ws = ws;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    ws.onmessage = (evt) => {
      const msg = JSON.parse(evt.data);
      const waiter = this.pending.get(msg.id);
      if (waiter) {
        this.pending.delete(msg.id);
        if (msg.error) waiter.reject(new Error(`${waiter.method}: ${msg.error.message}`));
        else waiter.resolve(msg.result);
      } else if (msg.method) {
        for (const fn of this.listeners) fn(msg.method, msg.params);
      }
    };
  }

  send(method, params = {}) {
    const id = this.nextId++;
    const reply = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, method }));
    this.ws.send(JSON.stringify({ id, method, params }));
    return withTimeout(reply, STEP_TIMEOUT_MS, method);
  }

  on(fn) { this.listeners.push(fn); }

  close() { try { this.ws.close(); } catch (e) { /* closed */ } }
}

/** Collects the page's console output, exceptions and log entries into `lines`. */
function collectConsole(cdp, lines) {
  cdp.on((method, p) => {
    if (method === 'Runtime.consoleAPICalled') {
      lines.push(`console.${p.type}: ${p.args.map((a) => a.value ?? a.description ?? a.type).join(' ')}`);
    } else if (method === 'Runtime.exceptionThrown') {
      lines.push(`exception: ${p.exceptionDetails.exception?.description ?? p.exceptionDetails.text}`);
    } else if (method === 'Log.entryAdded') {
      lines.push(`log.${p.entry.level}: ${p.entry.text} ${p.entry.url || ''}`);
    }
  });
  return Promise.all([cdp.send('Runtime.enable'), cdp.send('Log.enable')]);
}

/** Closes Chromium (politely, then its process group). */
async function stopChromium(chromium) {
  // Leaving the page first ends its requests (a long-poll receive would hold Browser.close up).
  try { await chromium.cdp.send('Page.navigate', { url: 'about:blank' }); } catch (e) { /* closing anyway */ }
  try { await chromium.cdp.send('Browser.close'); } catch (e) { /* killed below */ }
  chromium.cdp.close();
  if (!await exited(chromium.proc, 5000)) killGroup(chromium.proc);
}

/** Exits with a failure when `main` has not finished within `ms`, killing what it started. */
function armWatchdog(ms) {
  const watchdog = setTimeout(() => {
    console.log(`FAIL watchdog: no result within ${ms / 1000} s`);
    console.log('0 passed, 1 failed');
    children.forEach((p) => killGroup(p));
    process.exit(1);
  }, ms);
  process.on('exit', () => children.forEach((p) => killGroup(p)));
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
  return watchdog;
}

module.exports = {
  HERE, REPO, ROUTER_BIN, CHROMIUM_BIN, PAGE_TIMEOUT_MS, STEP_TIMEOUT_MS, WATCHDOG_MS,
  sleep, withTimeout, until, freePort, canConnect, spawnGroup, killGroup, exited,
  startChromium, Cdp, collectConsole, stopChromium, armWatchdog,
};
