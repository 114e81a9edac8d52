/**
 * The front-desk kiosk: full screen, topic buttons first, typing optional.
 *
 * Privacy on a shared screen: after `idle` seconds without a touch or key it asks "Are
 * you still there?" and offers "I'm still here" for `warning` seconds (WCAG 2.2.1 asks
 * for at least 20 s); then it clears the screen and sessionStorage and starts a new
 * conversation with a new session id, and the server erases the old one (conversation.js
 * `reset()`). "Start over" does the same at once.
 *
 * Timeouts: <body data-idle-seconds data-warning-seconds> (set by the page server), or
 * ?idle=SECONDS&warning=SECONDS in the URL (tests use short ones).
 */

import { Conversation, showProgress } from "./conversation.js";
import { createRenderer } from "./render.js";

const STORAGE_KEY = "omt-kiosk";

function seconds(param, attribute, fallback) {
  const raw = new URLSearchParams(location.search).get(param) ?? document.body.dataset[attribute];
  const value = Number(raw);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

function start() {
  const $ = (id) => document.getElementById(id);
  const ui = {
    startScreen: $("start"),
    startTitle: $("start-title"),
    log: $("log"),
    typing: $("typing"),
    status: $("status"),
    form: $("form"),
    input: $("question"),
    startOver: $("start-over"),
    dialog: $("idle"),
    countdown: $("idle-countdown"),
    stillHere: $("still-here"),
  };
  const idleMs = seconds("idle", "idleSeconds", 60) * 1000;
  const warningMs = seconds("warning", "warningSeconds", 30) * 1000;
  const render = createRenderer("kiosk");
  const conversation = new Conversation({ socketUrl: document.body.dataset.socketUrl ?? "", storageKey: STORAGE_KEY });

  // ---- transcript -------------------------------------------------------------------
  function showStartScreen(visible) {
    ui.startScreen.hidden = !visible;
    ui.log.hidden = visible;
  }

  function show(entry, { latest = true } = {}) {
    showStartScreen(false);
    render.clearQuickReplies(ui.log);
    const node = entry.from === "user" ? render.user(entry.text) : render.bot(entry, { onQuickReply, withButtons: latest });
    ui.log.append(node);
    ui.log.scrollTop = Math.max(0, node.offsetTop - 16);
  }

  function ask(message, shown) {
    ui.status.textContent = "";
    conversation.send(message, shown);
    armIdle();
  }

  function onQuickReply(button) {
    ask(button.payload, button.title);
    ui.input.focus();
  }

  // ---- idle timeout -------------------------------------------------------------------
  let idleTimer = 0;
  let warningTimer = 0;
  let tickTimer = 0;

  function somethingToClear() {
    return conversation.messages.length > 0 || ui.input.value.trim() !== "";
  }

  function armIdle() {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(warn, idleMs);
  }

  function disarm() {
    clearTimeout(idleTimer);
    clearTimeout(warningTimer);
    clearInterval(tickTimer);
  }

  function warn() {
    if (!somethingToClear()) return;
    const deadline = Date.now() + warningMs;
    const tick = () => {
      ui.countdown.textContent = String(Math.max(0, Math.ceil((deadline - Date.now()) / 1000)));
    };
    tick();
    tickTimer = setInterval(tick, 250);
    warningTimer = setTimeout(clearAll, warningMs);
    ui.dialog.showModal();
    ui.stillHere.focus();
  }

  function stillHere() {
    disarm();
    if (ui.dialog.open) ui.dialog.close();
    armIdle();
  }

  /** Clear screen and storage; new conversation, new session id; back to the topics. */
  function clearAll() {
    disarm();
    if (ui.dialog.open) ui.dialog.close();
    conversation.reset();
    ui.log.replaceChildren();
    ui.input.value = "";
    ui.status.textContent = "";
    ui.typing.hidden = true;
    showStartScreen(true);
    ui.startTitle.focus();
  }

  function activity() {
    if (ui.dialog.open) return; // only "I'm still here" (or Escape) answers the warning
    if (somethingToClear()) armIdle();
  }

  for (const type of ["pointerdown", "keydown", "input", "wheel", "touchstart"]) {
    document.addEventListener(type, activity, { passive: true, capture: true });
  }
  ui.stillHere.addEventListener("click", stillHere);
  ui.dialog.addEventListener("cancel", (event) => {
    event.preventDefault(); // Escape means "I'm still here", not "close and clear"
    stillHere();
  });

  // ---- wiring -------------------------------------------------------------------------
  for (const button of document.querySelectorAll("button.topic")) {
    button.addEventListener("click", () => ask(button.dataset.payload, button.textContent.trim()));
  }
  ui.startOver.addEventListener("click", clearAll);
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) return;
    ui.input.value = "";
    ask(text, text);
  });

  conversation.addEventListener("message", (event) => show(event.detail));
  showProgress(conversation, ui, {
    slow: "The assistant is taking longer than usual. Please try again, or ask the front desk.",
    offline: "The assistant is not available right now. Please ask the front desk.",
  });

  const stored = conversation.messages;
  showStartScreen(stored.length === 0);
  stored.forEach((entry, i) => show(entry, { latest: i === stored.length - 1 }));
  if (stored.length) armIdle();
  conversation.connect();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start, { once: true });
else start();
