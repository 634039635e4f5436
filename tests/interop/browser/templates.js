'use strict';
// The app templates of `switchboard init`, end to end as a user runs them, in headless Chromium.
//
//   node [--experimental-websocket] templates.js       (normally via ./run.sh)
//
// For each template: `switchboard init --template T --appname myapp myapp` in a temp dir, the
// node's port 8080 (and the default node's operations port 8090) changed to free ones (the only edit), `switchboard start .` inside the app
// directory, then Chromium loads http://127.0.0.1:<port>/ and the page must show the sum
// com.example.add2(2, 3) = 5 from the backend and a counter that the backend publishes and that
// increases. The backend also has to receive the page's hello on com.example.onhello. The postgres
// template runs as its README says (createdb, psql -f db/setup.sql, against $DATABASE_URL's server
// or 127.0.0.1:5432 as postgres, with an app name unique per run), and its page must show an SQL
// function's result and error and the rows its trigger publishes. hello:python
// runs its backend under SWITCHBOARD_PYTHON (default <repo>/.venv/bin/python, which
// ../run.sh creates); hello:nodejs gets node_modules from here (autobahn, the version its
// package.json names) instead of `npm install`. The default template's page must load too.
//
// Also checks that the Autobahn|JS the binary embeds (crates/switchboard/templates/vendor) is
// byte for byte the autobahn.min.js of the npm package autobahn-browser installed here, and that
// the node serves exactly that file.
//
// Environment: as run.js; INTEROP_KEEP_NODE_DIR=1 keeps the app directories.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  HERE, REPO, ROUTER_BIN, PAGE_TIMEOUT_MS, STEP_TIMEOUT_MS, WATCHDOG_MS, sleep, until, freePort,
  canConnect, spawnGroup, killGroup, exited, startChromium, collectConsole, stopChromium,
  armWatchdog,
} = require('./harness');

const PYTHON = process.env.SWITCHBOARD_PYTHON || path.join(REPO, '.venv', 'bin', 'python');
const VENDORED_AUTOBAHN = path.join(REPO, 'crates', 'switchboard', 'templates', 'vendor', 'autobahn-browser', 'autobahn.min.js');

/** `switchboard init` of `template` into <parent>/<appname>, on a free port; returns the app dir. */
async function initApp(parent, template, appname = 'myapp') {
  const init = spawnSync(ROUTER_BIN, ['init', '--template', template, '--appname', appname, appname], {
    cwd: parent, encoding: 'utf8', timeout: STEP_TIMEOUT_MS,
  });
  if (init.status !== 0) throw new Error(`switchboard init --template ${template} failed: ${init.stderr}${init.stdout}`);
  const appDir = path.join(parent, appname);
  const port = await freePort();
  for (const config of [path.join(appDir, '.crossbar', 'config.json'), path.join(appDir, 'config.json')]) {
    if (!fs.existsSync(config)) continue;
    const text = fs.readFileSync(config, 'utf8');
    if (!/\b8080\b/.test(text)) throw new Error(`${config} does not listen on 8080 like the default node`);
    // The default node's operations transport (8090) gets a free port too.
    const opsPort = await freePort();
    fs.writeFileSync(config, text.replace(/\b8080\b/g, String(port)).replace(/\b8090\b/g, String(opsPort)));
  }
  return { appDir, port };
}

/** `switchboard start .` in appDir, as the README says; resolves once it listens. */
async function startNode(appDir, port, env) {
  const logPath = path.join(appDir, 'node.log');
  const logFd = fs.openSync(logPath, 'w');
  const proc = spawnGroup([ROUTER_BIN, 'start', '.'], { cwd: appDir, env, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const log = () => fs.readFileSync(logPath, 'utf8');
  try {
    await until('node listening', STEP_TIMEOUT_MS, async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`node exited (${proc.exitCode ?? proc.signalCode})`);
      return canConnect(port);
    });
  } catch (err) {
    throw new Error(`${err.message}; node.log:\n${log().split('\n').slice(-30).join('\n')}`);
  }
  return { proc, log };
}

/** The page's add2 and counter fields, read over the DevTools protocol. */
async function readPage(cdp) {
  const { result } = await cdp.send('Runtime.evaluate', {
    expression: `JSON.stringify({
      title: document.title,
      add2: (document.getElementById('add2') || {}).textContent,
      counter: (document.getElementById('counter') || {}).textContent,
    })`,
    returnByValue: true,
  });
  return JSON.parse(result.value);
}

