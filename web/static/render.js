/**
 * The ONE renderer of the answer contract, shared by the website widget and the kiosk.
 *
 * A bot message is {text, buttons?: [{title, payload}], custom?: {answer_id, kind,
 * citation?}} (omt/channels/socketio.py). What differs between channels is in CHANNELS;
 * `createRenderer(channel)` gives that channel's renderer.
 *
 * Safety: every string that came over the wire goes into the page through textContent
 * (or a DOM attribute), never as HTML.
 */

import TEXTS from "./texts.js";

/**
 * What each channel adds to the shared rendering. The words (the emergency card's
 * tap-to-call links, the kiosk's notes) are data: knowledge/web.yml, served as texts.js.
 */
export const CHANNELS = Object.freeze({
  widget: Object.freeze({ name: "widget", ...TEXTS.widget }),
  kiosk: Object.freeze({ name: "kiosk", ...TEXTS.kiosk }),
});

// A card's link only ever calls or texts a number (the server checks this too).
const CALL_HREF = /^(tel|sms):\+?[0-9]{3,15}$/;

const HANDOFF_IDS = new Set(["handoff"]);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function visuallyHidden(text) {
  return el("span", "visually-hidden", text);
}

/** Paragraphs of a reply: the text's blank lines are paragraph breaks. */
export function paragraphs(text) {
  return String(text ?? "")
    .split(/\n\s*\n/)
    .map((part) => part.trim())
    .filter(Boolean);
}

/** "2020-11-11" → "November 11, 2020" (the date as the text states it); else as given. */
export function formatDate(iso) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(iso ?? ""));
  if (!match) return String(iso ?? "");
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return date.toLocaleDateString("en-US", { timeZone: "UTC", year: "numeric", month: "long", day: "numeric" });
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * What this channel adds to a safety card: its own entry for the answer id, else its
 * parent's (`emergency.after_treatment` → `emergency`); `{note, links}`.
 */
export function safetyCard(channel, answerId) {
  const cards = isObject(channel.safety) ? channel.safety : {};
  const id = typeof answerId === "string" ? answerId : "";
  const card = cards[id] ?? cards[id.split(".")[0]] ?? cards.emergency;
  return {
    note: typeof card?.note === "string" ? card.note : "",
    links: Array.isArray(card?.links) ? card.links.filter((l) => isObject(l) && CALL_HREF.test(String(l.href))) : [],
  };
}

/** Tap-to-call and tap-to-text links: real links, so a phone dials and the keyboard reaches them. */
function callLinks(links) {
  const group = el("div", "omt-call");
  for (const link of links) {
    const a = el("a", "omt-call__link", link.label);
    a.href = link.href;
    group.append(a);
  }
  return group;
}

/**
 * The "Source" disclosure. In view: publisher, reviewer and review date. Inside: the
 * article's title and section, and the quoted passage the answer rests on.
 */
export function renderCitation(citation) {
  const details = el("details", "omt-source");
  const summary = el("summary", "omt-source__summary");
  const line = el("span", "omt-source__line", `${citation.publisher ?? ""}, reviewed by ${citation.reviewed_by ?? ""} on `);
  const reviewed = el("time", "", formatDate(citation.reviewed_on));
  reviewed.dateTime = String(citation.reviewed_on ?? "");
  line.append(reviewed);
  summary.append(el("span", "omt-source__label", "Source"), line);
  details.append(summary);

  const facts = el("dl", "omt-source__facts");
  for (const [label, value] of [
    ["Article", citation.title],
    ["Section", citation.section],
  ]) {
    if (value) facts.append(el("dt", "", label), el("dd", "", value));
  }
  details.append(facts);

  const quotes = Array.isArray(citation.quotes) ? citation.quotes : [];
  if (quotes.length) {
    details.append(el("p", "omt-source__quoted", "In the article's words:"));
    for (const quote of quotes) {
      const block = el("blockquote", "omt-source__quote");
      block.append(el("p", "", quote));
      details.append(block);
    }
  }
  return details;
}

/** Normalise what arrived (storage or socket) into {from: "bot", text, buttons, custom}. */
export function botEntry(message) {
  const msg = isObject(message) ? message : {};
  const buttons = Array.isArray(msg.buttons)
    ? msg.buttons
        .filter((b) => isObject(b) && typeof b.payload === "string")
        .map((b) => ({ title: String(b.title ?? b.payload), payload: b.payload }))
    : [];
  return {
    from: "bot",
    text: typeof msg.text === "string" ? msg.text : "",
    buttons,
    custom: isObject(msg.custom) ? msg.custom : {},
  };
}

/**
 * The renderer for one channel ("widget" or "kiosk"):
 *   user(text) → node; bot(entry, {onQuickReply, withButtons}) → node.
 */
export function createRenderer(channelName) {
  const channel = CHANNELS[channelName];
  if (!channel) throw new Error(`unknown channel ${channelName}`);

  function user(text) {
    const node = el("div", "omt-msg omt-msg--user");
    node.append(visuallyHidden("You said: "), el("span", "omt-msg__text", text));
    return node;
  }

  function bot(message, { onQuickReply = null, withButtons = true } = {}) {
    const entry = botEntry(message);
    const custom = entry.custom;
    const kind = ["knowledge", "service", "safety"].includes(custom.kind) ? custom.kind : "service";
    const node = el("div", `omt-msg omt-msg--bot omt-msg--${kind}`);
    if (typeof custom.answer_id === "string") node.dataset.answerId = custom.answer_id;
    node.append(visuallyHidden("Assistant: "));

    const safety = kind === "safety";
    const card = safety ? safetyCard(channel, custom.answer_id) : null;
    if (safety) {
      // Distinct in more than colour: a heading word, an icon, a border; and announced at once.
      node.setAttribute("role", "alert");
      const flag = el("p", "omt-msg__flag");
      flag.append(el("span", "omt-msg__flag-icon", "!"), document.createTextNode(" Urgent"));
      flag.firstChild.setAttribute("aria-hidden", "true");
      node.append(flag);
      // The channel's own first step leads (the kiosk: go to the front desk now).
      if (card.note) node.append(el("p", "omt-msg__note", card.note));
    }

    let parts = paragraphs(entry.text);
    const citation = kind === "knowledge" && isObject(custom.citation) ? custom.citation : null;
    // The text ends with a plain "Source: …" line for clients that ignore `custom`; the
    // disclosure below says the same with the quotes, so the line is not shown twice.
    if (citation && parts.length > 1 && /^Source:/.test(parts[parts.length - 1])) parts = parts.slice(0, -1);
    for (const part of parts) node.append(el("p", "omt-msg__text", part));

    if (citation) node.append(renderCitation(citation));
    if (card?.links.length) node.append(callLinks(card.links));
    if (HANDOFF_IDS.has(custom.answer_id) && channel.handoff_note) {
      node.append(el("p", "omt-msg__note", channel.handoff_note));
    }

    if (withButtons && entry.buttons.length) {
      const group = el("div", "omt-quick");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "Suggested questions");
      for (const button of entry.buttons) {
        const b = el("button", "omt-quick__button", button.title);
        b.type = "button";
        b.dataset.payload = button.payload;
        if (onQuickReply) b.addEventListener("click", () => onQuickReply(button));
        group.append(b);
      }
      node.append(group);
    }
    return node;
  }

  /** Quick replies belong to the latest answer only: drop older ones. */
  function clearQuickReplies(container) {
    for (const group of container.querySelectorAll(".omt-quick")) group.remove();
  }

  return Object.freeze({ channel, user, bot, clearQuickReplies });
}
