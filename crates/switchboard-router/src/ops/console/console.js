'use strict';
// The live web console of a Switchboard node: everything the page does. ops/console.rs serves it
// with index.html (the skeleton) and console.css (the looks). This file has three parts:
//
//  1. a minimal WAMP v2 client over WebSocket (subprotocol wamp.2.json): anonymous, ticket and
//     wampcra logins, call, subscribe, publish;
//  2. line charts and sparklines drawn on <canvas> by hand (the page loads nothing from elsewhere);
//  3. the pages of the sidebar. Each one reads the management API (switchboard.*) of the management
//     realm and offers only the actions the login's role may take (switchboard.access.get).
//
// The Content-Security-Policy allows no inline script or style, so the behaviour lives here and
// the looks in console.css. Elements are built with the DOM API and never from HTML strings, so
// nothing the router sends (authids, URIs, config values) can inject markup.
//
// The browser test (tests/interop/browser/console.js) relies on these hooks: the ids of the login
// form, a[data-page], #status-line, #sessions-table tr[data-session] with button.kill, the chart
// canvases' data-points and data-last, #reload-button, #reload-report, #config-json, the
// playground's #pg-realm, #pg-open, #pg-call-proc, #pg-call-button, #pg-sub-topic, #pg-sub-button
// and #pg-log, and the class "action" on every button that changes the node (and on no other).

