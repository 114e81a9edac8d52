"""Render one turn's bot messages as ONE SMS body: the only place SMS formatting lives.

A chat reply's message carries, beside its text, the role and knowledge id of each of its
paragraphs (omt.core.replies, `PARAGRAPHS_KEY`): an answer, a caveat, the notice, the
source line, a service text. Each is rendered from the knowledge by its id as its short
`sms` form, so the SMS says what the chat says, only shorter, whatever the chat text
looks like. A paragraph without a short form (the article's own words for "tell me
more", what the article does not cover) is its chat text. The body is GSM-7 and fits one
budget: a single curly quote would make Twilio send UCS-2 (70 characters a part), and a
long body arrives as many parts, out of order on some phones.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import yaml

from omt.core.contract import is_safety
from omt.core.knowledge import KNOWLEDGE_DIR, Knowledge, KnowledgeError, get_knowledge
from omt.core.replies import PARAGRAPHS_KEY, Paragraph, paragraph_text

logger = logging.getLogger(__name__)

SMS_BUDGET = 320  # GSM-7 characters in one reply
SMS_TEXTS_FILE = KNOWLEDGE_DIR / "sms.yml"
MIN_SHORTENED = 40  # a paragraph cut shorter than this says nothing useful: drop it instead
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€")  # sent as escape + character: two each
_ASCII_FOLD = str.maketrans(
    {
        **dict.fromkeys("‘’‚‛′`´", "'"),
        **dict.fromkeys("“”„‟″«»", '"'),
        **dict.fromkeys("‐‑‒–—―−•", "-"),
        "…": "...",
        "\t": " ",
        "\r": "",
    }
)
_SENTENCE_END = re.compile(r"[.!?][\"')]*\s")

# What a line is decides what may be cut or dropped to fit: emergency, notice and urgent
# lines never; a citation or a gap line is never cut, and dropped only when no answer is
# left; a body line is cut, then dropped.
Role = Literal["emergency", "notice", "urgent", "citation", "gap", "body"]
_KEPT: frozenset[Role] = frozenset({"emergency", "notice", "urgent"})
# A reply paragraph's role (omt.core.replies.Role) -> its line's role here; the rest are body.
_LINE_ROLES: Mapping[str, Role] = {
    "emergency": "emergency",
    "notice": "notice",
    "urgent": "urgent",
    "source": "citation",
    "gap": "gap",
}


@dataclass(frozen=True)
class SmsTexts:
    """The SMS line's own words (knowledge/sms.yml), placeholders filled."""

    start: str
    help: str
    too_long: str
    media_only: str
    forget_confirm: str
    forget_done: str
    menu_first: str
    menu_next: str
    menu_separator: str


@dataclass(frozen=True)
class Sms:
    """One SMS body, and how many buttons its numbered list shows (a reply "3" needs a 3)."""

    body: str
    buttons_shown: int


@dataclass(frozen=True)
class _Answer:
    """One bot reply of the turn: its paragraphs (chat text, and roles and ids where sent) and button titles."""

    answer_id: str | None
    texts: tuple[str, ...]
    paragraphs: tuple[Paragraph, ...] | None
    titles: tuple[str, ...]


@dataclass(frozen=True)
class _Part:
    """One line of the SMS, with what it is (decides what may be dropped or cut)."""

    text: str
    role: Role


def to_gsm7(text: str) -> str:
    """Transliterate to the GSM-7 alphabet; drop what has no equivalent (emoji)."""
    kept: list[str] = []
    for char in text.translate(_ASCII_FOLD):
        if char in GSM7_BASIC or char in GSM7_EXTENSION:
            kept.append(char)
        else:  # "á" -> "a", non-breaking space -> " ", emoji -> nothing
            kept.extend(c for c in unicodedata.normalize("NFKD", char) if c in GSM7_BASIC)
    return "\n".join(" ".join(line.split()) for line in "".join(kept).split("\n")).strip()


def gsm7_length(text: str) -> int:
    """Length as the carrier counts it: extension characters ({, [, €, ...) count twice."""
    return sum(2 if char in GSM7_EXTENSION else 1 for char in text)


def sms_form(knowledge: Knowledge, paragraph: Paragraph) -> str:
    """A reply paragraph's SMS text: its knowledge `sms` form, else its chat text (KeyError: unknown id)."""
    role, key = paragraph.role, paragraph.id
    if role == "answer":
        return knowledge.entry(key).sms
    fixed = {"notice": knowledge.notice, "source": knowledge.source_line, "urgent": knowledge.urgent}
    if role in fixed:
        return knowledge.fill(fixed[role].sms)
    if role in ("service", "emergency"):
        return knowledge.fill(knowledge.replies[key].sms)
    return " ".join(paragraph_text(knowledge, paragraph).split())  # quotes and gaps have no shorter form