async function checkHelloPage(cdp, url, template, check) {
  const nav = await cdp.send('Page.navigate', { url });
  if (nav.errorText) throw new Error(`navigating to ${url}: ${nav.errorText}`);
  let last = {};
  const isCounter = (text) => /^\d+$/.test(text || '');
  try {
    await until('add2 result and a counter value', PAGE_TIMEOUT_MS, async () => {
      last = await readPage(cdp);
      return last.add2 === '5' && isCounter(last.counter);
    });
    check(`${template}: the page shows com.example.add2(2, 3) = 5 from the backend`, true);
  } catch (err) {
    check(`${template}: the page shows com.example.add2(2, 3) = 5 and a counter`, false, `${err.message}; page: ${JSON.stringify(last)}`);
    return;
  }
  const first = Number(last.counter);
  try {
    await until('a later counter value', 10000, async () => {
      last = await readPage(cdp);
      return isCounter(last.counter) && Number(last.counter) > first;
    });
    check(`${template}: the page shows the backend's counter increasing (${first} -> ${last.counter})`, true);
  } catch (err) {
    check(`${template}: the page shows the backend's counter increasing`, false, `${err.message}; first ${first}, page: ${JSON.stringify(last)}`);
  }
}

async function runTemplate(chromium, template, check, diagnostics, variant) {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'sbinterop-template-'));
  const env = { ...process.env };
  let node;
  try {
    const { appDir, port } = await initApp(parent, template);
    if (template === 'hello:python') {
      if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} missing: set SWITCHBOARD_PYTHON to a Python with autobahn, or run ../run.sh first`);
      env.SWITCHBOARD_PYTHON = PYTHON;
    }
    if (template === 'hello:nodejs') {
      // What `npm install` would put there: this test's node_modules has the autobahn version
      // the template's package.json names.
      const wanted = JSON.parse(fs.readFileSync(path.join(appDir, 'package.json'), 'utf8')).dependencies.autobahn;
      const have = require('autobahn/package.json').version;
      if (wanted !== have) throw new Error(`the template wants autobahn ${wanted}, this test has ${have}: align tests/interop/browser/package.json`);
      fs.symlinkSync(path.join(HERE, 'node_modules'), path.join(appDir, 'node_modules'));
      // Autobahn|JS needs the global WebSocket: behind a flag before Node 22.
      if (Number(process.versions.node.split('.')[0]) < 22) {
        env.NODE_OPTIONS = `${env.NODE_OPTIONS || ''} --experimental-websocket`.trim();
      }
    }
    node = await startNode(appDir, port, env);
    const url = `http://127.0.0.1:${port}/`;
    if (template === 'default') {
      await cdp(chromium).send('Page.navigate', { url });
      const title = await until('the default page', STEP_TIMEOUT_MS, async () => (await readPage(cdp(chromium))).title);
      check('default: the page of switchboard init loads', title === 'Switchboard node', `title ${JSON.stringify(title)}`);
      return;
    }
    const label = variant ? `${template} (${variant})` : template;
    await checkHelloPage(cdp(chromium), url, label, check);
    if (variant) {
      const { result } = await cdp(chromium).send('Runtime.evaluate', {
        expression: "document.getElementById('status').textContent", returnByValue: true });
      check(`${label}: the page runs over long-poll`, /over longpoll/.test(result.value), `status: ${result.value}`);
      return;
    }
    if (template !== 'hello:browser') {
      // The page says hello once connected; the backend logs what it received.
      try {
        await until('the backend logs the page\'s hello', 10000, async () => node.log().includes('event for com.example.onhello: Hello from'));
        check(`${template}: the backend received the page's hello on com.example.onhello`, true);
      } catch (err) {
        check(`${template}: the backend received the page's hello on com.example.onhello`, false, err.message);
      }
    }
    // Autobahn|JS comes from the node itself, exactly the vendored file.
    const served = Buffer.from(await (await fetch(`${url}autobahn.min.js`, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })).arrayBuffer());
    check(`${template}: the node serves the embedded Autobahn|JS`, served.equals(fs.readFileSync(VENDORED_AUTOBAHN)), `${served.length} bytes`);
  } catch (err) {
    check(`${template}: harness (init, node start or page)`, false, err.message);
  } finally {
    // The page's sessions end before the node stops (else the node waits for them to say goodbye).
    await cdp(chromium).send('Page.navigate', { url: 'about:blank' }).catch(() => {});
    if (node) {
      killGroup(node.proc, 'SIGTERM');
      if (!await exited(node.proc, 15000)) {
        killGroup(node.proc);
        check(`${template}: the node stops on SIGTERM`, false, 'still running after 15 s, killed');
      } else if (node.proc.exitCode !== 0) {
        check(`${template}: the node stops on SIGTERM`, false, `exit ${node.proc.exitCode ?? node.proc.signalCode}`);
      }
      diagnostics.push(`--- ${template} node.log (last lines):\n${node.log().split('\n').slice(-25).join('\n')}`);
    }
    if (process.env.INTEROP_KEEP_NODE_DIR) console.log(`app dir kept: ${parent}`);
    else fs.rmSync(parent, { recursive: true, force: true });
  }
}