(() => {
  // ===========================================================================================
  // Helpers
  // ===========================================================================================

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  /** An element with properties (class, text, dataset, on<event>, attributes) and children. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  const pad2 = (n) => String(n).padStart(2, '0');
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  function fmtDuration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400);
    const hh = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${hh}h ${pad2(m)}m`;
    if (hh) return `${hh}h ${pad2(m)}m`;
    if (m) return `${m}m ${pad2(s % 60)}s`;
    return `${s % 60}s`;
  }

  function fmtBytes(bytes) {
    if (!isNum(bytes)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = bytes;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${i && v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
  }

  /** A number as short as a chart label or a table cell wants it: 0, 3.25, 41.3, 1.2k, 3M. */
  function fmtNum(v) {
    if (!isNum(v)) return '—';
    const a = Math.abs(v);
    if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
    if (a >= 1e4) return `${(v / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
    if (Number.isInteger(v)) return String(v);
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  const fmtPercent = (v) => (isNum(v) ? `${v < 10 ? v.toFixed(1) : Math.round(v)} %` : '—');

  function fmtClock(unixSeconds) {
    const d = new Date(unixSeconds * 1000);
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  const fmtDateTime = (unixSeconds) => new Date(unixSeconds * 1000).toLocaleString();

  /** The clock time for today, else the date and time. */
  function fmtSince(unixSeconds) {
    const d = new Date(unixSeconds * 1000);
    return d.toDateString() === new Date().toDateString() ? fmtClock(unixSeconds) : fmtDateTime(unixSeconds);
  }

  /** localStorage, which a browser may refuse (private mode, file://): then nothing is kept. */
  const stored = {
    get(key) { try { return localStorage.getItem(`switchboard.console.${key}`); } catch (e) { return null; } },
    set(key, value) { try { localStorage.setItem(`switchboard.console.${key}`, value); } catch (e) { /* not kept */ } },
  };

  function toast(text, kind = 'info') {
    const el = h('div', { class: `toast ${kind}`, text });
    $('#toasts').append(el);
    setTimeout(() => el.remove(), kind === 'bad' ? 8000 : 4000);
  }

  /** Asks the operator to confirm a drastic action in the page's own dialog (no window.confirm,
   *  which would stop the page and every live update behind it). */
  function confirmAction(text, okLabel) {
    return new Promise((resolve) => {
      const modal = $('#modal');
      $('#modal-text').textContent = text;
      $('#modal-ok').textContent = okLabel;
      modal.hidden = false;
      const done = (answer) => {
        modal.hidden = true;
        $('#modal-ok').removeEventListener('click', yes);
        $('#modal-cancel').removeEventListener('click', no);
        resolve(answer);
      };
      const yes = () => done(true);
      const no = () => done(false);
      $('#modal-ok').addEventListener('click', yes);
      $('#modal-cancel').addEventListener('click', no);
      $('#modal-cancel').focus();
    });
  }

  /** Runs `work` with `button` disabled, so that a second click cannot start it twice. */
  async function busy(button, work) {
    button.disabled = true;
    try { return await work(); } finally { button.disabled = false; }
  }

  // ===========================================================================================
  // 1. WAMP client
  // ===========================================================================================

  const MSG = {
    HELLO: 1, WELCOME: 2, ABORT: 3, CHALLENGE: 4, AUTHENTICATE: 5, GOODBYE: 6, ERROR: 8,
    PUBLISH: 16, PUBLISHED: 17, SUBSCRIBE: 32, SUBSCRIBED: 33, UNSUBSCRIBE: 34, UNSUBSCRIBED: 35,
    EVENT: 36, CALL: 48, RESULT: 50, INVOCATION: 68,
  };

  const JOIN_TIMEOUT_MS = 15000;

  /** A WAMP error (ERROR or ABORT): its URI, arguments and keyword arguments. */
  class WampError extends Error {
    constructor(error, args, kwargs) {
      const first = Array.isArray(args) && typeof args[0] === 'string' ? args[0] : kwargs && kwargs.message;
      super(first ? `${error}: ${first}` : error);
      this.error = error;
      this.args = Array.isArray(args) ? args : [];
      this.kwargs = kwargs && typeof kwargs === 'object' ? kwargs : {};
    }
  }

  const errorUri = (err) => (err instanceof WampError ? err.error : null);
  const describeError = (err) => (err && err.message) || String(err);

  function base64(bytes) {
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }

  /** The WAMP-CRA signature of `extra.challenge`: HMAC-SHA256 keyed with the secret, or with the
   *  base64 text of PBKDF2-HMAC-SHA256(secret, salt) when the router sends a salt. */
  async function wampcraSignature(secret, extra) {
    if (!window.crypto || !crypto.subtle) {
      throw new Error('wampcra needs WebCrypto, which browsers offer only to pages on https:// or localhost');
    }
    const utf8 = new TextEncoder();
    let key = utf8.encode(secret);
    if (extra.salt) {
      const base = await crypto.subtle.importKey('raw', key, 'PBKDF2', false, ['deriveBits']);
      const bits = await crypto.subtle.deriveBits({
        name: 'PBKDF2', hash: 'SHA-256', salt: utf8.encode(extra.salt), iterations: extra.iterations || 1000,
      }, base, (extra.keylen || 32) * 8);
      key = utf8.encode(base64(new Uint8Array(bits)));
    }
    const hmac = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return base64(new Uint8Array(await crypto.subtle.sign('HMAC', hmac, utf8.encode(extra.challenge))));
  }

  /**
   * One WAMP session. `WampSession.open({url, realm, authmethod, authid, secret})` resolves once
   * the router welcomed it; `onclose(reason, details)` is called once when a joined session ends.
   */
  class WampSession {
    static open(options) {
      return new Promise((resolve, reject) => new WampSession(options, resolve, reject));
    }

    constructor({ url, realm, authmethod, authid, secret }, resolve, reject) {
      this.url = url;
      this.realm = realm;
      this.id = null;
      this.details = {};
      this.joined = false;
      this.closed = false;
      this.onclose = null;
      this.requests = new Map(); // request ID -> {resolve, reject}
      this.handlers = new Map(); // subscription ID -> Set of subscriptions (one per subscribe call)
      this.nextRequest = 1;
      this.goodbye = null; // the reason of a GOODBYE or ABORT, once one came or went
      this.secret = secret;
      this.opening = { resolve, reject };
      this.joinTimer = setTimeout(() => this.failOpen(new Error(`no WELCOME from ${url} within ${JOIN_TIMEOUT_MS / 1000} s`)), JOIN_TIMEOUT_MS);

      let ws;
      try {
        ws = new WebSocket(url, ['wamp.2.json']);
      } catch (err) {
        this.failOpen(new Error(`cannot open ${url}: ${err.message}`));
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        if (ws.protocol !== 'wamp.2.json') {
          this.failOpen(new Error(`${url} did not accept the WAMP subprotocol wamp.2.json`));
          return;
        }
        const details = {
          roles: {
            caller: { features: { progressive_call_results: false } },
            callee: {},
            publisher: {},
            subscriber: {},
          },
          authmethods: [authmethod || 'anonymous'],
        };
        if (authid) details.authid = authid;
        this.send([MSG.HELLO, realm, details]);
      };
      ws.onmessage = (evt) => {
        let msg;
        try { msg = JSON.parse(evt.data); } catch (e) { msg = null; }
        if (!Array.isArray(msg)) {
          this.protocolViolation('a message that is not a JSON list');
          return;
        }
        this.receive(msg);
      };
      ws.onclose = (evt) => this.socketClosed(evt);
      ws.onerror = () => { /* onclose follows and says what happened */ };
    }

    send(msg) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
    }

    failOpen(err) {
      clearTimeout(this.joinTimer);
      if (!this.opening) return;
      const { reject } = this.opening;
      this.opening = null;
      this.secret = null;
      if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
      reject(err);
    }

    protocolViolation(what) {
      if (!this.joined) {
        this.failOpen(new Error(`protocol violation: ${what}`));
      } else {
        this.send([MSG.ABORT, { message: what }, 'wamp.error.protocol_violation']);
        this.goodbye = 'wamp.error.protocol_violation';
        this.ws.close();
      }
    }

    receive(msg) {
      const code = msg[0];
      if (!this.joined) {
        if (code === MSG.WELCOME) {
          clearTimeout(this.joinTimer);
          this.id = msg[1];
          this.details = msg[2] || {};
          this.joined = true;
          this.secret = null; // only the join needs it
          const { resolve } = this.opening;
          this.opening = null;
          resolve(this);
        } else if (code === MSG.ABORT) {
          const details = msg[1] || {};
          this.failOpen(new WampError(msg[2], details.message ? [details.message] : [], details));
        } else if (code === MSG.CHALLENGE) {
          this.answerChallenge(msg[1], msg[2] || {});
        } else {
          this.protocolViolation(`message ${code} before WELCOME`);
        }
        return;
      }
      switch (code) {
        case MSG.GOODBYE:
          if (!this.goodbye) {
            // The router ends the session: say goodbye back, as the protocol asks.
            this.goodbye = msg[2];
            this.goodbyeDetails = msg[1] || {};
            this.send([MSG.GOODBYE, {}, 'wamp.close.goodbye_and_out']);
          }
          this.ws.close();
          break;
        case MSG.ABORT:
          this.goodbye = msg[2];
          this.goodbyeDetails = msg[1] || {};
          this.ws.close();
          break;
        case MSG.ERROR: {
          const [, , request, , error, args, kwargs] = msg;
          this.settle(request, null, new WampError(error, args, kwargs));
          break;
        }
        case MSG.RESULT:
          this.settle(msg[1], { args: msg[3] || [], kwargs: msg[4] || {}, details: msg[2] || {} });
          break;
        case MSG.SUBSCRIBED:
          this.settle(msg[1], msg[2]);
          break;
        case MSG.UNSUBSCRIBED:
          this.settle(msg[1], true);
          break;
        case MSG.PUBLISHED:
          this.settle(msg[1], msg[2]);
          break;
        case MSG.EVENT: {
          const [, subscription, , details, args, kwargs] = msg;
          for (const sub of this.handlers.get(subscription) || []) {
            sub.handler(args || [], kwargs || {}, details || {});
          }
          break;
        }
        case MSG.INVOCATION:
          // This client registers nothing, so no invocation can be meant for it.
          this.send([MSG.ERROR, MSG.INVOCATION, msg[1], {}, 'wamp.error.no_such_registration']);
          break;
        default:
          break; // messages of roles this client does not play
      }
    }

    async answerChallenge(method, extra) {
      try {
        let signature;
        if (method === 'ticket') signature = this.secret || '';
        else if (method === 'wampcra') signature = await wampcraSignature(this.secret || '', extra);
        else throw new Error(`the router asks for ${method}, which this console cannot answer`);
        this.send([MSG.AUTHENTICATE, signature, {}]);
      } catch (err) {
        this.failOpen(err);
      }
    }

    settle(request, value, error) {
      const pending = this.requests.get(request);
      if (!pending) return;
      this.requests.delete(request);
      if (error) pending.reject(error);
      else pending.resolve(value);
    }

    request(build) {
      if (!this.joined || this.closed || this.goodbye) {
        return Promise.reject(new WampError('wamp.error.not_connected', ['the session has ended']));
      }
      const id = this.nextRequest++;
      return new Promise((resolve, reject) => {
        this.requests.set(id, { resolve, reject });
        this.send(build(id));
      });
    }

    /** Resolves {args, kwargs, details}; rejects with a WampError {error, args, kwargs}. */
    call(procedure, args = [], kwargs = {}) {
      return this.request((id) => [MSG.CALL, id, {}, procedure, args, kwargs]);
    }

    /** Resolves a subscription whose `unsubscribe()` ends it; `handler(args, kwargs, details)`. */
    async subscribe(topic, handler, options = {}) {
      const id = await this.request((req) => [MSG.SUBSCRIBE, req, options, topic]);
      // The router gives a session one subscription per topic and match: several handlers share it.
      const sub = { id, topic, handler, unsubscribe: () => this.unsubscribe(sub) };
      if (!this.handlers.has(id)) this.handlers.set(id, new Set());
      this.handlers.get(id).add(sub);
      return sub;
    }

    async unsubscribe(sub) {
      const set = this.handlers.get(sub.id);
      if (!set || !set.delete(sub)) return;
      if (set.size) return; // another handler still wants these events
      this.handlers.delete(sub.id);
      if (this.joined && !this.closed && !this.goodbye) {
        await this.request((req) => [MSG.UNSUBSCRIBE, req, sub.id]);
      }
    }

    /** With options.acknowledge, resolves the publication ID once the router has it. */
    publish(topic, args = [], kwargs = {}, options = {}) {
      if (options.acknowledge) return this.request((id) => [MSG.PUBLISH, id, options, topic, args, kwargs]);
      if (!this.joined || this.closed || this.goodbye) {
        return Promise.reject(new WampError('wamp.error.not_connected', ['the session has ended']));
      }
      this.send([MSG.PUBLISH, this.nextRequest++, options, topic, args, kwargs]);
      return Promise.resolve(null);
    }

    /** Says goodbye and closes; resolves once the WebSocket is closed. */
    close(reason = 'wamp.close.close_realm') {
      if (this.closed || !this.ws) return Promise.resolve();
      const closed = new Promise((resolve) => { this.onSocketClosed = resolve; });
      if (this.joined && !this.goodbye) {
        this.goodbye = reason;
        this.goodbyeDetails = {};
        this.send([MSG.GOODBYE, {}, reason]);
        // The router answers GOODBYE and we close then; a router that does not, we close anyway.
        setTimeout(() => { if (this.ws) this.ws.close(); }, 2000);
      } else if (this.ws) {
        this.ws.close();
      }
      return closed;
    }

    socketClosed(evt) {
      this.closed = true;
      clearTimeout(this.joinTimer);
      if (this.opening) {
        const why = evt.reason ? `: ${evt.reason}` : evt.code === 1006 ? ' (no WebSocket connection)' : ` (code ${evt.code})`;
        this.failOpen(new Error(`cannot connect to ${this.url}${why}`));
      }
      for (const pending of this.requests.values()) {
        pending.reject(new WampError('wamp.close.transport_lost', ['the connection was closed']));
      }
      this.requests.clear();
      this.handlers.clear();
      if (this.onSocketClosed) this.onSocketClosed();
      if (this.joined && this.onclose) {
        const onclose = this.onclose;
        this.onclose = null;
        onclose(this.goodbye || 'wamp.close.transport_lost', this.goodbyeDetails || {});
      }
    }
  }

  // ===========================================================================================
  // 2. Charts
  // ===========================================================================================

  /** The CSS custom property `name` (a theme colour) as the canvas sees it. */
  function cssVar(el, name, fallback) {
    return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
  }

  /** A step of 1, 2, 2.5 or 5 times a power of ten, so that the grid lines get round labels. */
  function niceStep(raw) {
    if (!(raw > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(raw));
    const f = raw / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * power;
  }

  /** Sizes a canvas's backing store to its CSS box (sharp on high-DPI screens); returns the box,
   *  or null while the canvas is not shown. */
  function fitCanvas(canvas) {
    const w = canvas.clientWidth;
    const hgt = canvas.clientHeight;
    if (!w || !hgt) return null;
    const dpr = window.devicePixelRatio || 1;
    const bw = Math.round(w * dpr);
    const bh = Math.round(hgt * dpr);
    if (canvas.width !== bw || canvas.height !== bh) {
      canvas.width = bw;
      canvas.height = bh;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    return { ctx, w, h: hgt };
  }

  /** A gap in the ticks longer than this breaks the line (the console was disconnected). */
  const GAP_SECONDS = 5;

  /**
   * A time-series line chart of one or more series on a canvas. `update(times, values)` takes the
   * times (unix seconds) and one array of values per series (null where a tick had none), records
   * data-points / data-last / data-max on the canvas and draws if the canvas is shown.
   */
  class LineChart {
    constructor(canvas, { series, format = fmtNum, legend, integer = false }) {
      this.canvas = canvas;
      this.integer = integer; // a count: grid steps of whole numbers
      this.series = series; // [{label, color: '--c1'}]
      this.format = format;
      this.legend = legend;
      this.times = [];
      this.values = series.map(() => []);
      this.window = 300;
      this.hover = null;
      this.idleText = 'waiting for the first update…'; // what an empty chart says
      this.legendValues = [];
      if (legend) {
        legend.replaceChildren(...series.map((s, i) => {
          const val = h('span', { class: 'val', text: '—' });
          this.legendValues[i] = val;
          return h('span', { class: 'item' }, h('span', { class: `swatch ${s.color.slice(2)}` }), s.label, val);
        }));
      }
      canvas.addEventListener('mousemove', (evt) => { this.hover = evt.offsetX; this.draw(); });
      canvas.addEventListener('mouseleave', () => { this.hover = null; this.draw(); });
    }

    update(times, values) {
      this.times = times;
      this.values = values;
      const first = values[0] || [];
      let last = null;
      for (let i = first.length - 1; i >= 0 && last === null; i--) last = first[i];
      let max = null;
      for (const v of first) if (v !== null && (max === null || v > max)) max = v;
      // What the browser test reads: how many ticks the chart holds and the latest value.
      this.canvas.dataset.points = String(times.length);
      for (const [key, v] of [['last', last], ['max', max]]) {
        if (v === null) delete this.canvas.dataset[key];
        else this.canvas.dataset[key] = String(Math.round(v * 1000) / 1000);
      }
      values.forEach((vals, i) => {
        if (!this.legendValues[i]) return;
        let v = null;
        for (let j = vals.length - 1; j >= 0 && v === null; j--) v = vals[j];
        this.legendValues[i].textContent = v === null ? '—' : this.format(v);
      });
      this.draw();
    }

    /** True when no tick carried a value (a node that does not publish this series). */
    empty() {
      return this.values.every((vals) => vals.every((v) => v === null));
    }

    draw() {
      const box = fitCanvas(this.canvas);
      if (!box) return;
      const { ctx, w, h: hgt } = box;
      const el = this.canvas;
      const muted = cssVar(el, '--muted', '#888');
      const grid = cssVar(el, '--grid', 'rgba(128,128,128,0.2)');
      const font = '11px system-ui, sans-serif';
      const pad = { l: 46, r: 10, t: 8, b: 20 };
      const plotW = w - pad.l - pad.r;
      const plotH = hgt - pad.t - pad.b;
      ctx.font = font;

      const n = this.times.length;
      if (!n || this.empty()) {
        ctx.fillStyle = muted;
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.fillText(n ? 'not published by this node' : this.idleText, w / 2, hgt / 2);
        return;
      }

      // The x range: the chosen window, or less while the console has not seen that much yet
      // (but at least a minute, so the first points do not spread over the whole width).
      const tEnd = this.times[n - 1];
      const span = Math.max(60, Math.min(this.window, tEnd - this.times[0]));
      const tStart = tEnd - span;
      let from = 0;
      while (from < n - 1 && this.times[from] < tStart) from++;
      if (from > 0) from--; // one point left of the edge, so the line reaches the edge

      let max = 0;
      for (const vals of this.values) {
        for (let i = from; i < n; i++) if (vals[i] !== null && vals[i] > max) max = vals[i];
      }
      // An all-zero series still gets a scale of 0 to 1, so the flat line sits on a real axis.
      const target = max > 0 ? max : 1;
      const step = this.integer ? Math.max(1, niceStep(target / 4)) : niceStep(target / 4);
      const yMax = step * Math.max(1, Math.ceil(target / step));
      const x = (t) => pad.l + ((t - tStart) / span) * plotW;
      const y = (v) => pad.t + plotH - (v / yMax) * plotH;

      // grid and axis labels
      ctx.strokeStyle = grid;
      ctx.lineWidth = 1;
      ctx.fillStyle = muted;
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      for (let v = 0; v <= yMax + step / 2; v += step) {
        const yy = Math.round(y(v)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(pad.l, yy);
        ctx.lineTo(w - pad.r, yy);
        ctx.stroke();
        ctx.fillText(this.format(v), pad.l - 6, yy);
      }
      ctx.textBaseline = 'top';
      for (let i = 0; i <= 3; i++) {
        const t = tStart + (span * i) / 3;
        ctx.textAlign = i === 0 ? 'left' : i === 3 ? 'right' : 'center';
        ctx.fillText(fmtClock(t), x(t), hgt - pad.b + 5);
      }

      // the series, drawn last to first so the first one lies on top
      ctx.save();
      ctx.beginPath();
      ctx.rect(pad.l, pad.t - 2, plotW, plotH + 4);
      ctx.clip();
      for (let s = this.series.length - 1; s >= 0; s--) {
        const color = cssVar(el, this.series[s].color, '#4f8ff7');
        const vals = this.values[s];
        const runs = []; // stretches without gaps
        let run = [];
        for (let i = from; i < n; i++) {
          const v = vals[i];
          const gap = i > from && this.times[i] - this.times[i - 1] > GAP_SECONDS;
          if (v === null || gap) {
            if (run.length) runs.push(run);
            run = [];
          }
          if (v !== null) run.push([x(this.times[i]), y(v)]);
        }
        if (run.length) runs.push(run);
        for (const pts of runs) {
          // a soft area under the line
          ctx.globalAlpha = this.series.length > 1 ? 0.08 : 0.14;
          ctx.fillStyle = color;
          ctx.beginPath();
          ctx.moveTo(pts[0][0], y(0));
          for (const [px, py] of pts) ctx.lineTo(px, py);
          ctx.lineTo(pts[pts.length - 1][0], y(0));
          ctx.closePath();
          ctx.fill();
          ctx.globalAlpha = 1;
          ctx.strokeStyle = color;
          ctx.lineWidth = 1.8;
          ctx.lineJoin = 'round';
          ctx.beginPath();
          pts.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
          ctx.stroke();
          if (pts.length === 1) {
            ctx.fillStyle = color;
            ctx.beginPath();
            ctx.arc(pts[0][0], pts[0][1], 2.5, 0, Math.PI * 2);
            ctx.fill();
          }
        }
      }
      ctx.restore();

      if (this.hover !== null && this.hover >= pad.l && this.hover <= w - pad.r) this.drawHover(ctx, { x, y, from, n, pad, w, hgt });
    }

    /** The crosshair and a box with the values of the tick nearest to the mouse. */
    drawHover(ctx, { x, y, from, n, pad, w, hgt }) {
      let best = from;
      for (let i = from; i < n; i++) {
        if (Math.abs(x(this.times[i]) - this.hover) < Math.abs(x(this.times[best]) - this.hover)) best = i;
      }
      const px = x(this.times[best]);
      const el = this.canvas;
      ctx.strokeStyle = cssVar(el, '--muted', '#888');
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(Math.round(px) + 0.5, pad.t);
      ctx.lineTo(Math.round(px) + 0.5, hgt - pad.b);
      ctx.stroke();
      ctx.setLineDash([]);
      const lines = [fmtClock(this.times[best])];
      this.series.forEach((s, i) => {
        const v = this.values[i][best];
        if (v !== null) {
          ctx.fillStyle = cssVar(el, s.color, '#4f8ff7');
          ctx.beginPath();
          ctx.arc(px, y(v), 3, 0, Math.PI * 2);
          ctx.fill();
        }
        lines.push(`${s.label}: ${v === null ? '—' : this.format(v)}`);
      });
      ctx.font = '12px system-ui, sans-serif';
      const boxW = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 16;
      const boxH = lines.length * 16 + 8;
      let bx = px + 10;
      if (bx + boxW > w - pad.r) bx = px - 10 - boxW;
      ctx.fillStyle = cssVar(el, '--tooltip', 'rgba(0,0,0,0.85)');
      ctx.strokeStyle = cssVar(el, '--border', '#444');
      ctx.beginPath();
      ctx.rect(bx, pad.t + 4, boxW, boxH);
      ctx.fill();
      ctx.stroke();
      ctx.fillStyle = cssVar(el, '--text', '#eee');
      ctx.textAlign = 'left';
      ctx.textBaseline = 'top';
      lines.forEach((l, i) => ctx.fillText(l, bx + 8, pad.t + 8 + i * 16));
    }
  }

  /** A sparkline: one series, no axes, from 0 to its maximum. */
  function drawSparkline(canvas, values, color) {
    const box = fitCanvas(canvas);
    if (!box) return;
    const { ctx, w, h: hgt } = box;
    const vals = values.map((v) => (isNum(v) ? v : 0));
    if (vals.length < 2) return;
    const max = Math.max(...vals) || 1;
    const x = (i) => (i / (vals.length - 1)) * (w - 2) + 1;
    const y = (v) => hgt - 2 - (v / max) * (hgt - 4);
    const stroke = cssVar(canvas, color, '#4f8ff7');
    ctx.fillStyle = stroke;
    ctx.globalAlpha = 0.15;
    ctx.beginPath();
    ctx.moveTo(x(0), hgt);
    vals.forEach((v, i) => ctx.lineTo(x(i), y(v)));
    ctx.lineTo(x(vals.length - 1), hgt);
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.strokeStyle = stroke;
    ctx.lineWidth = 1.4;
    ctx.beginPath();
    vals.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
  }

  // ===========================================================================================
  // 3. The console
  // ===========================================================================================

  /** 15 minutes of the one-second switchboard.stats.on_update ticks. */
  const HISTORY = 900;
  /** The realms page's sparklines show the last two minutes. */
  const SPARK_POINTS = 120;

  /** The procedures that change the node: their buttons show only when access.get says may. */
  const WRITE = {
    kill: 'switchboard.session.kill',
    restart: 'switchboard.worker.restart',
    stop: 'switchboard.worker.stop',
    start: 'switchboard.worker.start',
    reload: 'switchboard.config.reload',
    shutdown: 'switchboard.node.shutdown',
    transportStop: 'switchboard.transport.stop',
    transportStart: 'switchboard.transport.start',
  };

  /** Close reasons after which the console logs in again by itself (the node restarted, the
   *  network blinked); any other reason (killed, role removed) returns to the login form. */
  const RECONNECT_REASONS = new Set(['wamp.close.transport_lost', 'wamp.close.system_shutdown']);

  const state = {
    settings: {},
    creds: null, // the login, secret included, in memory only (reconnects and the playground)
    session: null,
    authid: null,
    authrole: null,
    may: {},
    access: 'unknown', // 'known', or 'unavailable' when the node has no switchboard.access.get
    missing: new Set(), // procedures the node answered no_such_procedure for, this session
    history: [], // ticks: {t, cpu, rss, realms: {name: {...}}}
    status: null,
    statusAt: 0,
    metricsCpu: null, // {cpu seconds, at} of the last metrics read, for the CPU fallback
    cpuFromMetrics: null,
    rssFromMetrics: null,
    config: null,
    lastReload: null,
    transports: null,
    workers: null,
    background: [],
    reconnectTimer: null,
    retries: 0,
    loggingOut: false,
    page: null,
    pageTimers: [],
  };

  const allowed = (procedure) => state.access === 'known' && state.may[procedure] === true;

  /** Calls the management API on the console's session. */
  async function api(procedure, args = [], kwargs = {}) {
    if (!state.session) throw new WampError('wamp.error.not_connected', ['not logged in']);
    try {
      return await state.session.call(procedure, args, kwargs);
    } catch (err) {
      if (errorUri(err) === 'wamp.error.no_such_procedure') state.missing.add(procedure);
      throw err;
    }
  }

  /** What a panel says instead of its data when `procedure` failed. */
  function explain(err, procedure) {
    switch (errorUri(err)) {
      case 'wamp.error.no_such_procedure': return `Not available: this node does not offer ${procedure}.`;
      case 'wamp.error.not_authorized': return `Not authorized: your role may not call ${procedure}.`;
      default: return `${procedure} failed: ${describeError(err)}`;
    }
  }

  function showNotice(el, text, bad = false) {
    el.textContent = text || '';
    el.hidden = !text;
    el.classList.toggle('bad', !!bad);
  }

  /** Fills a table body from rows; `cells(row)` gives the <td>s. An empty list says `empty`. */
  function fillTable(table, rows, cells, empty, rowProps) {
    const body = table.tBodies[0];
    const cols = table.tHead.rows[0].cells.length;
    if (!rows.length) {
      body.replaceChildren(h('tr', {}, h('td', { class: 'empty', colspan: cols, text: empty })));
      return;
    }
    body.replaceChildren(...rows.map((row) => h('tr', rowProps ? rowProps(row) : {}, cells(row))));
  }

  const td = (text, cls) => h('td', { class: cls, text: text === null || text === undefined ? '—' : String(text) });

  /** A count that may come as a number or as a list of session IDs. */
  function countOf(v) {
    if (Array.isArray(v)) return v.length;
    return isNum(v) ? v : null;
  }

  function badge(text, kind) {
    return h('span', { class: `badge ${kind || ''}`, text });
  }

  function stateBadge(s) {
    const text = s === null || s === undefined ? 'unknown' : String(s);
    const kind = /^(running|up|connected|established|ready|started|listening)$/i.test(text) ? 'ok'
      : /^(starting|stopping|connecting|restarting|reconnecting|pending)$/i.test(text) ? 'warn'
        : /^(failed|crashed|exited|stopped|down|error|disconnected|closed)$/i.test(text) ? 'bad' : '';
    return badge(text, kind);
  }

  function actionButton(label, procedure, onClick, danger = false) {
    return h('button', {
      type: 'button',
      class: `btn small action${danger ? ' danger' : ''}`,
      title: procedure,
      text: label,
      onclick: (evt) => { evt.stopPropagation(); busy(evt.currentTarget, onClick); },
    });
  }

  /** The realm names the console knows of: from get_status and from the latest tick. */
  function knownRealms() {
    const names = new Set(Object.keys((state.status && state.status.realms) || {}));
    const last = state.history[state.history.length - 1];
    if (last) Object.keys(last.realms).forEach((n) => names.add(n));
    return [...names].sort();
  }

  /** Refills a realm <select>, keeping its choice; `all` adds the "all realms" option. */
  function fillRealmSelect(select, all) {
    const chosen = select.value;
    const options = knownRealms().map((n) => h('option', { value: n, text: n }));
    if (all) options.unshift(h('option', { value: '', text: 'all realms' }));
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }

  // --- status line ----------------------------------------------------------------------------

  function setStatus(kind, text, title) {
    const line = $('#status-line');
    line.className = `status ${kind}`;
    $('#status-text').textContent = text;
    line.title = title || '';
  }

  // --- page switching --------------------------------------------------------------------------

  const pages = {};

  /** Runs `fn` now and then every `ms` while the page is shown (each run after the last ended). */
  function pagePoll(fn, ms) {
    const entry = { timer: null, stopped: false };
    const run = async () => {
      try { await fn(); } catch (err) { /* fn shows its own errors */ }
      if (!entry.stopped) entry.timer = setTimeout(run, ms);
    };
    state.pageTimers.push(entry);
    run();
  }

  function stopPageTimers() {
    for (const entry of state.pageTimers) {
      entry.stopped = true;
      clearTimeout(entry.timer);
    }
    state.pageTimers = [];
  }

  function showPage(name) {
    if (!state.session && !state.reconnectTimer) name = 'login';
    else if (!pages[name] || name === 'login') name = 'overview';
    if (state.page && pages[state.page].leave) pages[state.page].leave();
    stopPageTimers();
    state.page = name;
    for (const section of $$('.page')) section.hidden = section.id !== `page-${name}`;
    for (const link of $$('#nav a')) link.classList.toggle('active', link.dataset.page === name);
    $('#page-title').textContent = pages[name].title;
    document.title = `${pages[name].title} · Switchboard console`;
    if (pages[name].enter) pages[name].enter();
  }

  window.addEventListener('hashchange', () => showPage(location.hash.slice(1)));

  /** Reloads the shown page's data `ms` after a live event if that page is `name`. Events come
   *  in bursts (a client that subscribes to ten topics makes ten events), so the events within
   *  `ms` of the first share one reload; a steady stream still reloads every `ms`. */
  const reloadTimers = {};
  function reloadSoon(name, fn, ms = 300) {
    if (reloadTimers[name]) return;
    reloadTimers[name] = setTimeout(() => {
      reloadTimers[name] = null;
      if (state.page === name && state.session) fn();
    }, ms);
  }

  // ===========================================================================================
  // Login and the console's session
  // ===========================================================================================

  function defaultUrl(settings) {
    if (settings.url) return settings.url;
    if (!settings.websocket_path) return '';
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.host}${settings.websocket_path}`;
  }

  async function loadSettings() {
    try {
      const res = await fetch('settings.json', { cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      state.settings = await res.json();
    } catch (err) {
      state.settings = {};
      $('#login-note').textContent = `settings.json could not be read (${err.message}): enter the WebSocket URL and realm.`;
    }
    // The settings name where this node's management API is; what this browser remembers wins,
    // as the operator typed it last.
    $('#login-url').value = stored.get('url') || defaultUrl(state.settings);
    $('#login-realm').value = stored.get('realm') || state.settings.realm || '';
    $('#login-authid').value = stored.get('authid') || '';
    const method = stored.get('method');
    if (method && [...$('#login-method').options].some((o) => o.value === method)) $('#login-method').value = method;
    syncLoginMethod();
  }

  function syncLoginMethod() {
    const anonymous = $('#login-method').value === 'anonymous';
    $('#login-secret').disabled = anonymous;
    $('#login-secret').required = !anonymous;
    $('#login-authid').required = !anonymous;
  }

  function loginError(text) {
    const el = $('#login-error');
    el.textContent = text || '';
    el.hidden = !text;
  }

  async function submitLogin(evt) {
    evt.preventDefault();
    const creds = {
      url: $('#login-url').value.trim(),
      realm: $('#login-realm').value.trim(),
      authmethod: $('#login-method').value,
      authid: $('#login-authid').value.trim(),
      secret: $('#login-secret').value,
    };
    if (creds.authmethod === 'anonymous') creds.secret = '';
    if (!/^wss?:\/\//i.test(creds.url)) {
      loginError('The URL must start with ws:// or wss://.');
      return;
    }
    stored.set('url', creds.url);
    stored.set('realm', creds.realm);
    stored.set('authid', creds.authid);
    stored.set('method', creds.authmethod);
    loginError('');
    const button = $('#login-submit');
    button.disabled = true;
    button.textContent = 'Connecting…';
    try {
      const session = await WampSession.open(creds);
      $('#login-secret').value = '';
      state.loggingOut = false;
      state.retries = 0;
      await startSession(session, creds);
    } catch (err) {
      loginError(describeError(err));
    } finally {
      button.disabled = false;
      button.textContent = 'Log in';
    }
  }

  /** Sets up a joined session (after a login or a reconnect): access, live events, polls. */
  async function startSession(session, creds) {
    state.session = session;
    state.creds = creds;
    state.missing = new Set();
    session.onclose = (reason, details) => sessionClosed(session, reason, details);

    state.authid = session.details.authid || creds.authid || 'anonymous';
    state.authrole = session.details.authrole || null;
    try {
      const { kwargs } = await api('switchboard.access.get');
      state.may = kwargs.may || {};
      state.access = 'known';
      if (kwargs.authrole) state.authrole = kwargs.authrole;
      if (kwargs.authid) state.authid = kwargs.authid;
    } catch (err) {
      // Without access.get the console cannot tell what the role may do: it offers no actions.
      state.may = {};
      state.access = 'unavailable';
    }

    // Live data. A role that may not subscribe to one of these still gets the rest of the page.
    const live = [
      ['switchboard.stats.on_update', (args, kwargs) => onTick(kwargs), {}],
      ['switchboard.config.on_reload', (args, kwargs) => onReload(kwargs), {}],
      ['switchboard.realm.', onMeta, { match: 'prefix' }],
    ];
    const subscribed = await Promise.all(live.map(([topic, fn, options]) => session.subscribe(topic, fn, options).catch((err) => err)));
    if (state.session !== session) return; // closed while subscribing
    const statsError = subscribed[0] instanceof Error ? subscribed[0] : null;
    for (const chart of Object.values(charts)) {
      chart.idleText = statsError
        ? (errorUri(statsError) === 'wamp.error.not_authorized'
          ? 'no live statistics: your role may not subscribe to switchboard.stats.on_update'
          : `no live statistics: ${describeError(statsError)}`)
        : 'waiting for the first update…';
    }

    document.body.classList.remove('logged-out');
    setStatus('on', `connected as ${state.authid} (${state.authrole || 'no role'}) · realm ${session.realm}`,
      `${creds.url}, session ${session.id}${state.access === 'unavailable' ? '; switchboard.access.get is not available: actions hidden' : ''}`);
    $('#pg-realm').value = $('#pg-realm').value || creds.realm;
    startBackground();
    showPage(location.hash.slice(1));
  }

  function sessionClosed(session, reason, details) {
    if (state.session !== session) return;
    state.session = null;
    stopBackground();
    if (state.loggingOut) return;
    const message = details && details.message ? `: ${details.message}` : '';
    if (RECONNECT_REASONS.has(reason) && state.creds) {
      scheduleReconnect(`${reason}${message}`);
    } else {
      toLogin(`The session ended (${reason}${message}).`);
    }
  }

  function scheduleReconnect(why) {
    const delay = Math.min(30, 2 ** state.retries);
    state.retries++;
    setStatus('warn', `connection lost (${why}); reconnecting in ${delay} s…`);
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(async () => {
      try {
        const session = await WampSession.open(state.creds);
        state.reconnectTimer = null;
        state.retries = 0;
        await startSession(session, state.creds);
        toast('Reconnected.', 'ok');
      } catch (err) {
        if (err instanceof WampError) {
          state.reconnectTimer = null;
          toLogin(`Logging in again failed: ${describeError(err)}`);
        } else {
          scheduleReconnect(describeError(err));
        }
      }
    }, delay * 1000);
  }

  function toLogin(message) {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    closePlayground();
    state.history = [];
    state.status = null;
    state.lastReload = null;
    state.config = null;
    state.transports = null;
    state.workers = null;
    state.cpuFromMetrics = null;
    state.rssFromMetrics = null;
    state.metricsCpu = null;
    updateCharts(); // empty again, data-points 0
    document.body.classList.add('logged-out');
    setStatus('off', 'not connected');
    loginError(message || '');
    showPage('login');
  }

  async function logout() {
    state.loggingOut = true;
    const session = state.session;
    state.session = null;
    stopBackground();
    state.creds = null;
    toLogin('');
    if (session) await session.close('wamp.close.logout');
  }

  // --- background polls (for the overview's cards and alarms, whatever page is shown) ----------

  function startBackground() {
    stopBackground();
    const every = (fn, ms) => {
      const entry = { timer: null, stopped: false };
      const run = async () => {
        try { await fn(); } catch (err) { /* the pages show errors; alarms just lack the data */ }
        if (!entry.stopped) entry.timer = setTimeout(run, ms);
      };
      state.background.push(entry);
      run();
    };
    every(refreshStatus, 5000);
    every(refreshConfigState, 30000);
    every(async () => {
      if (state.missing.has('switchboard.transport.list')) return;
      state.transports = (await api('switchboard.transport.list')).args[0] || [];
      renderAlarms();
    }, 60000);
    every(async () => {
      if (state.missing.has('switchboard.worker.list')) return;
      state.workers = (await api('switchboard.worker.list')).args[0] || [];
      renderAlarms();
    }, 10000);
  }

  function stopBackground() {
    for (const entry of state.background) {
      entry.stopped = true;
      clearTimeout(entry.timer);
    }
    state.background = [];
  }

  async function refreshStatus() {
    const { kwargs } = await api('switchboard.node.get_status');
    state.status = kwargs;
    state.statusAt = Date.now();
    $('#brand-version').textContent = `v${kwargs.version} · pid ${kwargs.pid}`;
    // CPU and RSS from the metrics page for as long as the ticks do not carry them.
    const last = state.history[state.history.length - 1];
    if ((!last || last.cpu === null || last.rss === null) && !state.missing.has('switchboard.metrics.get')) {
      try { readProcessMetrics((await api('switchboard.metrics.get')).args[0] || ''); } catch (err) { /* no fallback */ }
    }
    renderOverviewCards();
    renderAlarms();
    refreshRealmPickers();
  }

  /** The realm pickers follow the realms the node has (a reload may add or remove some). */
  function refreshRealmPickers() {
    fillRealmSelect($('#chart-realm'), true);
    fillRealmSelect($('#sessions-realm'), true);
    const subs = $('#subs-realm');
    const before = subs.value;
    fillRealmSelect(subs, false);
    if (!subs.value && subs.options.length) subs.value = subs.options[0].value;
    if (state.page === 'subscriptions' && subs.value !== before) pages.subscriptions.load();
  }

  function metricValue(text, name) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  }

  function readProcessMetrics(text) {
    const rss = metricValue(text, 'process_resident_memory_bytes');
    const cpu = metricValue(text, 'process_cpu_seconds_total');
    if (rss !== null) state.rssFromMetrics = rss;
    if (cpu !== null) {
      const now = Date.now();
      if (state.metricsCpu) {
        const dt = (now - state.metricsCpu.at) / 1000;
        if (dt > 0.5) state.cpuFromMetrics = Math.max(0, ((cpu - state.metricsCpu.cpu) / dt) * 100);
      }
      state.metricsCpu = { cpu, at: now };
    }
  }

  async function refreshConfigState() {
    if (state.missing.has('switchboard.config.get')) return;
    const { kwargs } = await api('switchboard.config.get');
    state.config = kwargs;
    if (kwargs.last_reload && (!state.lastReload || (kwargs.last_reload.at || 0) >= (state.lastReload.at || 0))) {
      state.lastReload = kwargs.last_reload;
    }
    renderAlarms();
  }

  // --- live events ---------------------------------------------------------------------------

  function onTick(kwargs) {
    const tick = {
      t: isNum(kwargs.time) ? kwargs.time : Date.now() / 1000,
      cpu: isNum(kwargs.cpu_percent) ? kwargs.cpu_percent : null,
      rss: isNum(kwargs.rss_bytes) ? kwargs.rss_bytes : null,
      realms: kwargs.realms || {},
    };
    state.history.push(tick);
    if (state.history.length > HISTORY) state.history.splice(0, state.history.length - HISTORY);
    updateCharts();
    if (state.page === 'overview') renderOverviewCards();
    renderAlarms(); // the sidebar's alarm count shows on every page
    if (state.page === 'realms') pages.realms.tick();
  }

  function onReload(report) {
    state.lastReload = { ...report, at: report.at || Date.now() / 1000 };
    renderAlarms();
    if (state.page === 'config') {
      renderReport($('#reload-report'), report, 'reload');
      $('#reload-when').textContent = `at ${fmtClock(state.lastReload.at)}`;
      pages.config.load();
    }
  }

  /** switchboard.realm.<realm>.meta.<event>: refreshes what the event changed, if it is shown. */
  function onMeta(args, kwargs, details) {
    const m = /^switchboard\.realm\.(.+)\.meta\.([a-z_]+\.[a-z_]+)$/.exec(details.topic || '');
    if (!m) return;
    const [, realm, event] = m;
    if (event === 'session.on_leave' && state.page === 'sessions') {
      // Grey the row out at once; the reload that follows removes it.
      const id = Array.isArray(args) ? args[0] : null;
      const row = id !== null && $(`#sessions-table tr[data-session="${CSS.escape(String(id))}"]`);
      if (row) row.classList.add('gone');
    }
    if (event.startsWith('session.')) reloadSoon('sessions', () => pages.sessions.load());
    if ((event.startsWith('subscription.') || event.startsWith('registration.')) && $('#subs-realm').value === realm) {
      reloadSoon('subscriptions', () => pages.subscriptions.load());
    }
    if (/^(session|subscription|registration)\.on_(join|leave|create|delete)$/.test(event)) {
      reloadSoon('realms', () => pages.realms.load(), 1000);
    }
  }

  // ===========================================================================================
  // Overview
  // ===========================================================================================

  /** A series of a chart: the sum over the chosen realms of one per-realm key, or a node value. */
  const perRealm = (key) => (tick, realm) => {
    let sum = null;
    for (const [name, r] of Object.entries(tick.realms)) {
      if (realm && name !== realm) continue;
      if (r && isNum(r[key])) sum = (sum || 0) + r[key];
    }
    return sum;
  };

  const CHARTS = {
    messages: { series: [{ label: 'in /s', color: '--c1', value: perRealm('messages_in_per_s') }] },
    calls: { series: [{ label: 'calls /s', color: '--c2', value: perRealm('calls_per_s') }] },
    events: {
      series: [
        { label: 'published /s', color: '--c3', value: perRealm('events_published_per_s') },
        { label: 'delivered /s', color: '--c4', value: perRealm('events_delivered_per_s') },
      ],
    },
    sessions: { series: [{ label: 'sessions', color: '--c5', value: perRealm('sessions') }], integer: true },
    errors: {
      series: [
        { label: 'errors /s', color: '--c6', value: perRealm('errors_per_s') },
        { label: 'dropped /s', color: '--c4', value: perRealm('dropped_per_s') },
      ],
    },
    cpu: {
      series: [{ label: 'CPU', color: '--c2', value: (tick) => tick.cpu }],
      format: fmtPercent,
    },
  };

  const charts = {};
  for (const [name, def] of Object.entries(CHARTS)) {
    charts[name] = new LineChart($(`#chart-${name}`), {
      series: def.series, format: def.format, legend: $(`#legend-${name}`), integer: def.integer,
    });
  }

  function updateCharts() {
    const realm = $('#chart-realm').value;
    const times = state.history.map((t) => t.t);
    for (const [name, def] of Object.entries(CHARTS)) {
      charts[name].update(times, def.series.map((s) => state.history.map((tick) => s.value(tick, realm))));
    }
    const last = state.history[state.history.length - 1];
    if (last) $('#tick-age').textContent = `last update ${fmtClock(last.t)}`;
  }

  function drawCharts() {
    for (const chart of Object.values(charts)) {
      chart.window = Number($('#chart-window').value);
      chart.draw();
    }
  }

  function renderOverviewCards() {
    const s = state.status;
    const last = state.history[state.history.length - 1];
    if (s) {
      const ready = $('#ov-ready');
      ready.textContent = s.ready ? 'Ready' : 'Not ready';
      ready.className = `value ${s.ready ? 'ok' : 'bad'}`;
      $('#ov-ready-sub').textContent = s.ready ? 'everything started' : (s.not_ready || []).join('; ');
      $('#ov-ready-sub').title = (s.not_ready || []).join('\n');
      const uptime = (s.uptime || 0) + (Date.now() - state.statusAt) / 1000;
      $('#ov-uptime').textContent = fmtDuration(uptime);
      $('#ov-started').textContent = isNum(s.started) ? `since ${fmtSince(s.started)}` : '';
      $('#ov-version').textContent = s.version || '—';
      $('#ov-pid').textContent = `pid ${s.pid}`;
    }
    const realms = last ? Object.values(last.realms) : [];
    const sessions = last ? realms.reduce((n, r) => n + (r.sessions || 0), 0) : s && s.sessions;
    $('#ov-sessions').textContent = isNum(sessions) ? String(sessions) : '—';
    const realmCount = last ? realms.length : s ? Object.keys(s.realms || {}).length : 0;
    $('#ov-realms').textContent = realmCount ? `in ${realmCount} realm${realmCount === 1 ? '' : 's'}` : '';
    const cpu = last && last.cpu !== null ? last.cpu : state.cpuFromMetrics;
    const rss = last && last.rss !== null ? last.rss : state.rssFromMetrics;
    $('#ov-cpu').textContent = fmtPercent(cpu);
    $('#ov-cpu-sub').textContent = last && last.cpu !== null ? 'of one core' : isNum(cpu) ? 'from the metrics, every 5 s' : '';
    $('#ov-rss').textContent = fmtBytes(rss);
    $('#ov-rss-sub').textContent = last && last.rss !== null ? 'resident set' : isNum(rss) ? 'from the metrics' : '';
  }

  /** What needs the operator: not ready, a failed reload, certificates about to expire, drops. */
  function computeAlarms() {
    const alarms = [];
    const s = state.status;
    if (s && !s.ready) {
      alarms.push({ kind: 'bad', what: 'Not ready', text: (s.not_ready || []).join('; ') || 'the node says it is not ready' });
    }
    const r = state.lastReload;
    if (r && r.errors && r.errors.length) {
      alarms.push({ kind: 'bad', what: 'Config reload failed', text: `${r.errors.join('; ')}${r.at ? ` (at ${fmtClock(r.at)})` : ''}` });
    }
    const waiting = state.config && state.config.restart_required;
    if (waiting && waiting.length) {
      alarms.push({ kind: 'warn', what: 'Restart required', text: `${waiting.length} config change${waiting.length === 1 ? '' : 's'} wait for a restart` });
    }
    for (const t of state.transports || []) {
      if (t.tls && isNum(t.tls.days_left) && t.tls.days_left < 14) {
        alarms.push({
          kind: t.tls.days_left < 3 ? 'bad' : 'warn',
          what: 'TLS certificate',
          text: t.tls.days_left < 0 ? `of ${t.listen} has expired` : `of ${t.listen} expires in ${Math.floor(t.tls.days_left)} days`,
        });
      }
    }
    // Drops in the last minute, per realm (the sum of per-second rates is about the count).
    const dropped = {};
    for (const tick of state.history.slice(-60)) {
      for (const [name, realm] of Object.entries(tick.realms)) {
        if (realm && realm.dropped_per_s > 0) dropped[name] = (dropped[name] || 0) + realm.dropped_per_s;
      }
    }
    for (const [name, n] of Object.entries(dropped)) {
      alarms.push({ kind: 'bad', what: 'Messages dropped', text: `about ${Math.round(n) || 1} on realm ${name} in the last minute` });
    }
    for (const w of state.workers || []) {
      if (w.state && !/^(running|started)$/i.test(String(w.state))) {
        alarms.push({ kind: 'warn', what: `Worker ${w.id}`, text: `is ${w.state}${isNum(w.exit_code) ? ` (exit code ${w.exit_code})` : ''}` });
      }
    }
    return alarms;
  }

  function renderAlarms() {
    const alarms = computeAlarms();
    const badgeEl = $('#alarm-badge');
    badgeEl.hidden = !alarms.length;
    badgeEl.textContent = String(alarms.length);
    badgeEl.classList.toggle('warn', alarms.every((a) => a.kind !== 'bad'));
    if (state.page !== 'overview') return;
    const list = $('#alarms');
    if (!alarms.length) {
      list.replaceChildren(h('li', { class: 'ok' }, 'No alarms: the node is ready, no reload failed, nothing was dropped.'));
      return;
    }
    list.replaceChildren(...alarms.map((a) => h('li', { class: a.kind }, h('span', { class: 'what', text: a.what }), h('span', { text: a.text }))));
  }

  pages.login = { title: 'Log in' };

  pages.overview = {
    title: 'Overview',
    enter() {
      fillRealmSelect($('#chart-realm'), true);
      const slot = $('#shutdown-slot');
      slot.replaceChildren();
      if (allowed(WRITE.shutdown)) {
        slot.append(actionButton('Shut down node', WRITE.shutdown, async () => {
          if (!await confirmAction('Shut the node down? Every session ends, and nothing restarts it from here.', 'Shut down')) return;
          try {
            await api(WRITE.shutdown);
            toast('The node is shutting down.', 'ok');
          } catch (err) {
            toast(explain(err, WRITE.shutdown), 'bad');
          }
        }, true));
      }
      renderOverviewCards();
      renderAlarms();
      updateCharts();
      drawCharts();
      // The uptime counts on between status polls.
      pagePoll(async () => renderOverviewCards(), 1000);
    },
  };

  $('#chart-realm').addEventListener('change', () => { updateCharts(); drawCharts(); });
  $('#chart-window').addEventListener('change', drawCharts);

  // ===========================================================================================
  // Realms
  // ===========================================================================================

  const SPARKS = [
    { key: 'messages_in_per_s', color: '--c1' },
    { key: 'calls_per_s', color: '--c2' },
    { key: 'events_delivered_per_s', color: '--c4' },
  ];

  pages.realms = {
    title: 'Realms',
    rows: new Map(), // realm name -> {tr, cells}
    list: [],
    enter() {
      pagePoll(() => this.load(), 5000);
    },
    async load() {
      try {
        this.list = (await api('switchboard.realm.list')).args[0] || [];
        showNotice($('#realms-notice'), '');
      } catch (err) {
        showNotice($('#realms-notice'), explain(err, 'switchboard.realm.list'), true);
        this.list = knownRealms().map((name) => ({ name }));
      }
      this.render();
    },
    render() {
      const body = $('#realms-table').tBodies[0];
      this.rows = new Map();
      if (!this.list.length) {
        body.replaceChildren(h('tr', {}, h('td', { class: 'empty', colspan: 7, text: 'No realms.' })));
        return;
      }
      body.replaceChildren(...this.list.map((r) => {
        const cells = {
          sessions: td(r.sessions, 'num'),
          subscriptions: td(r.subscriptions, 'num'),
          registrations: td(r.registrations, 'num'),
          sparks: SPARKS.map(() => ({ canvas: h('canvas', { class: 'spark' }), val: h('span', { class: 'val', text: '—' }) })),
        };
        const link = h('a', { href: '#sessions', text: r.name, title: `the sessions of ${r.name}`, onclick: () => { $('#sessions-realm').value = r.name; pages.sessions.offset = 0; } });
        const tr = h('tr', { dataset: { realm: r.name } },
          h('td', {}, link), cells.sessions, cells.subscriptions, cells.registrations,
          cells.sparks.map((sp) => h('td', {}, h('div', { class: 'spark-cell' }, sp.canvas, sp.val))));
        this.rows.set(r.name, { tr, cells });
        return tr;
      }));
      // A realm link may point at a realm the sessions filter has no option for yet.
      fillRealmSelect($('#sessions-realm'), true);
      this.tick();
    },
    /** Each second: the sessions count and the sparklines, from the ticks. */
    tick() {
      const recent = state.history.slice(-SPARK_POINTS);
      const last = recent[recent.length - 1];
      for (const [name, row] of this.rows) {
        const now = last && last.realms[name];
        if (now && isNum(now.sessions)) row.cells.sessions.textContent = String(now.sessions);
        SPARKS.forEach((sp, i) => {
          const values = recent.map((tick) => (tick.realms[name] ? tick.realms[name][sp.key] : null));
          drawSparkline(row.cells.sparks[i].canvas, values, sp.color);
          row.cells.sparks[i].val.textContent = now && isNum(now[sp.key]) ? fmtNum(now[sp.key]) : '—';
        });
      }
    },
  };

  // ===========================================================================================
  // Sessions
  // ===========================================================================================

  /** The columns the router sorts by, across pages (`switchboard.session.list`'s `sort`); the
   *  others are sorted within the page shown. Up time sorts by when the session joined. */
  const SERVER_SORTS = new Set(['session', 'realm', 'authid', 'messages_in', 'messages_out', 'joined']);

  pages.sessions = {
    title: 'Sessions',
    limit: 50,
    offset: 0,
    total: 0,
    rows: [],
    sortKey: null, // null: the router's order
    sortDir: 1,
    enter() {
      fillRealmSelect($('#sessions-realm'), true);
      // Live updates come from the meta events; the poll catches what a lost event would miss.
      pagePoll(() => this.load(), 10000);
    },
    async load() {
      const realm = $('#sessions-realm').value || null;
      try {
        const call = { realm, limit: this.limit, offset: this.offset };
        if (SERVER_SORTS.has(this.sortKey)) call.sort = `${this.sortDir < 0 ? '-' : ''}${this.sortKey}`;
        const { args, kwargs } = await api('switchboard.session.list', [], call);
        this.rows = args[0] || [];
        this.total = isNum(kwargs.total) ? kwargs.total : this.rows.length;
        if (!this.rows.length && this.offset > 0 && this.total > 0) {
          // The page emptied under us (sessions left): go back to the last page that has some.
          this.offset = Math.max(0, Math.floor((this.total - 1) / this.limit) * this.limit);
          return this.load();
        }
        showNotice($('#sessions-notice'), '');
      } catch (err) {
        this.rows = [];
        this.total = 0;
        showNotice($('#sessions-notice'), explain(err, 'switchboard.session.list'), true);
      }
      this.render();
      return null;
    },
    render() {
      const rows = [...this.rows];
      if (this.sortKey && !SERVER_SORTS.has(this.sortKey)) {
        const key = this.sortKey;
        rows.sort((a, b) => {
          const x = a[key];
          const y = b[key];
          const c = isNum(x) && isNum(y) ? x - y : String(x ?? '').localeCompare(String(y ?? ''));
          return c * this.sortDir;
        });
      }
      for (const th of $$('#sessions-table th[data-sort]')) {
        th.classList.toggle('sorted-asc', th.dataset.sort === this.sortKey && this.sortDir > 0);
        th.classList.toggle('sorted-desc', th.dataset.sort === this.sortKey && this.sortDir < 0);
      }
      const mayKill = allowed(WRITE.kill);
      const own = state.session && state.session.id;
      fillTable($('#sessions-table'), rows, (s) => [
        h('td', { class: 'mono' }, String(s.session), s.session === own && s.realm === state.session.realm ? badge('this console', 'me') : null),
        td(s.realm), td(s.authid), td(s.authrole),
        td(fmtNum(s.messages_in), 'num'), td(fmtNum(s.messages_out), 'num'),
        td(fmtBytes(s.bytes_in), 'num'), td(fmtBytes(s.bytes_out), 'num'), td(fmtNum(s.outbox), 'num'),
        td(isNum(s.joined) ? fmtDuration(Date.now() / 1000 - s.joined) : null, 'num'),
        td(s.authmethod), td(s.serializer), td(s.transport), td(s.peer, 'mono'),
        h('td', { class: 'actions' },
          mayKill && !(s.session === own && s.realm === state.session.realm)
            ? h('button', {
              type: 'button',
              class: 'btn small danger action kill',
              title: `${WRITE.kill}(${s.realm}, ${s.session})`,
              text: 'Kill',
              onclick: (evt) => busy(evt.currentTarget, () => this.kill(s)),
            })
            : null),
      ], 'No sessions.', (s) => ({ dataset: { session: String(s.session), realm: s.realm } }));
      const first = this.rows.length ? this.offset + 1 : 0;
      $('#sessions-range').textContent = `${first}–${this.offset + this.rows.length} of ${this.total}`;
      $('#sessions-prev').disabled = this.offset === 0;
      $('#sessions-next').disabled = this.offset + this.limit >= this.total;
    },
    async kill(s) {
      try {
        const { args } = await api(WRITE.kill, [s.realm, s.session]);
        const count = isNum(args[0]) ? args[0] : 1;
        toast(count ? `Session ${s.session} on ${s.realm} killed.` : `Session ${s.session} had already left.`, 'ok');
      } catch (err) {
        toast(explain(err, WRITE.kill), 'bad');
      }
      await this.load();
    },
  };

  $('#sessions-realm').addEventListener('change', () => { pages.sessions.offset = 0; pages.sessions.load(); });
  $('#sessions-prev').addEventListener('click', () => {
    pages.sessions.offset = Math.max(0, pages.sessions.offset - pages.sessions.limit);
    pages.sessions.load();
  });
  $('#sessions-next').addEventListener('click', () => {
    pages.sessions.offset += pages.sessions.limit;
    pages.sessions.load();
  });
  $('#sessions-refresh').addEventListener('click', () => pages.sessions.load());
  for (const th of $$('#sessions-table th[data-sort]')) {
    th.addEventListener('click', () => {
      const p = pages.sessions;
      if (p.sortKey === th.dataset.sort) p.sortDir = -p.sortDir;
      else { p.sortKey = th.dataset.sort; p.sortDir = 1; }
      if (SERVER_SORTS.has(p.sortKey)) {
        p.offset = 0;
        p.load();
      } else {
        p.render();
      }
    });
  }

  // ===========================================================================================
  // Subscriptions and registrations
  // ===========================================================================================

  pages.subscriptions = {
    title: 'Subscriptions & registrations',
    enter() {
      const select = $('#subs-realm');
      fillRealmSelect(select, false);
      if (!select.value && select.options.length) select.value = select.options[0].value;
      pagePoll(() => this.load(), 10000);
    },
    async load() {
      const realm = $('#subs-realm').value;
      if (!realm) return;
      const [subs, regs] = await Promise.allSettled([
        api('switchboard.subscription.list', [realm]),
        api('switchboard.registration.list', [realm]),
      ]);
      const uriCell = (v) => h('td', { class: 'mono', text: v === null || v === undefined ? '—' : String(v) });
      if (subs.status === 'fulfilled') {
        const list = subs.value.args[0] || [];
        showNotice($('#subs-notice'), '');
        $('#subs-count').textContent = `${list.length}`;
        fillTable($('#subscriptions-table'), list, (s) => [
          td(s.id, 'num mono'), uriCell(s.uri), td(s.match || 'exact'), td(countOf(s.subscribers), 'num'),
        ], `No subscriptions on ${realm}.`);
      } else {
        showNotice($('#subs-notice'), explain(subs.reason, 'switchboard.subscription.list'), true);
        $('#subs-count').textContent = '';
        $('#subscriptions-table').tBodies[0].replaceChildren();
      }
      if (regs.status === 'fulfilled') {
        const list = regs.value.args[0] || [];
        showNotice($('#regs-notice'), '');
        $('#regs-count').textContent = `${list.length}`;
        fillTable($('#registrations-table'), list, (r) => [
          td(r.id, 'num mono'), uriCell(r.uri), td(r.match || 'exact'), td(r.invoke || 'single'), td(countOf(r.callees), 'num'),
        ], `No registrations on ${realm}.`);
      } else {
        showNotice($('#regs-notice'), explain(regs.reason, 'switchboard.registration.list'), true);
        $('#regs-count').textContent = '';
        $('#registrations-table').tBodies[0].replaceChildren();
      }
    },
  };

  $('#subs-realm').addEventListener('change', () => pages.subscriptions.load());
  $('#subs-refresh').addEventListener('click', () => pages.subscriptions.load());

  // ===========================================================================================
  // Workers
  // ===========================================================================================

  pages.workers = {
    title: 'Workers',
    selected: null,
    enter() {
      pagePoll(() => this.load(), 3000);
      pagePoll(() => this.tail(), 2000);
    },
    async load() {
      let list;
      try {
        list = (await api('switchboard.worker.list')).args[0] || [];
        state.workers = list;
        showNotice($('#workers-notice'), '');
      } catch (err) {
        showNotice($('#workers-notice'), explain(err, 'switchboard.worker.list'), !state.missing.has('switchboard.worker.list'));
        $('#workers-table').tBodies[0].replaceChildren();
        return;
      }
      // Only guest workers can be started and stopped: the router worker is the node itself.
      const act = (label, procedure, w, danger, disabled) => (allowed(procedure) && w.type !== 'router'
        ? Object.assign(actionButton(label, procedure, async () => {
          try {
            await api(procedure, [w.id]);
            toast(`${label}: worker ${w.id}.`, 'ok');
          } catch (err) {
            toast(explain(err, procedure), 'bad');
          }
          await this.load();
        }, danger), { disabled })
        : null);
      const running = (w) => /^running$/i.test(String(w.state));
      fillTable($('#workers-table'), list, (w) => [
        td(w.id, 'mono'), td(w.type), h('td', {}, stateBadge(w.state)), td(w.pid, 'num'), td(w.restarts, 'num'),
        td(w.exit_code, 'num'),
        h('td', {}, w.ready === true ? badge('ready', 'ok') : w.ready === false ? badge('not ready', 'warn') : '—'),
        h('td', { class: 'actions' }, act('Restart', WRITE.restart, w),
          act('Stop', WRITE.stop, w, true, /^stopped$/i.test(String(w.state))), act('Start', WRITE.start, w, false, running(w))),
      ], 'No workers.', (w) => ({
        class: w.id === this.selected ? 'selected' : null,
        dataset: { worker: String(w.id) },
        onclick: () => this.select(w.id),
      }));
    },
    select(id) {
      this.selected = id;
      this.selectedType = ((state.workers || []).find((w) => w.id === id) || {}).type;
      for (const tr of $$('#workers-table tbody tr')) tr.classList.toggle('selected', tr.dataset.worker === String(id));
      $('#worker-log-title').textContent = `Log of ${id}`;
      $('#worker-log').textContent = '';
      this.tail();
    },
    async tail() {
      if (this.selected === null) return;
      const id = this.selected;
      const pre = $('#worker-log');
      if (this.selectedType === 'router') {
        pre.textContent = '';
        $('#worker-log-note').textContent = 'the router worker is the node itself: its log is the node\'s log';
        return;
      }
      try {
        const lines = (await api('switchboard.worker.log', [id], { lines: 200 })).args[0] || [];
        if (this.selected !== id) return;
        // Follow the end of the log unless the operator scrolled up to read.
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
        pre.textContent = lines.join('\n');
        if (atEnd) pre.scrollTop = pre.scrollHeight;
        $('#worker-log-note').textContent = `last ${lines.length} lines, every 2 s`;
      } catch (err) {
        $('#worker-log-note').textContent = explain(err, 'switchboard.worker.log');
      }
    },
  };

  // ===========================================================================================
  // Links and transports
  // ===========================================================================================

  pages.links = {
    title: 'Links',
    enter() { pagePoll(() => this.load(), 5000); },
    async load() {
      try {
        const list = (await api('switchboard.link.list')).args[0] || [];
        showNotice($('#links-notice'), '');
        fillTable($('#links-table'), list, (l) => [
          td(l.id, 'mono'), td(l.realm), td(typeof l.remote === 'object' && l.remote ? JSON.stringify(l.remote) : l.remote, 'mono'),
          h('td', {}, stateBadge(l.state)),
        ], 'No router links.');
      } catch (err) {
        showNotice($('#links-notice'), explain(err, 'switchboard.link.list'), true);
        $('#links-table').tBodies[0].replaceChildren();
      }
    },
  };

  pages.transports = {
    title: 'Transports',
    enter() { this.load(); },
    async load() {
      try {
        const list = (await api('switchboard.transport.list')).args[0] || [];
        state.transports = list;
        showNotice($('#transports-notice'), '');
        // A stopped transport starts again where it listened; the config file brings back what
        // it says at the next reload.
        const act = (label, procedure, t, danger) => (allowed(procedure)
          ? actionButton(label, procedure, async () => {
            try {
              await api(procedure, [t.listen]);
              toast(`${label}: transport ${t.listen}.`, 'ok');
            } catch (err) {
              toast(explain(err, procedure), 'bad');
            }
            await this.load();
          }, danger)
          : null);
        fillTable($('#transports-table'), list, (t) => {
          const tls = t.tls;
          const days = tls && isNum(tls.days_left) ? tls.days_left : null;
          const stopped = t.state === 'stopped';
          return [
            td(t.listen, 'mono'), td(t.type), h('td', {}, stateBadge(t.state || 'listening')),
            tls ? td(tls.subject || '(no subject)', 'mono') : h('td', {}, badge('no TLS')),
            td(tls && isNum(tls.not_after) ? fmtDateTime(tls.not_after) : null),
            td(days === null ? null : Math.floor(days), `num${days === null ? '' : days < 0 ? ' days-bad' : days < 14 ? ' days-warn' : ''}`),
            h('td', { class: 'actions' }, stopped
              ? act('Start', WRITE.transportStart, t, false)
              : act('Stop', WRITE.transportStop, t, true)),
          ];
        }, 'No transports.');
        renderAlarms();
      } catch (err) {
        showNotice($('#transports-notice'), explain(err, 'switchboard.transport.list'), true);
        $('#transports-table').tBodies[0].replaceChildren();
      }
    },
  };

  $('#transports-refresh').addEventListener('click', () => pages.transports.load());

  // ===========================================================================================
  // Config
  // ===========================================================================================

  /** Pretty JSON with its tokens in spans (coloured by console.css), built without innerHTML. */
  function jsonView(pre, value) {
    const text = JSON.stringify(value, null, 2) ?? 'null';
    const token = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false)\b|\bnull\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
    const parts = [];
    let at = 0;
    for (let m = token.exec(text); m; m = token.exec(text)) {
      if (m.index > at) parts.push(text.slice(at, m.index));
      const cls = m[1] ? (m[2] ? 'k' : 's') : m[3] ? 'b' : m[0] === 'null' ? 'z' : 'n';
      parts.push(h('span', { class: cls, text: m[1] || m[0] }));
      if (m[2]) parts.push(m[2]);
      at = token.lastIndex;
    }
    parts.push(text.slice(at));
    pre.replaceChildren(...parts);
  }

  /** A reload or check report: applied, waiting for a restart, errors. */
  function renderReport(el, report, what) {
    const group = (cls, title, lines) => (lines && lines.length
      ? h('div', { class: `group ${cls}` }, h('h4', { text: title }), h('ul', {}, lines.map((l) => h('li', { text: l }))))
      : null);
    const groups = [
      group('errors', 'Errors', report.errors),
      group('applied', what === 'check' ? 'Would be applied' : 'Applied', report.applied),
      group('restart', 'Needs a restart', report.restart_required),
    ].filter(Boolean);
    if (!groups.length) {
      groups.push(h('p', { class: 'muted', text: what === 'check' ? 'The config has no changes to apply.' : 'Nothing changed: the config file is what runs.' }));
    }
    el.replaceChildren(...groups);
  }

  pages.config = {
    title: 'Config',
    enter() {
      const slot = $('#reload-slot');
      slot.replaceChildren();
      if (allowed(WRITE.reload)) {
        const button = actionButton('Reload', WRITE.reload, () => this.reload());
        button.id = 'reload-button';
        button.classList.add('primary');
        slot.append(button);
      }
      if (state.lastReload) {
        renderReport($('#reload-report'), state.lastReload, 'reload');
        $('#reload-when').textContent = state.lastReload.at ? `last at ${fmtClock(state.lastReload.at)}` : '';
      }
      this.load();
    },
    async load() {
      try {
        const { kwargs } = await api('switchboard.config.get');
        state.config = kwargs;
        showNotice($('#config-notice'), '');
        $('#config-file').textContent = kwargs.file ? `Config file: ${kwargs.file}` : '';
        jsonView($('#config-json'), kwargs.config);
        const waiting = kwargs.restart_required || [];
        $('#restart-required').replaceChildren(...(waiting.length
          ? waiting.map((l) => h('li', { text: l }))
          : [h('li', { class: 'muted', text: 'Nothing: the running node is its config.' })]));
        if (kwargs.last_reload && (!state.lastReload || (kwargs.last_reload.at || 0) >= (state.lastReload.at || 0))) {
          state.lastReload = kwargs.last_reload;
          renderReport($('#reload-report'), kwargs.last_reload, 'reload');
          $('#reload-when').textContent = kwargs.last_reload.at ? `last at ${fmtClock(kwargs.last_reload.at)}` : '';
        }
        renderAlarms();
      } catch (err) {
        showNotice($('#config-notice'), explain(err, 'switchboard.config.get'), true);
      }
    },
    async reload() {
      const report = $('#reload-report');
      report.replaceChildren(h('p', { class: 'muted', text: 'Reloading…' }));
      try {
        const { kwargs } = await api(WRITE.reload);
        state.lastReload = { ...kwargs, at: kwargs.at || Date.now() / 1000 };
        renderReport(report, kwargs, 'reload');
        $('#reload-when').textContent = `at ${fmtClock(state.lastReload.at)}`;
        const failed = kwargs.errors && kwargs.errors.length;
        toast(failed ? 'The reload failed: nothing was changed.' : 'Config reloaded.', failed ? 'bad' : 'ok');
        renderAlarms();
      } catch (err) {
        report.replaceChildren(h('p', { class: 'form-error', text: explain(err, WRITE.reload) }));
      }
      await this.load();
    },
    async check() {
      const report = $('#check-report');
      const text = $('#check-text').value.trim();
      report.replaceChildren(h('p', { class: 'muted', text: 'Checking…' }));
      try {
        const { kwargs } = await api('switchboard.config.check', text ? [text] : []);
        renderReport(report, kwargs, 'check');
      } catch (err) {
        report.replaceChildren(h('p', { class: 'form-error', text: explain(err, 'switchboard.config.check') }));
      }
    },
  };

  $('#config-refresh').addEventListener('click', () => pages.config.load());
  $('#check-button').addEventListener('click', (evt) => busy(evt.currentTarget, () => pages.config.check()));

  // ===========================================================================================
  // Playground: a second session to any realm
  // ===========================================================================================

  const playground = { session: null, subs: [] };
  const LOG_LIMIT = 200;

  function pgLog(kind, text, detail) {
    const list = $('#pg-log');
    const now = Date.now() / 1000;
    list.prepend(h('li', {},
      h('span', { class: 'time', text: fmtClock(now) }),
      h('span', { class: `kind ${kind}`, text: kind }),
      h('div', {}, h('div', { text }), detail !== undefined ? h('pre', { text: detail }) : null)));
    while (list.children.length > LOG_LIMIT) list.lastElementChild.remove();
  }

  /** The payload as JSON text: pretty for results, one line per part for events (which can come
   *  every second and would push everything else out of sight). */
  function payloadText(args, kwargs, compact = false) {
    const indent = compact ? undefined : 2;
    const parts = [];
    if (args && args.length) parts.push(JSON.stringify(args, null, indent));
    if (kwargs && Object.keys(kwargs).length) parts.push(JSON.stringify(kwargs, null, indent));
    return parts.length ? parts.join('\n') : '(no payload)';
  }

  /** The JSON of a field: a list or an object as `kind` asks; throws a readable error. */
  function parseJsonField(id, kind) {
    const text = $(id).value.trim();
    if (!text) return kind === 'list' ? [] : {};
    let v;
    try { v = JSON.parse(text); } catch (err) { throw new Error(`${kind === 'list' ? 'Arguments' : 'Keyword arguments'}: ${err.message}`); }
    if (kind === 'list' && !Array.isArray(v)) throw new Error('Arguments must be a JSON list, like [1, "two"].');
    if (kind === 'object' && (v === null || typeof v !== 'object' || Array.isArray(v))) throw new Error('Keyword arguments must be a JSON object, like {"a": 1}.');
    return v;
  }

  function pgState() {
    const s = playground.session;
    const el = $('#pg-state');
    el.className = `status ${s ? 'on' : 'off'}`;
    $('#pg-state-text').textContent = s
      ? `session ${s.id} on ${s.realm} as ${s.details.authid || 'anonymous'} (${s.details.authrole || 'no role'})`
      : 'no session';
    $('#pg-close').disabled = !s;
    for (const id of ['#pg-call-button', '#pg-pub-button', '#pg-sub-button']) $(id).disabled = !s;
    $('#pg-subs').replaceChildren(...playground.subs.map((sub) => h('li', {},
      h('code', { text: `${sub.topic}${sub.match !== 'exact' ? ` (${sub.match})` : ''}` }),
      h('button', {
        type: 'button',
        class: 'btn small',
        text: 'Unsubscribe',
        onclick: async () => {
          playground.subs = playground.subs.filter((x) => x !== sub);
          pgState();
          try { await sub.unsubscribe(); pgLog('unsubscribed', sub.topic); } catch (err) { pgLog('error', describeError(err)); }
        },
      }))));
  }

  function closePlayground() {
    const s = playground.session;
    playground.session = null;
    playground.subs = [];
    if (s) s.close();
    pgState();
  }

  async function openPlayground(evt) {
    evt.preventDefault();
    const realm = $('#pg-realm').value.trim();
    if (!realm || !state.creds) return;
    closePlayground();
    const creds = $('#pg-as').value === 'anonymous'
      ? { url: state.creds.url, realm, authmethod: 'anonymous' }
      : { ...state.creds, realm };
    const button = $('#pg-open');
    await busy(button, async () => {
      try {
        const s = await WampSession.open(creds);
        playground.session = s;
        s.onclose = (reason, details) => {
          if (playground.session !== s) return;
          playground.session = null;
          playground.subs = [];
          pgLog('closed', `the session on ${realm} ended: ${reason}${details.message ? `: ${details.message}` : ''}`);
          pgState();
        };
        pgLog('session', `joined ${realm} as session ${s.id} (${s.details.authrole || 'no role'})`);
      } catch (err) {
        pgLog('error', `joining ${realm}: ${describeError(err)}`);
      }
      pgState();
    });
  }

  pages.playground = {
    title: 'Playground',
    enter() {
      const list = $('#pg-realms');
      list.replaceChildren(...knownRealms().map((n) => h('option', { value: n })));
      pgState();
    },
  };

  $('#pg-open-form').addEventListener('submit', openPlayground);
  $('#pg-close').addEventListener('click', () => { closePlayground(); pgLog('closed', 'session closed'); });
  $('#pg-log-clear').addEventListener('click', () => $('#pg-log').replaceChildren());

  $('#pg-call-form').addEventListener('submit', async (evt) => {
    evt.preventDefault();
    const s = playground.session;
    const procedure = $('#pg-call-proc').value.trim();
    if (!s || !procedure) return;
    await busy($('#pg-call-button'), async () => {
      try {
        const args = parseJsonField('#pg-call-args', 'list');
        const kwargs = parseJsonField('#pg-call-kwargs', 'object');
        const started = performance.now();
        const res = await s.call(procedure, args, kwargs);
        pgLog('result', `${procedure} in ${Math.round(performance.now() - started)} ms`, payloadText(res.args, res.kwargs));
      } catch (err) {
        pgLog('error', `${procedure}: ${err instanceof WampError ? err.error : describeError(err)}`,
          err instanceof WampError ? payloadText(err.args, err.kwargs) : undefined);
      }
    });
  });

  $('#pg-pub-form').addEventListener('submit', async (evt) => {
    evt.preventDefault();
    const s = playground.session;
    const topic = $('#pg-pub-topic').value.trim();
    if (!s || !topic) return;
    await busy($('#pg-pub-button'), async () => {
      try {
        const args = parseJsonField('#pg-pub-args', 'list');
        const kwargs = parseJsonField('#pg-pub-kwargs', 'object');
        const acknowledge = $('#pg-pub-ack').checked;
        const id = await s.publish(topic, args, kwargs, acknowledge ? { acknowledge: true, exclude_me: false } : { exclude_me: false });
        pgLog('published', acknowledge ? `${topic}: publication ${id}` : `${topic} (not acknowledged)`, payloadText(args, kwargs));
      } catch (err) {
        pgLog('error', `publish to ${topic}: ${describeError(err)}`);
      }
    });
  });

  $('#pg-sub-form').addEventListener('submit', async (evt) => {
    evt.preventDefault();
    const s = playground.session;
    const topic = $('#pg-sub-topic').value.trim();
    const match = $('#pg-sub-match').value;
    if (!s || !topic) return;
    await busy($('#pg-sub-button'), async () => {
      try {
        const sub = await s.subscribe(topic, (args, kwargs, details) => {
          pgLog('event', details.topic || topic, payloadText(args, kwargs, true));
        }, match === 'exact' ? {} : { match });
        sub.match = match;
        playground.subs.push(sub);
        pgLog('subscribed', `${topic}${match !== 'exact' ? ` (${match})` : ''}: subscription ${sub.id}`);
      } catch (err) {
        pgLog('error', `subscribe to ${topic}: ${describeError(err)}`);
      }
      pgState();
    });
  });

  // ===========================================================================================
  // Start
  // ===========================================================================================

  function applyTheme(theme) {
    document.documentElement.dataset.theme = theme;
    $('#theme-toggle').textContent = theme === 'dark' ? 'Light theme' : 'Dark theme';
    if (state.page === 'overview') drawCharts();
    if (state.page === 'realms') pages.realms.tick();
  }

  $('#theme-toggle').addEventListener('click', () => {
    const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
    stored.set('theme', next);
    applyTheme(next);
  });
  $('#logout-button').addEventListener('click', logout);
  $('#login-form').addEventListener('submit', submitLogin);
  $('#login-method').addEventListener('change', syncLoginMethod);

  // Canvas backing stores follow the layout: redraw what is shown once per frame after a resize.
  let resizeFrame = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(resizeFrame);
    resizeFrame = requestAnimationFrame(() => {
      if (state.page === 'overview') drawCharts();
      if (state.page === 'realms') pages.realms.tick();
    });
  });

  // Leaving the page says goodbye, so the router does not wait for the socket to time out.
  window.addEventListener('pagehide', () => {
    state.loggingOut = true;
    if (state.session) state.session.close('wamp.close.close_realm');
    closePlayground();
  });

  applyTheme(stored.get('theme') === 'light' ? 'light' : 'dark');
  pgState();
  showPage('login');
  loadSettings();
})();
