/**
 * One conversation with the assistant over Rasa's socket.io channel, shared by the widget
 * and the kiosk.
 *
 * - The session id (Rasa's sender id) is random per browser session: made here with
 *   crypto.getRandomValues, kept in sessionStorage only, and replaced by `reset()`.
 * - The transcript is kept in sessionStorage, nowhere else (no cookies, no localStorage),
 *   so it survives a reload of the tab and is gone when the tab closes.
 * - `reset()` also erases the old conversation on the server: the next connection sends
 *   the socket.io `forget` event for each session id left behind (kept in `state.forget`
 *   until the server acknowledges, so going offline or reloading does not lose it).
 * - Each message goes with a random `message_id` and stays in `state.pending` (kept in
 *   sessionStorage) until its answer (the reply with the `custom` payload) arrives. Every
 *   new connection sends the pending messages again with the same ids: the server handles
 *   an id once and answers a resend with the first delivery's replies, each tagged with
 *   the id, so replies already shown are skipped and nothing is asked or shown twice.
 * - Events: "message" (detail: an entry {from: "user"|"bot", ...}), "status" (detail:
 *   "connecting" | "online" | "offline"), "waiting" (detail: true | false), "slow".
 */

// The socket.io client (npm, copied by `make web`); its UMD build sets globalThis.io.
import "./vendor/socket.io.min.js";
import { botEntry } from "./render.js";

const MAX_STORED = 80;
const SLOW_REPLY_MS = 20000;