def _structure(raw: Any) -> tuple[Paragraph, ...] | None:
    """The paragraphs sent with a message, or None when it sent none (or sent them malformed)."""
    if not isinstance(raw, list):
        return None
    paragraphs = tuple(p for p in map(Paragraph.parse, raw) if p is not None)
    return paragraphs if len(paragraphs) == len(raw) else None


def _answers(messages: Iterable[Mapping[str, Any]]) -> list[_Answer]:
    """Group collected messages per reply: Rasa sends its texts and buttons, then its payload."""
    answers: list[_Answer] = []
    texts: list[str] = []
    structure: tuple[Paragraph, ...] | None = None
    titles: tuple[str, ...] = ()
    for message in messages:
        text = message.get("text")
        if isinstance(text, str):
            texts.extend(p for p in (" ".join(p.split()) for p in text.split("\n\n")) if p)
        if PARAGRAPHS_KEY in message:
            structure = _structure(message[PARAGRAPHS_KEY])
        if message.get("buttons"):
            titles = tuple(str(button.get("title", "")) for button in message["buttons"])
        custom = message.get("custom")
        if isinstance(custom, Mapping):
            answers.append(_Answer(str(custom.get("answer_id") or "") or None, tuple(texts), structure, titles))
            texts, structure, titles = [], None, ()
    if texts or titles:
        answers.append(_Answer(None, tuple(texts), structure, titles))
    return answers


def _lines(answer: _Answer, knowledge: Knowledge) -> list[_Part]:
    """An answer's SMS lines: from its paragraphs' ids where it sent them, else its chat text as it is."""
    emergency = is_safety(answer.answer_id or "") or any(p.role == "emergency" for p in answer.paragraphs or ())
    if answer.paragraphs is not None:
        try:
            return [
                _Part(to_gsm7(sms_form(knowledge, p)), "emergency" if emergency else _LINE_ROLES.get(p.role, "body"))
                for p in answer.paragraphs
            ]
        except KeyError as exc:  # another knowledge version's id: say it, and send the chat text
            logger.warning("SMS: paragraph id %s is not in the knowledge; sent the chat text", exc)
    return [_Part(to_gsm7(text), "emergency" if emergency else "body") for text in answer.texts]


def menu_line(titles: Sequence[str], texts: SmsTexts) -> str:
    """Buttons as a numbered list: "Reply 1 for X, 2 for Y" (the patient answers "2")."""
    items = [
        (texts.menu_first if number == 1 else texts.menu_next).format(number=number, title=title)
        for number, title in enumerate(titles, start=1)
    ]
    return texts.menu_separator.join(items)


def _join(parts: Sequence[_Part], menu: str = "") -> str:
    return "\n".join([*(p.text for p in parts if p.text), *([menu] if menu else [])])


def _prefix(text: str, limit: int) -> str:
    """The longest start of `text` within `limit` GSM-7 characters."""
    used = 0
    for index, char in enumerate(text):
        used += gsm7_length(char)
        if used > limit:
            return text[:index]
    return text


def shorten(text: str, limit: int) -> str:
    """Cut at the last whole sentence that fits, else at a word boundary, marked "..."."""
    if gsm7_length(text) <= limit:
        return text
    head = _prefix(text, limit)
    ends = [m.end() for m in _SENTENCE_END.finditer(text[: len(head) + 1])]
    if ends and ends[-1] >= len(head) // 2:
        return text[: ends[-1]].rstrip()
    words = _prefix(text, limit - 3).rsplit(" ", 1)[0]
    return words.rstrip(" ,;:-") + "..."


