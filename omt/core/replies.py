"""Build replies (text, buttons and the contract's `custom` payload) from the knowledge.

Pure functions: given the loaded knowledge and what the patient asked, return a Reply.
Actions only decide *which* reply; channels only decide *how it looks*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from omt.core.contract import KNOWLEDGE_IDS, SAFETY_REPLIES, is_safety, kind_of, parent_id
from omt.core.knowledge import Knowledge

# Population/condition topics whose statement always accompanies an answer that
# mentions them (a question about babies, pregnancy or arthritis gets the article's
# statement about them, whatever the main topic).
CAVEAT_TOPICS = ("who_can_get", "pregnancy", "bone_joint_conditions")
MAX_BUTTONS = 4


@dataclass(frozen=True)
class Button:
    """A quick reply: a readable title and the message it sends back."""

    title: str
    payload: str

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass(frozen=True)
class Reply:
    """One turn's answer: exactly one contract payload, plus text and buttons."""

    answer_id: str
    text: str
    buttons: tuple[Button, ...] = ()
    citation: dict[str, Any] | None = None
    notice: bool = False  # the one-time notice leads `text`

    def custom(self) -> dict[str, Any]:
        """The contract's payload: answer_id, kind, and citation on knowledge answers."""
        payload: dict[str, Any] = {"answer_id": self.answer_id, "kind": kind_of(self.answer_id)}
        if self.citation is not None:
            payload["citation"] = self.citation
        return payload

    @property
    def topics(self) -> list[str]:
        """Knowledge topics offered as buttons, in order (for "the second one")."""
        return [t for b in self.buttons if (t := topic_of_payload(b.payload))]


def topic_payload(topic: str) -> str:
    """The button payload that asks for one knowledge topic: its intent, `/<topic>`."""
    return f"/{topic}"


def topic_of_payload(payload: str) -> str | None:
    """The knowledge topic a button payload asks for, if any."""
    topic = payload[1:] if payload.startswith("/") else ""
    return topic if topic in KNOWLEDGE_IDS else None


def topic_buttons(knowledge: Knowledge, topics: Iterable[str], exclude: Sequence[str] = ()) -> tuple[Button, ...]:
    """Readable topic titles as quick replies, without duplicates."""
    seen: list[str] = []
    for topic in topics:
        base = parent_id(topic)
        if base in knowledge.entries and base not in seen and base not in exclude:
            seen.append(base)
    return tuple(Button(knowledge.entries[t].title, topic_payload(t)) for t in seen[:MAX_BUTTONS])


def _handoff_button(knowledge: Knowledge) -> Button:
    return Button(knowledge.buttons["talk_to_person"], "/handoff")


def _something_else_button(knowledge: Knowledge) -> Button:
    return Button(knowledge.buttons["something_else"], "/capabilities")


def _paragraphs(knowledge: Knowledge, answer_id: str, verbatim: bool = False) -> list[str]:
    """An entry's answer (or its quotes, for "tell me more"), then what the article does not cover."""
    entry = knowledge.entry(answer_id)
    body = " ".join(f"“{q.strip()}”" for q in entry.quotes) if verbatim else entry.answer
    return [body, entry.gap] if entry.gap else [body]


def knowledge_reply(
    knowledge: Knowledge, topic: str, mentioned: Iterable[str] = (), verbatim: bool = False, question: str = ""
) -> Reply:
    """A cited answer for `topic`, with the statement of any population/condition mentioned.

    `verbatim` answers "tell me more": the article's own words instead of the summary,
    or the topic's finer answer where it has one (the source's reference list). A
    `question` that asks for a finer answer by its words gets it.
    """
    topic = knowledge.finer_for(topic, question) if question else topic
    entry = knowledge.entry(topic)
    if verbatim and entry.more:
        topic, entry, verbatim = entry.more, knowledge.entry(entry.more), False
    caveats = [t for t in dict.fromkeys(mentioned) if t in CAVEAT_TOPICS and t != parent_id(topic)]
    quotes = list(entry.quotes)
    parts = _paragraphs(knowledge, topic, verbatim)
    for caveat in caveats:
        parts.extend(_paragraphs(knowledge, caveat))
        quotes.extend(q for q in knowledge.entries[caveat].quotes if q not in quotes)
    parts.append(knowledge.fill(knowledge.source_line.text))
    citation = knowledge.citation(topic)
    citation["quotes"] = quotes
    return Reply(
        answer_id=topic,
        text="\n\n".join(parts),
        buttons=topic_buttons(knowledge, entry.related, exclude=[parent_id(topic)]),
        citation=citation,
    )