/** 32 random hex characters: the format the server accepts as a session id. */
export function newSessionId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function readStorage(key) {
  try {
    const value = JSON.parse(sessionStorage.getItem(key) ?? "null");
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

export class Conversation extends EventTarget {
  /** @param {{socketUrl: string, storageKey: string}} options */
  constructor({ socketUrl, storageKey }) {
    super();
    this.socketUrl = socketUrl;
    this.storageKey = storageKey;
    this.socket = null;
    this.ready = false;
    this.slowTimer = 0;
    const stored = readStorage(storageKey);
    this.state = stored && /^[0-9a-f]{32}$/.test(stored.sessionId ?? "") ? stored : this.freshState();
    if (!Array.isArray(this.state.messages)) this.state.messages = [];
    if (!this.state.ui || typeof this.state.ui !== "object") this.state.ui = {};
    if (!Array.isArray(this.state.forget)) this.state.forget = [];
    if (!Array.isArray(this.state.pending)) this.state.pending = [];
    this.save();
  }

  freshState() {
    return { sessionId: newSessionId(), messages: [], ui: {}, forget: [], pending: [] };
  }

  get messages() {
    return this.state.messages;
  }

  get sessionId() {
    return this.state.sessionId;
  }

  /** UI flags kept with the conversation (the widget's open state, the greeting sent). */
  get ui() {
    return this.state.ui;
  }

  save() {
    this.state.messages = this.state.messages.slice(-MAX_STORED);
    try {
      sessionStorage.setItem(this.storageKey, JSON.stringify(this.state));
    } catch {
      // Storage full or disabled: the conversation still works, it just won't survive a reload.
    }
  }

  emitEvent(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  connect() {
    if (this.socket || typeof globalThis.io !== "function") {
      if (!this.socket) this.emitEvent("status", "offline");
      return;
    }
    this.emitEvent("status", "connecting");
    // forceNew: after reset() the next socket must be a new connection, not a cached one.
    const socket = globalThis.io(this.socketUrl, { path: "/socket.io", forceNew: true, reconnectionDelayMax: 10000 });
    this.socket = socket;
    socket.on("connect", () => {
      this.ready = false;
      socket.emit("session_request", { session_id: this.state.sessionId });
    });
    socket.on("session_confirm", (id) => {
      if (socket !== this.socket) return;
      if (typeof id === "string" && /^[0-9a-f]{32}$/.test(id) && id !== this.state.sessionId) {
        this.state.sessionId = id;
        this.save();
      }
      this.ready = true;
      this.emitEvent("status", "online");
      this.sendForgets(socket);
      // Sent on an earlier connection and not answered yet, or typed while offline: (re)send.
      for (const pending of this.state.pending) {
        pending.seen = 0;
        this.emitUser(pending);
      }
    });
    socket.on("bot_uttered", (message) => {
      if (socket !== this.socket) return;
      if (!this.isNew(message)) {
        if (!this.state.pending.length) this.setWaiting(false); // a resend's replies, all shown before
        return;
      }
      const entry = botEntry(message);
      if (!entry.text && !entry.buttons.length) return;
      this.setWaiting(false);
      this.state.messages.push(entry);
      this.save();
      this.emitEvent("message", entry);
    });
    socket.on("disconnect", () => {
      if (socket !== this.socket) return;
      this.ready = false;
      this.emitEvent("status", "offline");
    });
    socket.on("connect_error", () => {
      if (socket === this.socket) this.emitEvent("status", "offline");
    });
  }

  /** @param {{id: string, text: string}} pending */
  emitUser(pending) {
    this.socket.emit("user_uttered", { message: pending.text, session_id: this.state.sessionId, message_id: pending.id });
  }

  /**
   * Whether a reply is to be shown: not when it answers a message no longer pending, nor
   * when a resend's replies repeat ones already shown (they come again in the same order).
   * The reply with the `custom` payload ends its message's turn.
   */
  isNew(message) {
    const id = message && typeof message === "object" ? message.message_id : undefined;
    if (typeof id !== "string") return true;
    const pending = this.state.pending.find((p) => p.id === id);
    if (!pending) return false;
    pending.seen = (pending.seen ?? 0) + 1;
    const fresh = pending.seen > (pending.shown ?? 0);
    if (fresh) pending.shown = pending.seen;
    if (message.custom && typeof message.custom === "object") {
      this.state.pending = this.state.pending.filter((p) => p !== pending);
    }
    this.save();
    return fresh;
  }

  setWaiting(waiting) {
    clearTimeout(this.slowTimer);
    if (waiting) this.slowTimer = setTimeout(() => this.emitEvent("slow"), SLOW_REPLY_MS);
    this.emitEvent("waiting", waiting);
  }

  /**
   * Send `message` (typed text, or a button's payload). `shown` is what the transcript
   * shows for it: the typed text, a button's title, or null for nothing (the greeting).
   */
  send(message, shown = message) {
    const text = String(message).trim();
    if (!text) return;
    if (shown !== null) {
      const entry = { from: "user", text: String(shown) };
      this.state.messages.push(entry);
      this.save();
      this.emitEvent("message", entry);
    }
    this.setWaiting(true);
    const pending = { id: newSessionId(), text, seen: 0, shown: 0 };
    this.state.pending.push(pending);
    this.save();
    if (this.ready && this.socket) this.emitUser(pending);
    this.connect();
  }

  /** Ask the server to erase each conversation left by `reset()`; drop an id once it acknowledges. */
  sendForgets(socket) {
    for (const sessionId of this.state.forget) {
      socket.emit("forget", { session_id: sessionId }, (ack) => {
        if (!ack?.forgotten) return; // kept: tried again on the next connection
        this.state.forget = this.state.forget.filter((id) => id !== sessionId);
        this.save();
      });
    }
  }

  /**
   * Forget everything: close the socket, clear storage, start again with a new session id,
   * and have the server erase the old conversation (sent once the new socket is confirmed).
   */
  reset() {
    const forget = [...this.state.forget, this.state.sessionId];
    this.close();
    try {
      sessionStorage.removeItem(this.storageKey);
    } catch {
      // nothing stored
    }
    this.state = this.freshState();
    this.state.forget = forget;
    this.save();
    this.connect();
  }

  close() {
    this.setWaiting(false);
    this.ready = false;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.removeAllListeners();
      socket.disconnect();
    }
  }
}

/**
 * The typing indicator and the status line, the same on every page: "slow" while a
 * reply is late, the page's own offline text while the socket is down, else nothing.
 */
export function showProgress(conversation, ui, texts) {
  conversation.addEventListener("waiting", (event) => {
    ui.typing.hidden = !event.detail;
    if (!event.detail && ui.status.textContent === texts.slow) ui.status.textContent = "";
  });
  conversation.addEventListener("slow", () => {
    ui.status.textContent = texts.slow;
  });
  conversation.addEventListener("status", (event) => {
    ui.status.textContent = event.detail === "offline" ? texts.offline : "";
  });
}