const cdp = (chromium) => chromium.cdp;

/** Runs a PostgreSQL client program (createdb, psql, dropdb) against the test server. */
function pgCommand(args, cwd) {
  const r = spawnSync(args[0], args.slice(1), { cwd, encoding: 'utf8', timeout: STEP_TIMEOUT_MS, env: pgEnv() });
  if (r.error) throw new Error(`${args[0]}: ${r.error.message} (install postgresql-client)`);
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The server of $DATABASE_URL, else 127.0.0.1:5432 as postgres (as test_postgres.py). */
function pgEnv() {
  const url = new URL(process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/postgres');
  return { ...process.env, PGHOST: url.hostname, PGPORT: url.port || '5432', PGUSER: url.username || 'postgres' };
}

/**
 * The postgres template as its README walks a user through it: createdb, psql -f db/setup.sql,
 * switchboard start; the page must show add2(2, 3) = 5 from PostgreSQL and the SQL error of
 * add2('x', 1), add a todo that comes back as the trigger's event, and show a row inserted with
 * psql. The app name is unique per run: it names the database and the roles.
 */
async function runPostgresTemplate(chromium, check, diagnostics) {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'sbinterop-template-'));
  const appname = `pgt${Math.random().toString(16).slice(2, 10)}`;
  let node;
  let created = false;
  try {
    const { appDir, port } = await initApp(parent, 'postgres', appname);
    const pg = pgEnv();
    const config = path.join(appDir, '.crossbar', 'config.json');
    fs.writeFileSync(config, fs.readFileSync(config, 'utf8')
      .replace('"host": "127.0.0.1"', `"host": "${pg.PGHOST}"`).replace('"port": 5432', `"port": ${pg.PGPORT}`));
    pgCommand(['createdb', appname], appDir);
    created = true;
    pgCommand(['psql', '-d', appname, '-v', 'ON_ERROR_STOP=1', '-q', '-f', 'db/setup.sql'], appDir);
    node = await startNode(appDir, port, { ...process.env });
    await cdp(chromium).send('Page.navigate', { url: `http://127.0.0.1:${port}/` });
    const read = async () => {
      const { result } = await cdp(chromium).send('Runtime.evaluate', {
        expression: `JSON.stringify({
          add2: document.getElementById('add2')?.textContent,
          sqlerror: document.getElementById('sqlerror')?.textContent,
          todos: [...document.querySelectorAll('li.todo')].map((li) => li.textContent),
        })`,
        returnByValue: true,
      });
      // While the page loads there may be no document to read yet.
      return typeof result.value === 'string' ? JSON.parse(result.value) : { todos: [] };
    };
    let last = {};
    await until('add2 and the SQL error', PAGE_TIMEOUT_MS, async () => {
      last = await read();
      return last.add2 === '5' && /wamp\.error\.invalid_argument \(SQLSTATE 22P02\)/.test(last.sqlerror);
    }).then(() => check('postgres: the page shows add2(2, 3) = 5 from PostgreSQL and the SQL error of add2(\'x\', 1)', true),
      (err) => check('postgres: the page shows add2 and the SQL error', false, `${err.message}; page: ${JSON.stringify(last)}`));
    await cdp(chromium).send('Runtime.evaluate', {
      expression: "document.getElementById('task').value = 'from the page'; document.getElementById('add').click();",
    });
    await until('the todo added from the page', 10000, async () => {
      last = await read();
      return last.todos.some((t) => t.startsWith('from the page'));
    }).then(() => check('postgres: a todo added on the page comes back as the trigger\'s event', true),
      (err) => check('postgres: a todo added on the page comes back as the trigger\'s event', false, `${err.message}; page: ${JSON.stringify(last)}`));
    pgCommand(['psql', '-d', appname, '-v', 'ON_ERROR_STOP=1', '-q', '-c', "INSERT INTO todos (task) VALUES ('from psql')"], appDir);
    await until('the row inserted with psql', 10000, async () => {
      last = await read();
      return last.todos.some((t) => t.startsWith('from psql'));
    }).then(() => check('postgres: a row inserted with psql appears on the page', true),
      (err) => check('postgres: a row inserted with psql appears on the page', false, `${err.message}; page: ${JSON.stringify(last)}`));
  } catch (err) {
    check('postgres: harness (init, database setup, node start or page)', false, err.message);
  } finally {
    await cdp(chromium).send('Page.navigate', { url: 'about:blank' }).catch(() => {});
    if (node) {
      killGroup(node.proc, 'SIGTERM');
      if (!await exited(node.proc, 15000)) killGroup(node.proc);
      diagnostics.push(`--- postgres node.log (last lines):\n${node.log().split('\n').slice(-25).join('\n')}`);
    }
    if (created) {
      try {
        pgCommand(['psql', '-d', 'postgres', '-q', '-c', `DROP DATABASE IF EXISTS ${appname} WITH (FORCE)`], parent);
        pgCommand(['psql', '-d', 'postgres', '-q', '-c', `DROP ROLE IF EXISTS ${appname}_bridge; DROP ROLE IF EXISTS ${appname}_web`], parent);
      } catch (err) {
        diagnostics.push(`cleaning up the database ${appname}: ${err.message}`);
      }
    }
    if (process.env.INTEROP_KEEP_NODE_DIR) console.log(`app dir kept: ${parent}`);
    else fs.rmSync(parent, { recursive: true, force: true });
  }
}