def _without_last_sentence(text: str) -> str | None:
    """`text` less its last sentence; None when it is a single sentence."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].rstrip() if ends else None


def _cap(parts: Sequence[_Part], budget: int) -> int:
    """The longest body line that brings the SMS within budget when every body line is cut to it."""
    lengths = [gsm7_length(p.text) for p in parts if p.role == "body"]
    fixed = gsm7_length(_join(parts)) - sum(lengths)
    return next((cap for cap in range(max(lengths), 0, -1) if fixed + sum(min(n, cap) for n in lengths) <= budget), 0)


def _shorten_once(parts: list[_Part], budget: int) -> list[_Part] | None:
    """One step towards the budget, gentlest first; None when only kept text is left.

    Whole sentences go first (from the longest line); then every body line is cut to one
    common length, so no line is cut to nothing; then a body line goes. Emergency, notice
    and urgent lines are never touched; gap and citation lines are never cut, and go
    (gaps first) only once no answer is left.
    """
    bodies = [i for i, p in enumerate(parts) if p.role == "body"]
    if not bodies:
        droppable = [i for i, p in enumerate(parts) if p.role == "gap"] or [
            i for i, p in enumerate(parts) if p.role not in _KEPT
        ]
        return parts[: droppable[-1]] + parts[droppable[-1] + 1 :] if droppable else None
    multi = [(gsm7_length(parts[i].text), i) for i in bodies if _without_last_sentence(parts[i].text)]
    if multi:
        index = max(multi)[1]
        return [
            *parts[:index],
            replace(parts[index], text=_without_last_sentence(parts[index].text) or ""),
            *parts[index + 1 :],
        ]
    cap = _cap(parts, budget)
    if cap >= MIN_SHORTENED:
        return [replace(p, text=shorten(p.text, cap)) if p.role == "body" else p for p in parts]
    return parts[: bodies[-1]] + parts[bodies[-1] + 1 :]


def _fit(parts: list[_Part], menus: Sequence[str], budget: int) -> Sms:
    """Within budget: fewer buttons, then shorter text; the notice is never dropped.

    The first-turn notice says what the assistant is and what to do in an emergency, so
    the answer gives way to it (shortened here, not split: one SMS arrives whole and in
    order). `menus[n]` is the numbered list of the first n buttons.
    """
    for shown in range(len(menus) - 1, -1, -1):
        body = _join(parts, menus[shown])
        if gsm7_length(body) <= budget:
            return Sms(body, shown)
    while gsm7_length(_join(parts)) > budget:
        shorter = _shorten_once(parts, budget)
        if shorter is None:
            break
        parts = shorter
    return Sms(_join(parts), 0)


def compose_sms(
    messages: Iterable[Mapping[str, Any]], knowledge: Knowledge, texts: SmsTexts, budget: int = SMS_BUDGET
) -> Sms:
    """ONE SMS for a turn's collected bot messages, and how many of its buttons it lists.

    The emergency reply comes first and whole; knowledge answers become their short form
    plus the compact source line; the last reply's buttons become a numbered list; the
    contract's `custom` payload is never shown.
    """
    lines = [(answer, _lines(answer, knowledge)) for answer in _answers(messages)]
    lines.sort(key=lambda pair: not any(p.role == "emergency" for p in pair[1]))  # stable: the rest keeps its order
    answers = [answer for answer, _ in lines]
    parts = [part for _, answer_parts in lines for part in answer_parts]
    # Said once: the notice already says to call 911, and an emergency line says that and
    # what the assistant is (the notice's job).
    if any(p.role == "emergency" for p in parts):
        parts = [p for p in parts if p.role not in ("notice", "urgent")]
    elif any(p.role == "notice" for p in parts):
        parts = [p for p in parts if p.role != "urgent"]
    titles = [to_gsm7(t) for t in next((a.titles for a in reversed(answers) if a.titles), ())]
    return _fit(parts, [menu_line(titles[:shown], texts) for shown in range(len(titles) + 1)], budget)


def render_sms(
    messages: Iterable[Mapping[str, Any]], knowledge: Knowledge, texts: SmsTexts, budget: int = SMS_BUDGET
) -> str:
    """ONE SMS body for a turn's collected bot messages ("" if they hold no text)."""
    return compose_sms(messages, knowledge, texts, budget).body


def render_text(text: str, budget: int = SMS_BUDGET) -> str:
    """One of the line's own texts as an SMS (keyword replies, refusals, the apology)."""
    return _fit([_Part(to_gsm7(text), "body")], [""], budget).body


def load_sms_texts(knowledge: Knowledge, path: Path = SMS_TEXTS_FILE) -> SmsTexts:
    """Load knowledge/sms.yml; a missing text, bad placeholder or over-long text stops the process."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeError(f"{path}: cannot read: {exc}") from exc
    raw = raw if isinstance(raw, dict) else {}
    keywords, menu = raw.get("keywords") or {}, raw.get("menu") or {}
    forget = raw.get("forget") or {}
    said = {"start": keywords.get("start"), "help": keywords.get("help")}
    said |= {"too_long": raw.get("too_long"), "media_only": raw.get("media_only")}
    said |= {"forget_confirm": forget.get("confirm"), "forget_done": forget.get("done")}
    templates = {"menu_first": menu.get("first"), "menu_next": menu.get("next")}
    missing = [name for name, value in {**said, **templates}.items() if not value]
    if missing:
        raise KnowledgeError(f"{path}: missing {', '.join(missing)}")
    try:
        filled = {name: knowledge.fill(" ".join(str(value).split())) for name, value in said.items()}
        for template in templates.values():
            str(template).format(number=1, title="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise KnowledgeError(f"{path}: unknown placeholder {exc}") from exc
    too_long = [name for name, text in filled.items() if gsm7_length(to_gsm7(text)) > SMS_BUDGET]
    if too_long:
        raise KnowledgeError(f"{path}: longer than {SMS_BUDGET} GSM-7 characters: {', '.join(too_long)}")
    return SmsTexts(
        **filled,
        menu_first=str(templates["menu_first"]),
        menu_next=str(templates["menu_next"]),
        menu_separator=str(menu.get("separator", ", ")),
    )


@lru_cache(maxsize=1)
def get_sms_texts() -> SmsTexts:
    """The process-wide SMS texts, loaded (and checked) once."""
    return load_sms_texts(get_knowledge())