def _service_text(knowledge: Knowledge, name: str) -> str:
    """A service reply's text; the `urgent` line closes the ones marked so."""
    spec = knowledge.replies[name]
    text = knowledge.fill(spec.text)
    return f"{text}\n\n{knowledge.fill(knowledge.urgent.text)}" if spec.urgent else text


def service_reply(knowledge: Knowledge, name: str, topics: Iterable[str] = (), answer_id: str | None = None) -> Reply:
    """A service reply by its name in service.yml, with topic buttons where it offers them."""
    spec = knowledge.replies[name]
    buttons = list(topic_buttons(knowledge, [*topics, *spec.topics]))
    if spec.offer_handoff:
        buttons.append(_handoff_button(knowledge))
    return Reply(answer_id=answer_id or name, text=_service_text(knowledge, name), buttons=tuple(buttons))


def not_covered_reply(knowledge: Knowledge, nearest: Sequence[str], answer_id: str = "not_covered") -> Reply:
    """Say plainly the article does not cover it (`answer_id`: plain or a finer `not_covered.<sub>`).

    The plain reply offers the covered topics closest to the question; the finer ones
    offer what their wording names (the clinic, or what the article says OMT can treat).
    """
    spec = knowledge.replies[answer_id]
    topics: list[str] = []
    if spec.offer_nearest:
        topics = [t for t in nearest if t in KNOWLEDGE_IDS][:3] or list(knowledge.replies["capabilities"].topics[:3])
    return service_reply(knowledge, answer_id, topics=topics)


def fallback_reply(knowledge: Knowledge, candidates: Sequence[str], misses: int) -> Reply:
    """ "Did you mean…?" with the likely topics; after two misses in a row, the handoff."""
    if misses >= 2:
        return service_reply(knowledge, "fallback_handoff", answer_id="fallback")
    topics = [t for t in candidates if t in KNOWLEDGE_IDS][:3] or list(knowledge.replies["capabilities"].topics[:3])
    buttons = (*topic_buttons(knowledge, topics), _something_else_button(knowledge))
    return Reply(answer_id="fallback", text=_service_text(knowledge, "fallback"), buttons=buttons)


def personal_advice_reply(knowledge: Knowledge, topic: str | None) -> Reply:
    """No diagnosis, no dose: refer to their DO, plus the general cited fact where one fits."""
    base = service_reply(knowledge, "personal_advice")
    if topic is None:
        return base
    fact = knowledge_reply(knowledge, topic)
    return Reply(
        answer_id=fact.answer_id,
        text=f"{base.text}\n\n{fact.text}",
        buttons=(*fact.buttons[: MAX_BUTTONS - 1], _handoff_button(knowledge)),
        citation=fact.citation,
    )


def emergency_reply(knowledge: Knowledge, key: str) -> Reply:
    """The safety reply for the screener's (or the classifier's) `key`: alone, first, no buttons, no notice.

    `key` is "emergency", "crisis" (988) or "after_treatment" (a warning sign after OMT); it
    names the wording in service.yml and picks the answer id (`emergency`, `emergency.crisis`,
    `emergency.after_treatment`), so that the web can offer the right number. An unknown key
    gets the 911 reply: the safety path never fails.
    """
    name = key if key in SAFETY_REPLIES else "emergency"
    return Reply(answer_id=SAFETY_REPLIES[name], text=knowledge.fill(knowledge.replies[name].text))


def with_notice(knowledge: Knowledge, reply: Reply) -> Reply:
    """Lead the conversation's first reply with the one-time notice (never an emergency)."""
    if is_safety(reply.answer_id):
        return reply
    return Reply(
        answer_id=reply.answer_id,
        text=f"{knowledge.fill(knowledge.notice.text)}\n\n{reply.text}",
        buttons=reply.buttons,
        citation=reply.citation,
        notice=True,
    )