async function main() {
  const checks = [];
  const check = (name, ok, error) => checks.push({ name, ok, error: ok ? undefined : error });
  const diagnostics = [];
  const consoleLines = [];
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbinterop-chromium-'));
  const t0 = Date.now();
  let chromium;
  try {
    const vendored = fs.readFileSync(VENDORED_AUTOBAHN);
    const npm = fs.readFileSync(require.resolve('autobahn-browser/autobahn.min.js'));
    check(`the embedded autobahn.min.js is npm autobahn-browser ${require('autobahn-browser/package.json').version}'s, byte for byte`,
      vendored.equals(npm), `${vendored.length} bytes vendored, ${npm.length} from npm`);
    chromium = await startChromium(userDataDir);
    await collectConsole(chromium.cdp, consoleLines);
    await chromium.cdp.send('Page.enable');
    console.log(`switchboard ${ROUTER_BIN}; ${chromium.version}`);
    for (const template of ['default', 'hello:python', 'hello:nodejs', 'hello:browser']) {
      await runTemplate(chromium, template, check, diagnostics);
    }
    await runPostgresTemplate(chromium, check, diagnostics);
    // A browser without WebSocket: the hello page falls back to long-poll (WebSocket is removed
    // from every new document before the page's scripts run).
    const { identifier } = await chromium.cdp.send('Page.addScriptToEvaluateOnNewDocument',
      { source: 'delete window.WebSocket;' });
    await runTemplate(chromium, 'hello:python', check, diagnostics, 'without WebSocket');
    await chromium.cdp.send('Page.removeScriptToEvaluateOnNewDocument', { identifier });
  } catch (err) {
    check('harness (Chromium)', false, err.message);
  } finally {
    if (chromium) await stopChromium(chromium);
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  let failed = 0;
  for (const c of checks) {
    if (c.ok) console.log(`ok   ${c.name}`);
    else { failed++; console.log(`FAIL ${c.name}: ${c.error}`); }
  }
  if (failed) {
    if (consoleLines.length) console.log(`browser console:\n  ${consoleLines.join('\n  ')}`);
    console.log(diagnostics.join('\n'));
  }
  console.log(`template tests took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`${checks.length - failed} passed, ${failed} failed`);
  return failed === 0 && checks.length > 0 ? 0 : 1;
}

if (typeof WebSocket === 'undefined') {
  console.error('templates.js needs the global WebSocket: Node 22+, or node --experimental-websocket');
  console.log('0 passed, 1 failed');
  process.exit(2);
}
const watchdog = armWatchdog(4 * WATCHDOG_MS);
main().then((code) => {
  clearTimeout(watchdog);
  process.exitCode = code;
  setTimeout(() => process.exit(code), 500).unref();
});
