// The Socket.IO connection to a signalling gateway, with failover across the gateways /config.json lists.
//
// The page connects to the first gateway and moves to the next one when a connection fails, drops,
// or the gateway asks its clients to reconnect elsewhere (it is draining).

const BROWSER_ID_COOKIE = "calln_bid";

// Reconnect backoff: starts short so a drain is barely noticed, capped so a dead server is not hammered.
const FIRST_RETRY_MS = 300;
const MAX_RETRY_MS = 5000;

// How long one connection attempt may take before the next gateway is tried.
const CONNECT_TIMEOUT_MS = 5000;

// Server events the page listens to; handlers are re-attached to every new socket.
const SERVER_EVENTS = [
  "hello", "waiting", "matched", "signal", "chat", "typing", "game", "partner_left", "online", "banned",
  "error", "reconnect", "stopped", "reported", "resume_token", "ice_servers",
];

// A random id kept in a session cookie (no expiry, so it ends with the browser session).
// The gateway uses it only so that two tabs of one browser are never paired with each other.
export function browserId() {
  const found = document.cookie.split("; ").find((pair) => pair.startsWith(`${BROWSER_ID_COOKIE}=`));
  const existing = found?.slice(BROWSER_ID_COOKIE.length + 1);
  if (existing && /^[A-Za-z0-9_-]{16,64}$/.test(existing)) {
    return existing;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const id = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${BROWSER_ID_COOKIE}=${id}; Path=/; SameSite=Strict${secure}`;
  return id;
}

export class Signalling {
  // `gateways` is the ordered URL list from /config.json; `auth()` returns the Socket.IO auth payload.
  constructor(gateways, auth, handlers) {
    this.gateways = gateways;
    this.auth = auth;
    this.handlers = handlers;
    this.index = 0;
    this.socket = null;
    this.wanted = false;
    this.failures = 0;
    this.retryTimer = 0;
  }

  get connected() {
    return this.socket !== null && this.socket.connected;
  }

  connect() {
    this.wanted = true;
    if (this.socket === null && this.retryTimer === 0) {
      this.open();
    }
  }

  // Disconnect and stop reconnecting until `connect()` is called again.
  close() {
    this.wanted = false;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    this.closeSocket();
  }

  // Reconnect to the same gateway, e.g. after the auth payload changed.
  reconnect() {
    if (!this.wanted) {
      return;
    }
    this.closeSocket();
    this.open();
  }

  emit(event, data) {
    if (!this.connected) {
      return false;
    }
    if (data === undefined) {
      this.socket.emit(event);
    } else {
      this.socket.emit(event, data);
    }
    return true;
  }

  open() {
    window.clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    const url = this.gateways[this.index % this.gateways.length];
    // Only the WebSocket transport: long-polling would need CORS on every gateway request.
    const socket = window.io(url, {
      transports: ["websocket"],
      reconnection: false,
      timeout: CONNECT_TIMEOUT_MS,
      auth: (callback) => callback(this.auth()),
    });
    this.socket = socket;

    socket.on("connect", () => {
      socket.wasConnected = true;
      this.failures = 0;
      this.handlers.connected?.(url);
    });
    socket.on("connect_error", (error) => {
      // A banned address is refused at connect; the refusal carries the ban's end.
      if (error?.data?.code === "banned" && socket === this.socket) {
        this.handlers.banned?.(error.data);
      }
      this.onLost(socket, `connect_error: ${error?.message ?? "unknown"}`);
    });
    socket.on("disconnect", (reason) => {
      if (reason !== "io client disconnect") {
        this.onLost(socket, reason);
      }
    });
    for (const event of SERVER_EVENTS) {
      socket.on(event, (data) => this.onServerEvent(socket, event, data));
    }
  }

  onServerEvent(socket, event, data) {
    if (socket !== this.socket) {
      return;
    }
    if (event === "reconnect") {
      // The gateway is draining: it saved this session for the next gateway, so move there now.
      this.onLost(socket, "gateway draining", { immediate: true, moving: true });
      return;
    }
    this.handlers[event]?.(data ?? {});
  }

  // `moving` is true when the gateway asked us to move; the session (and its call) can then resume.
  onLost(socket, reason, { immediate = false, moving = false } = {}) {
    if (socket !== this.socket) {
      return;
    }
    this.closeSocket();
    this.handlers.disconnected?.(reason, { moving, wasConnected: socket.wasConnected === true });
    if (!this.wanted) {
      return;
    }
    this.index += 1;
    this.failures += 1;
    const delay = immediate ? 0 : Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (this.failures - 1));
    this.retryTimer = window.setTimeout(() => this.open(), delay);
  }

  closeSocket() {
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      socket.removeAllListeners();
      socket.disconnect();
    }
  }
}
