/*
 * lwsd test server demo page.
 *
 * Four WebSockets back to the server that served this page, one per panel:
 *   dumb-increment-protocol  decimal text counter from the server; we send "reset\n"
 *   lws-mirror-protocol      "d <colour> x1 y1 x2 y2;" line commands, relayed to everyone
 *   lws-server-status        JSON pushed by the server (lws' test server calls it lws-status)
 *   lws-echo                 whatever we send comes back
 * The WebSocket origin is this page's host:port (ws: or wss: after the page's scheme),
 * unless ?ws=ws://host:port overrides it, so the page can be served by any static server
 * while its sockets go to a test server.
 *
 * State the browser test reads is kept in window.lwsdDemo.
 */
'use strict';

(() => {
  /* Reconnect backoff: first retry soon, then doubling, capped so that a page left open
   * while the server restarts finds it again within half a minute. */
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 30000;
  /* Mirror messages are kept under 128 bytes: libwebsockets-test-server's mirror protocol
   * reads into a 128-byte buffer and relays larger messages in pieces, which could split a
   * command between two messages. A line command is at most ~40 bytes. */
  const MIRROR_MAX_MESSAGE = 120;
  /* Pending strokes are flushed this often while drawing (about one display frame). */
  const MIRROR_FLUSH_MS = 16;
  /* Logical canvas size shared with lws' own test page: coordinates on the wire are in this
   * space whatever size the canvas is shown at. */
  const MIRROR_W = 480;
  const MIRROR_H = 300;
  /* Upper bounds on what the status renderer walks, so a large or hostile document cannot
   * freeze the page. */
  const STATUS_MAX_DEPTH = 4;
  const STATUS_MAX_ROWS = 64;
  const ECHO_LOG_LINES = 8;

  const $ = (id) => document.getElementById(id);

  const params = new URLSearchParams(location.search);

  /** ws[s]://host:port/ for our sockets. */
  function wsBase() {
    const override = params.get('ws');
    if (override && /^wss?:\/\/[^/?#]+/.test(override)) {
      return override.replace(/\/*$/, '/');
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/`;
  }

  /** The http[s] origin matching the WebSocket origin (for the forms under ?ws=). */
  function httpOriginOf(ws) {
    return ws.replace(/^ws/, 'http').replace(/\/$/, '');
  }

  const demo = {
    transport: null,
    wsBase: wsBase(),
    links: {},
    counter: { value: null, messages: 0 },
    mirror: { sent: 0, received: 0, last: '', colour: null, width: MIRROR_W, height: MIRROR_H },
    status: { messages: 0, youWorker: null, last: null },
    echo: { sent: 0, received: 0 },
  };
  window.lwsdDemo = demo;

  /**
   * One WebSocket with a subprotocol, its state shown in a badge, reconnecting with
   * backoff after a close.
   */
  class Link {
    constructor(name, protocols, badge, handlers) {
      this.name = name;
      this.protocols = protocols;
      this.badge = badge;
      this.handlers = handlers;
      this.ws = null;
      this.state = 'idle';
      this.protocol = '';
      this.retryMs = RETRY_FIRST_MS;
      this.opens = 0;
      demo.links[name] = this;
    }

    connect() {
      this.show('connecting', 'connecting…');
      let ws;
      try {
        ws = new WebSocket(demo.wsBase, this.protocols);
      } catch (e) {
        this.show('closed', `cannot connect: ${e.message}`);
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        this.retryMs = RETRY_FIRST_MS;
        this.opens += 1;
        this.protocol = ws.protocol;
        this.show('open', 'open');
        this.badge.title = [ws.protocol, ws.extensions].filter(Boolean).join(', ');
        if (this.handlers.open) this.handlers.open();
      };
      ws.onmessage = (ev) => this.handlers.message(ev.data);
      ws.onclose = (ev) => {
        this.ws = null;
        const wait = this.retryMs;
        this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
        const why = ev.code === 1006 ? 'no connection' : `closed ${ev.code}`;
        this.show('closed', `${why} · retry in ${Math.round(wait / 1000)} s`);
        if (this.handlers.close) this.handlers.close();
        setTimeout(() => this.connect(), wait);
      };
    }

    show(state, text) {
      this.state = state;
      this.badge.dataset.state = state;
      this.badge.textContent = text;
    }

    send(data) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(data);
      return true;
    }
  }

  /* ---- dumb-increment-protocol ---- */

  function setupCounter() {
    const out = $('counter-value');
    const link = new Link('counter', 'dumb-increment-protocol', $('counter-state'), {
      message(text) {
        const n = Number.parseInt(text, 10);
        if (!Number.isFinite(n)) return;
        demo.counter.value = n;
        demo.counter.messages += 1;
        out.value = String(n);
      },
    });
    $('counter-reset').addEventListener('click', () => link.send('reset\n'));
    link.connect();
  }

  /* ---- lws-mirror-protocol ---- */

  function setupMirror() {
    const canvas = $('mirror-canvas');
    const ctx = canvas.getContext('2d');
    const scale = canvas.width / MIRROR_W;
    const count = $('mirror-count');
    const offline = $('mirror-offline');
    const strokes = new Map(); /* pointerId -> last point, one per finger */
    let pending = '';
    let flushTimer = 0;

    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';

    const colourInputs = document.querySelectorAll('input[name=colour]');
    const pickColour = () => {
      const checked = document.querySelector('input[name=colour]:checked');
      demo.mirror.colour = checked ? checked.value : '#1f2937';
    };
    colourInputs.forEach((r) => r.addEventListener('change', pickColour));
    pickColour();

    const link = new Link('mirror', 'lws-mirror-protocol', $('mirror-state'), {
      open() { offline.hidden = true; canvas.classList.remove('is-offline'); },
      close() { offline.hidden = false; canvas.classList.add('is-offline'); },
      message(text) {
        if (typeof text !== 'string') return; /* the protocol is text; ignore binary */
        demo.mirror.received += 1;
        demo.mirror.last = text.slice(0, 200);
        count.value = String(demo.mirror.received);
        drawCommands(text);
      },
    });

    /* Other pages' colours come from the network: only #rgb/#rrggbb are accepted. */
    const COLOUR = /^#(?:[0-9a-fA-F]{3}){1,2}$/;

    function drawCommands(text) {
      for (const cmd of text.split(';')) {
        const f = cmd.trim().split(/\s+/);
        if (f[0] === 'd' && f.length === 6) {
          const [x1, y1, x2, y2] = f.slice(2).map(Number);
          if (!COLOUR.test(f[1]) || ![x1, y1, x2, y2].every(Number.isFinite)) continue;
          ctx.strokeStyle = f[1];
          ctx.lineWidth = 2.5;
          ctx.beginPath();
          ctx.moveTo(x1, y1);
          ctx.lineTo(x2, y2);
          ctx.stroke();
        } else if (f[0] === 'c' && f.length === 5) {
          /* circles, as libwebsockets-test-client draws them */
          const [x, y, r] = f.slice(2).map(Number);
          if (!COLOUR.test(f[1]) || ![x, y, r].every(Number.isFinite) || r < 0) continue;
          ctx.strokeStyle = f[1];
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.arc(x, y, r, 0, Math.PI * 2);
          ctx.stroke();
        }
      }
    }

    function flush() {
      flushTimer = 0;
      if (pending && link.send(pending)) demo.mirror.sent += 1;
      pending = '';
    }

    function queue(cmd) {
      if (pending.length + cmd.length > MIRROR_MAX_MESSAGE) flush();
      pending += cmd;
      if (!flushTimer) flushTimer = setTimeout(flush, MIRROR_FLUSH_MS);
    }

    function toCanvas(ev) {
      const r = canvas.getBoundingClientRect();
      const x = Math.round(((ev.clientX - r.left) * MIRROR_W) / r.width);
      const y = Math.round(((ev.clientY - r.top) * MIRROR_H) / r.height);
      return { x: Math.min(Math.max(x, 0), MIRROR_W), y: Math.min(Math.max(y, 0), MIRROR_H) };
    }

    canvas.addEventListener('pointerdown', (ev) => {
      if (ev.button !== 0) return;
      canvas.setPointerCapture(ev.pointerId);
      strokes.set(ev.pointerId, toCanvas(ev));
      ev.preventDefault();
    });
    canvas.addEventListener('pointermove', (ev) => {
      const last = strokes.get(ev.pointerId);
      if (!last) return;
      /* coalesced events keep fast strokes smooth where the browser merges moves */
      const evs = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [];
      for (const e of evs.length ? evs : [ev]) {
        const p = toCanvas(e);
        const prev = strokes.get(ev.pointerId);
        if (p.x === prev.x && p.y === prev.y) continue;
        queue(`d ${demo.mirror.colour} ${prev.x} ${prev.y} ${p.x} ${p.y};`);
        strokes.set(ev.pointerId, p);
      }
    });
    const end = (ev) => {
      if (strokes.delete(ev.pointerId)) flush();
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);

    $('mirror-clear').addEventListener('click', () => {
      ctx.save();
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.restore();
    });

    /** True when any pixel within `r` logical units of (x, y) has ink (for the test). */
    demo.mirror.inkAround = (x, y, r) => {
      const px = ctx.getImageData(
        Math.max(0, Math.round((x - r) * scale)), Math.max(0, Math.round((y - r) * scale)),
        Math.round(2 * r * scale) + 1, Math.round(2 * r * scale) + 1,
      ).data;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) return true;
      return false;
    };

    canvas.classList.add('is-offline');
    link.connect();
  }

  /* ---- lws-server-status ---- */

  function formatDuration(s) {
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s % 60} s`;
    return `${s} s`;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function scalar(v) {
    if (v === null) return 'null';
    if (typeof v === 'object') return Array.isArray(v) ? `[${v.length} items]` : '{…}';
    return String(v);
  }

  /** Any JSON value as nested tables; arrays of objects as one table with a column per key. */
  function render(v, depth, you) {
    if (v === null || typeof v !== 'object' || depth >= STATUS_MAX_DEPTH) {
      return el('span', 'value', scalar(v));
    }
    if (Array.isArray(v)) {
      if (v.length === 0) return el('span', 'muted', 'none');
      if (v.every((x) => x && typeof x === 'object' && !Array.isArray(x))) {
        const keys = [...new Set(v.slice(0, STATUS_MAX_ROWS).flatMap(Object.keys))];
        const t = el('table', 'rows');
        const hr = t.createTHead().insertRow();
        for (const k of keys) { const th = el('th', '', k); th.scope = 'col'; hr.append(th); }
        const body = t.createTBody();
        for (const row of v.slice(0, STATUS_MAX_ROWS)) {
          const tr = body.insertRow();
          if (you !== null && row.index === you) tr.className = 'you';
          for (const k of keys) tr.insertCell().append(render(row[k], depth + 1, null));
        }
        if (v.length > STATUS_MAX_ROWS) t.createCaption().textContent = `first ${STATUS_MAX_ROWS} of ${v.length}`;
        return t;
      }
      const ul = el('ul', 'list');
      for (const x of v.slice(0, STATUS_MAX_ROWS)) { const li = el('li'); li.append(render(x, depth + 1, null)); ul.append(li); }
      return ul;
    }
    const t = el('table', 'kv');
    for (const [k, x] of Object.entries(v).slice(0, STATUS_MAX_ROWS)) {
      const tr = t.insertRow();
      const th = el('th', '', k);
      th.scope = 'row';
      tr.append(th);
      tr.insertCell().append(render(x, depth + 1, k === 'workers' ? you : null));
    }
    return t;
  }

  function setupStatus() {
    const body = $('status-body');
    let lastText = '';
    /* lwsd names it lws-server-status; libwebsockets-test-server's is lws-status. */
    const link = new Link('status', ['lws-server-status', 'lws-status'], $('status-state'), {
      message(text) {
        if (typeof text !== 'string') return;
        demo.status.messages += 1;
        if (text === lastText) return;
        lastText = text;
        let doc;
        try {
          doc = JSON.parse(text);
        } catch (e) {
          body.replaceChildren(el('p', 'muted', `not JSON: ${text.slice(0, 120)}`));
          return;
        }
        demo.status.last = doc;
        const you = doc && doc.you && Number.isInteger(doc.you.worker) ? doc.you.worker : null;
        demo.status.youWorker = you;
        $('served-by').hidden = you === null;
        $('you-worker').textContent = you === null ? '' : String(you);

        /* lwsd's fields get a summary line; everything else (and all of lws' JSON) is
         * shown as it comes. */
        const parts = [];
        const rest = doc && typeof doc === 'object' && !Array.isArray(doc) ? { ...doc } : doc;
        if (you !== null) {
          const p = el('p', 'headline');
          p.append('this page is served by ', el('strong', '', `worker ${you}`));
          parts.push(p);
          delete rest.you;
        }
        if (typeof doc.server === 'string' && Number.isInteger(doc.uptime_s)) {
          parts.push(el('p', 'meta', `${doc.server}, up ${formatDuration(doc.uptime_s)}`));
          delete rest.server;
          delete rest.uptime_s;
        }
        parts.push(render(rest, 0, you));
        body.replaceChildren(...parts);
      },
    });
    link.connect();
  }

  /* ---- lws-echo ---- */

  function setupEcho() {
    const log = $('echo-log');
    const input = $('echo-input');
    const add = (cls, who, text) => {
      const li = el('li', cls);
      li.append(el('span', 'who', who), el('span', 'text', text));
      log.prepend(li);
      while (log.children.length > ECHO_LOG_LINES) log.lastElementChild.remove();
    };
    const link = new Link('echo', 'lws-echo', $('echo-state'), {
      message(text) {
        demo.echo.received += 1;
        add('in', 'back', typeof text === 'string' ? text : '[binary]');
      },
    });
    $('echo-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (link.send(input.value)) {
        demo.echo.sent += 1;
        add('out', 'sent', input.value);
      } else {
        add('err', 'not sent', 'not connected');
      }
    });
    link.connect();
  }

  /* ---- form POST ---- */

  function setupForms() {
    /* Under ?ws= the page comes from elsewhere: post to the server the sockets go to. */
    if (params.get('ws')) {
      const target = `${httpOriginOf(demo.wsBase)}/formtest`;
      document.querySelectorAll('form.post-form').forEach((f) => { f.action = target; });
    }
    const file = $('post-file');
    file.addEventListener('change', () => {
      const f = file.files && file.files[0];
      $('post-file-info').textContent = f ? `${f.name}: ${f.size.toLocaleString()} bytes` : '';
    });
  }

  function init() {
    const nav = performance.getEntriesByType('navigation')[0];
    demo.transport = (nav && nav.nextHopProtocol) || 'unknown';
    $('transport').textContent = demo.transport;
    $('ws-origin').textContent = demo.wsBase.replace(/\/$/, '');
    setupCounter();
    setupMirror();
    setupStatus();
    setupEcho();
    setupForms();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
