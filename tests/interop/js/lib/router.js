'use strict';
// Start/stop the router under test for the Autobahn|JS interop tests.
//
// Environment (same as the Python side):
//   SWITCHBOARD_BIN   path of the switchboard binary (default <repo>/target/debug/switchboard)
//   INTEROP_ROUTER    "switchboard" (default) or "crossbar"
//   CROSSBAR_BIN      crossbar executable for INTEROP_ROUTER=crossbar (default "crossbar")
//   INTEROP_STARTUP_TIMEOUT  seconds to wait for the router to listen

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const REALM = 'realm1';

function routerKind() {
  const kind = (process.env.INTEROP_ROUTER || 'switchboard').trim().toLowerCase();
  if (kind !== 'switchboard' && kind !== 'crossbar') {
    throw new Error(`INTEROP_ROUTER must be 'switchboard' or 'crossbar', not ${kind}`);
  }
  return kind;
}

function switchboardBin() {
  return process.env.SWITCHBOARD_BIN || path.join(REPO_ROOT, 'target', 'debug', 'switchboard');
}

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function nodeConfig(port, unixPath, kind) {
  const ws = { type: 'websocket' };
  if (kind === 'crossbar') ws.options = { compression: { deflate: {} } };
  const universal = (endpoint) => ({
    type: 'universal',
    endpoint,
    rawsocket: {},
    websocket: { ws: { ...ws } },
  });
  return {
    version: 2,
    workers: [{
      type: 'router',
      realms: [{
        name: REALM,
        roles: [{
          name: 'anonymous',
          permissions: [{
            uri: '',
            match: 'prefix',
            allow: { call: true, register: true, publish: true, subscribe: true },
          }],
        }],
      }],
      transports: [
        universal({ type: 'tcp', port, interface: '127.0.0.1' }),
        universal({ type: 'unix', path: unixPath }),
      ],
    }],
  };
}

function canConnect(opts) {
  return new Promise((resolve) => {
    const sock = net.connect(opts);
    const done = (ok) => { sock.removeAllListeners(); sock.destroy(); resolve(ok); };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Router {
  constructor({ kind, nodeDir, port, unixPath, proc, logPath }) {
    Object.assign(this, { kind, nodeDir, port, unixPath, proc, logPath });
    this.exitCode = null;
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => { this.exitCode = code; this.exitSignal = signal; resolve(code); });
    });
  }

  get wsUrl() { return `ws://127.0.0.1:${this.port}/ws`; }

  logTail(n = 40) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-n).join('\n');
    } catch (e) {
      return '<no router log>';
    }
  }

  /** SIGTERM, wait up to timeoutMs; resolves to the exit code or null if it had to be killed. */
  async terminate(timeoutMs = 10000) {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    this.proc.kill('SIGTERM');
    const code = await Promise.race([this.exited, sleep(timeoutMs).then(() => undefined)]);
    if (code === undefined) {
      this.kill();
      await Promise.race([this.exited, sleep(5000)]);
      return null;
    }
    return code;
  }

  kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      try {
        if (this.kind === 'crossbar') process.kill(-this.proc.pid, 'SIGKILL');
        else this.proc.kill('SIGKILL');
      } catch (e) { /* already gone */ }
    }
  }

  async close() {
    await this.terminate(this.kind === 'crossbar' ? 15000 : 10000);
    this.kill();
    if (!process.env.INTEROP_KEEP_NODE_DIR) {
      fs.rmSync(this.nodeDir, { recursive: true, force: true });
    }
  }
}

/**
 * Start the router under test. `customize(config)`, when given, may change the
 * default node config (realm1, a universal transport on TCP and one on a unix
 * socket) before it is written.
 */
async function startRouter({ customize } = {}) {
  const kind = routerKind();
  const nodeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbinterop-js-'));
  const port = await freeTcpPort();
  const unixPath = path.join(nodeDir, 'router.sock');
  const config = nodeConfig(port, unixPath, kind);
  if (customize) customize(config);
  const logPath = path.join(nodeDir, 'router.log');

  let argv;
  let defaultTimeout;
  if (kind === 'switchboard') {
    const bin = switchboardBin();
    if (!fs.existsSync(bin)) {
      fs.rmSync(nodeDir, { recursive: true, force: true });
      throw new Error(`router binary ${bin} does not exist: build it (cargo build) or set SWITCHBOARD_BIN`);
    }
    fs.writeFileSync(path.join(nodeDir, 'config.json'), JSON.stringify(config, null, 2));
    argv = [bin, 'start', nodeDir];
    defaultTimeout = 10;
  } else {
    const cbdir = path.join(nodeDir, '.crossbar');
    fs.mkdirSync(cbdir);
    fs.writeFileSync(path.join(cbdir, 'config.json'), JSON.stringify(config, null, 2));
    argv = [process.env.CROSSBAR_BIN || 'crossbar', 'start', '--cbdir', cbdir];
    defaultTimeout = 60;
  }
  const timeoutS = Number(process.env.INTEROP_STARTUP_TIMEOUT || defaultTimeout);

  const logFd = fs.openSync(logPath, 'w');
  const proc = spawn(argv[0], argv.slice(1), {
    cwd: nodeDir,
    stdio: ['ignore', logFd, logFd],
    detached: true, // own process group, like the Python fixture
  });
  fs.closeSync(logFd);
  const spawnError = new Promise((resolve) => proc.once('error', resolve));
  const router = new Router({ kind, nodeDir, port, unixPath, proc, logPath });

  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    const err = await Promise.race([spawnError, sleep(0).then(() => null)]);
    if (err) {
      await router.close();
      throw new Error(`could not start ${argv[0]}: ${err.message}`);
    }
    if (proc.exitCode !== null || proc.signalCode !== null) {
      const tail = router.logTail();
      await router.close();
      throw new Error(`${kind} exited early with code ${proc.exitCode}; log:\n${tail}`);
    }
    if (await canConnect({ host: '127.0.0.1', port }) && await canConnect({ path: unixPath })) {
      return router;
    }
    if (Date.now() > deadline) {
      const tail = router.logTail();
      await router.close();
      throw new Error(`${kind} did not accept connections on 127.0.0.1:${port} and ${unixPath} within ${timeoutS}s; log:\n${tail}`);
    }
    await sleep(50);
  }
}

module.exports = { startRouter, Router, REALM, REPO_ROOT };
