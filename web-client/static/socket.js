// The WebSocket half of the public contract (DESIGN.md §7), kept alive.
//
// A socket that goes quiet is given up at once, never waited for: on the
// browser's `offline` event, or when a `pong` does not come back in time, the
// page drops the socket, shows `reconnecting…`, and dials again with backoff.
// Chromium keeps an offline socket "open" while holding its frames back, so
// waiting for `close` would leave the page believing it is connected.

/** How often a `ping` goes out once connected, at most. */
const PING_EVERY_MS = 5000;
/** How long a `pong` may take before the socket counts as dead. */
const PONG_TIMEOUT_MS = 4000;
/** Backoff between attempts: doubles from the first to the last, with jitter. */
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 8000;
/** Close codes after which dialling again cannot help (DESIGN.md §7). */
const TOKEN_EXPIRED = 4003;

export class ChatSocket {
  /**
   * `url()` gives the address to dial (it carries the token);
   * `onFrame(frame)` gets every server frame; `onState('connected' |
   * 'reconnecting')` each change; `onSessionEnd(code)` a close that only a
   * new login can cure.
   */
  constructor({ url, onFrame, onState, onSessionEnd }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onSessionEnd = onSessionEnd;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempts = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.onOffline = () => this.drop('offline');
    this.onOnline = () => this.redialNow();
  }

  /** Whether frames can be sent now (welcome received, socket open). */
  get connected() {
    return this.ready && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('offline', this.onOffline);
    window.addEventListener('online', this.onOnline);
    this.onState('reconnecting');
    this.dial();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('offline', this.onOffline);
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    this.detach(1000);
  }

  /** Sends `frame` if connected; false when it could not go out. */
  send(frame) {
    if (!this.connected) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  dial() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRedial();
      return;
    }
    this.ws = ws;
    this.ready = false;
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.type === 'welcome') {
        this.ready = true;
        this.attempts = 0;
        this.startHeartbeat(frame.heartbeat_ms);
        this.onState('connected');
      } else if (frame.type === 'pong') {
        clearTimeout(this.pongTimer);
        this.pongTimer = null;
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      if (event.code === TOKEN_EXPIRED) {
        this.detach(1000);
        this.onSessionEnd('token_expired');
        return;
      }
      this.drop(`closed ${event.code}`);
    };
    ws.onerror = () => {
      if (ws === this.ws) this.drop('error');
    };
  }

  /** Gives the current socket up at once and dials again later. */
  drop(_why) {
    if (this.stopped) return;
    this.detach(1000);
    this.onState('reconnecting');
    this.scheduleRedial();
  }

  redialNow() {
    if (this.stopped || this.ws !== null) return;
    this.attempts = 0;
    this.dial();
  }

  scheduleRedial() {
    clearTimeout(this.retryTimer);
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempts);
    this.attempts += 1;
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => {
      // Offline, dialling only fails: the `online` event dials instead.
      if (navigator.onLine === false) {
        this.scheduleRedial();
        return;
      }
      this.dial();
    }, delay);
  }

  /** Forgets the current socket: its late events are ignored from now on. */
  detach(code) {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
    this.ready = false;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(code); } catch { /* already closing */ }
    }
  }

  startHeartbeat(heartbeatMs) {
    clearInterval(this.pingTimer);
    // Well inside the server's interval, so the server never times us out.
    const every = Math.max(1000, Math.min(PING_EVERY_MS, (Number(heartbeatMs) || 20000) / 2));
    this.pingTimer = setInterval(() => {
      if (this.pongTimer !== null) return; // one ping in flight at a time
      if (!this.send({ type: 'ping' })) return;
      this.pongTimer = setTimeout(() => this.drop('missed pong'), PONG_TIMEOUT_MS);
    }, every);
  }
}
