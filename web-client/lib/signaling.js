// The signaling socket: join first, keep alive, and reconnect with the same token while the
// server keeps the seat (30 s), so a patient on a shaky network never has to reload.
//
// States: 'connecting' (first attempt) -> 'open' -> 'reconnecting' (socket lost, retrying) ->
// 'open' again, or 'lost' (gave up) ; 'closed' once the session is over, refused or replaced,
// or close() was called.
//
// A hang-up or a leave is kept until the server acknowledges it (`ended`, or a `refused` saying
// the session is over): if the socket is lost first, it is replayed after the reconnection with
// `ago_ms`, how long ago it was made (performance.now(), monotonic), so that the record closes
// the call when it was made. close() waits for that acknowledgement, silently.

/** @typedef {import('./types.js').ServerMsg} ServerMsg */
/** @typedef {import('./types.js').ClientMsg} ClientMsg */
/** @typedef {'connecting' | 'open' | 'reconnecting' | 'lost' | 'closed'} SocketState */

/** How long the server keeps a dropped seat; past it reconnecting is pointless. */
export const SEAT_GRACE_MS = 30_000;
const PING_EVERY_MS = 20_000;
/** No frame at all for this long (pongs included) means the socket is dead even if not closed. */
const SILENCE_LIMIT_MS = 45_000;
/** After the browser says it is back online, a pong must come this fast or we reconnect. */
const PROBE_MS = 2_500;
const RETRY_DELAYS_MS = [0, 300, 700, 1_500, 2_500, 4_000];
/** Messages after which the server closes the socket for good. */
const FINAL = new Set(['refused', 'ended', 'replaced']);

/** @returns {string} wss://HOST/ws on the page's own origin */
export function defaultSocketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

export class Signaling {
  /**
   * @param {object} opts
   * @param {string} opts.token the join token (sent in the first message, never in the URL)
   * @param {(msg: ServerMsg) => void} opts.onMessage
   * @param {(state: SocketState) => void} opts.onState
   * @param {string} [opts.url]
   * @param {string} [opts.deviceKind]
   * @param {() => Record<string, number>} [opts.joinExtra] extra `join` fields, asked at each
   *   connection (the media loss a rejoining client reports: `media_lost_ago_ms`)
   */
  constructor(opts) {
    this.token = opts.token;
    this.onMessage = opts.onMessage;
    this.onState = opts.onState;
    this.url = opts.url ?? defaultSocketUrl();
    this.deviceKind = opts.deviceKind ?? 'web';
    this.joinExtra = opts.joinExtra ?? (() => ({}));
    /** @type {{type: 'hangup' | 'leave', at: number} | null} sent, not yet acknowledged */
    this.pending = null;
    /** close() was called with a hang-up still unacknowledged: deliver it, tell nobody. */
    this.settling = false;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {SocketState} */
    this.state = 'connecting';
    this.final = false;
    this.attempt = 0;
    /** When the current outage began (ms since epoch), or 0. */
    this.lostSince = 0;
    this.lastFrameAt = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.probeTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.pingTimer = undefined;
    this.onOnline = () => this.probe();
    this.onOffline = () => {
      // The browser knows the network is gone: say so at once rather than after a timeout.
      if (this.state === 'open') this.drop();
    };
  }

  start() {
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.pingTimer = setInterval(() => this.tick(), PING_EVERY_MS);
    this.connect();
  }

  /** @param {ClientMsg} msg @returns {boolean} whether it was sent */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== 'open') return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Sends `hangup` or `leave` and keeps it until the server acknowledges it (replayed with
   * `ago_ms` after a reconnection). @param {'hangup' | 'leave'} type
   * @returns {boolean} whether it went out now (if not, it goes after the reconnection)
   */
  sendFinal(type) {
    this.pending = { type, at: performance.now() };
    return this.send({ type });
  }

  /** Milliseconds since the unacknowledged hang-up or leave was made, or null. */
  pendingAgoMs() {
    return this.pending ? Math.max(0, Math.round(performance.now() - this.pending.at)) : null;
  }

  replayPending() {
    const ago = this.pendingAgoMs();
    if (this.pending && ago !== null && this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: this.pending.type, ago_ms: ago }));
    }
  }

  /** Stops for good (after a hangup, or when the page leaves); an unacknowledged hang-up is
   * still delivered first, without telling the page anything more. */
  close() {
    if (this.pending && !this.final) {
      this.settling = true;
      if (this.state !== 'open') this.connect();
      return;
    }
    this.final = true;
    this.teardown();
    this.setState('closed');
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.detach();
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      // The token goes in the first message, never in the URL.
      ws.send(JSON.stringify({ type: 'join', token: this.token, device: { kind: this.deviceKind }, ...this.joinExtra() }));
      this.attempt = 0;
      this.lostSince = 0;
      this.setState('open');
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws || typeof ev.data !== 'string') return;
      this.lastFrameAt = Date.now();
      clearTimeout(this.probeTimer);
      /** @type {ServerMsg} */
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === 'welcome') this.replayPending();
      if (FINAL.has(msg.type)) {
        this.final = true;
        this.pending = null;
      }
      if (this.settling) {
        if (this.final) this.teardown();
        return;
      }
      this.onMessage(msg);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.final) {
        this.teardown();
        this.setState('closed');
      } else {
        this.scheduleRetry();
      }
    };
    ws.onerror = () => {
      // onclose follows and decides.
    };
  }

  /** Abandons the current socket without waiting for a closing handshake, then reconnects. */
  drop() {
    if (this.final) return;
    this.detach();
    this.scheduleRetry();
  }

  detach() {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close();
    } catch {
      // Already closing.
    }
  }

  scheduleRetry() {
    if (this.final) return;
    const now = Date.now();
    if (!this.lostSince) this.lostSince = now;
    if (now - this.lostSince > SEAT_GRACE_MS) {
      this.teardown();
      this.setState('lost');
      return;
    }
    this.setState(this.state === 'connecting' && this.attempt === 0 ? 'connecting' : 'reconnecting');
    const delay = RETRY_DELAYS_MS[Math.min(this.attempt, RETRY_DELAYS_MS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    // Offline: wait for the 'online' event (probe) or the next timed try, whichever comes first.
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Back online: check the socket really works, or reconnect now. */
  probe() {
    if (this.final) return;
    if (this.state !== 'open' || !this.ws) {
      this.attempt = 0;
      this.connect();
      return;
    }
    this.send({ type: 'ping' });
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => this.drop(), PROBE_MS);
  }

  tick() {
    if (this.state !== 'open') return;
    if (Date.now() - this.lastFrameAt > SILENCE_LIMIT_MS) {
      this.drop();
      return;
    }
    this.send({ type: 'ping' });
  }

  teardown() {
    clearTimeout(this.retryTimer);
    clearTimeout(this.probeTimer);
    clearInterval(this.pingTimer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.detach();
  }

  /** @param {SocketState} state */
  setState(state) {
    if (state === this.state) return;
    this.state = state;
    if (!this.settling) this.onState(state);
  }
}
