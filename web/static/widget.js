/**
 * The website chat widget. Embed with one tag (the page server's / shows it):
 *
 *   <script type="module" src="https://ASSISTANT/static/widget.js"
 *           data-socket-url="https://RASA"></script>
 *
 * It builds its own UI inside a shadow root (so the clinic site's CSS and ours don't
 * mix), loads its stylesheet from next to this file, and talks to Rasa's socket.io
 * channel through conversation.js; render.js draws the messages.
 */

import { Conversation, showProgress } from "./conversation.js";
import { createRenderer } from "./render.js";

const STORAGE_KEY = "omt-widget";

function thisScript() {
  const here = import.meta.url;
  return (
    Array.from(document.querySelectorAll("script[src]")).find((s) => s.src === here) ??
    document.querySelector("script[data-socket-url]")
  );
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function chatIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("omt-icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M4 4h16v12H9l-5 4z");
  svg.append(path);
  return svg;
}

function build(root) {
  const stylesheet = el("link", { rel: "stylesheet", href: new URL("./widget.css", import.meta.url).href });
  const launcher = el("button", {
    type: "button",
    class: "omt-launcher",
    "aria-expanded": "false",
    "aria-controls": "omt-panel",
  });
  launcher.append(chatIcon(), el("span", {}, "Questions about OMT?"));

  const panel = el("section", { id: "omt-panel", class: "omt-panel", "aria-labelledby": "omt-title" });
  panel.hidden = true;
  const header = el("div", { class: "omt-header" });
  const title = el("h2", { id: "omt-title", class: "omt-title" }, "Clinic assistant");
  // Erases the conversation here and on the server (conversation.js `reset()`).
  const clear = el("button", { type: "button", class: "omt-clear" }, "Clear conversation");
  const close = el("button", { type: "button", class: "omt-close", "aria-label": "Close chat" });
  close.append(el("span", { "aria-hidden": "true" }, "×"));
  header.append(title, clear, close);

  const log = el("div", {
    class: "omt-log",
    role: "log",
    "aria-live": "polite",
    "aria-label": "Conversation",
    tabindex: "0",
  });
  const typing = el("p", { class: "omt-typing", "aria-hidden": "true" }, "The assistant is answering…");
  typing.hidden = true;
  const status = el("p", { class: "omt-status", role: "status" });

  const form = el("form", { class: "omt-form", autocomplete: "off" });
  const label = el("label", { for: "omt-input" }, "Type your question");
  const row = el("div", { class: "omt-form__row" });
  const input = el("input", { id: "omt-input", type: "text", maxlength: "500", autocomplete: "off" });
  const send = el("button", { type: "submit", class: "omt-send" }, "Send");
  row.append(input, send);
  form.append(label, row);

  panel.append(header, log, typing, status, form);
  root.append(stylesheet, launcher, panel);
  return { stylesheet, launcher, panel, clear, close, log, typing, status, form, input };
}

function start() {
  const script = thisScript();
  const socketUrl = script?.dataset.socketUrl;
  const host = document.createElement("div");
  host.className = "omt-widget-host";
  document.body.append(host);
  const ui = build(host.attachShadow({ mode: "open" }));
  const render = createRenderer("widget");

  if (!socketUrl) {
    ui.status.textContent = "The chat is not set up on this page (no data-socket-url).";
  }
  const conversation = new Conversation({ socketUrl: socketUrl ?? "", storageKey: STORAGE_KEY });

  function scrollTo(node) {
    ui.log.scrollTop = Math.max(0, node.offsetTop - 8);
  }

  function show(entry, { latest = true } = {}) {
    let node;
    if (entry.from === "user") {
      render.clearQuickReplies(ui.log);
      node = render.user(entry.text);
    } else {
      render.clearQuickReplies(ui.log);
      node = render.bot(entry, { onQuickReply: quickReply, withButtons: latest });
    }
    ui.log.append(node);
    scrollTo(node);
  }

  function quickReply(button) {
    conversation.send(button.payload, button.title);
    ui.input.focus();
  }

  function setOpen(open, { focus = true } = {}) {
    ui.panel.hidden = !open;
    ui.launcher.setAttribute("aria-expanded", String(open));
    conversation.ui.open = open;
    conversation.save();
    if (!open) return;
    conversation.connect();
    if (!conversation.ui.greeted && conversation.messages.length === 0) {
      // The greeting (with the one-time notice and topic buttons) opens every conversation.
      conversation.ui.greeted = true;
      conversation.save();
      conversation.send("/greet", null);
    }
    if (focus) ui.input.focus();
  }

  conversation.messages.forEach((entry, i) => show(entry, { latest: i === conversation.messages.length - 1 }));
  conversation.addEventListener("message", (event) => show(event.detail));
  showProgress(conversation, ui, {
    slow: "The assistant is taking longer than usual. Please try again in a moment.",
    offline: "Can't reach the assistant right now. Trying again…",
  });

  ui.launcher.addEventListener("click", () => setOpen(ui.panel.hidden));
  ui.clear.addEventListener("click", () => {
    conversation.reset(); // new session id; the server erases the old conversation
    ui.log.replaceChildren();
    ui.typing.hidden = true;
    ui.input.value = "";
    setOpen(true); // greets the new conversation
    ui.status.textContent = "Conversation cleared.";
  });
  ui.close.addEventListener("click", () => {
    setOpen(false);
    ui.launcher.focus();
  });
  ui.panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      setOpen(false);
      ui.launcher.focus();
    }
  });
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) return;
    ui.input.value = "";
    ui.status.textContent = "";
    conversation.send(text);
  });

  // Reveal only once styled, so the clinic page never flashes unstyled controls.
  host.hidden = true;
  const reveal = () => {
    host.hidden = false;
  };
  ui.stylesheet.addEventListener("load", reveal);
  ui.stylesheet.addEventListener("error", reveal);
  if (conversation.ui.open) setOpen(true, { focus: false });
  else if (conversation.messages.length) conversation.connect();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start, { once: true });
else start();
