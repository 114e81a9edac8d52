"""Build replies (text, buttons and the contract's `custom` payload) from the knowledge.

Pure functions: given the loaded knowledge and what the patient asked, return a Reply.
Actions only decide *which* reply; channels only decide *how it looks*.

A reply is made of paragraphs, each a knowledge text named by its role and id (the
answer `how_it_feels`, the `notice`, the service reply `handoff`…); the chat text is
those texts joined, and the list goes with the bot message under `PARAGRAPHS_KEY`, so
that a channel with its own forms (SMS) renders the same paragraphs from the knowledge
instead of reading the chat text back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence, get_args

from omt.core.contract import ALL_IDS, KNOWLEDGE_IDS, SAFETY_REPLIES, is_safety, kind_of, parent_id
from omt.core.knowledge import Knowledge

# Population/condition topics whose statement always accompanies an answer that
# mentions them (a question about babies, pregnancy or arthritis gets the article's
# statement about them, whatever the main topic).
CAVEAT_TOPICS = ("who_can_get", "pregnancy", "bone_joint_conditions")
# An own-case question naming one of these also gets the article's word on it, cited:
# "may need a gentler form of OMT", the pregnancy study. Not who_can_get: "people of every
# age and just about any condition can get OMT" reads as a yes to "what should I do for my
# son?" or "can you fix what's wrong with my baby?"; those get the referral, and the
# topic as a button the patient may tap.
PERSONAL_FACTS = ("pregnancy", "bone_joint_conditions")
MAX_BUTTONS = 4
# The bot message's key for its paragraphs' roles and ids: beside the contract's `custom`
# payload, never in it (the contract's fields are fixed); the web channels drop it.
PARAGRAPHS_KEY = "paragraphs"

# What a paragraph is, and so where its text lives: an entry's `answer`, its `quotes` (the
# article's own words, "tell me more"), its `gap`; the one-time `notice`, the `source` line
# and the `urgent` line; a `service` or `emergency` reply by its name in service.yml.
Role = Literal["answer", "quote", "gap", "notice", "source", "urgent", "service", "emergency"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of a reply: its role, and the knowledge key of its text (answer id or reply name)."""

    role: Role
    id: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "id": self.id}

    @classmethod
    def parse(cls, raw: Any) -> Paragraph | None:
        """A paragraph from its `as_dict` form; None for anything else."""
        if not isinstance(raw, Mapping):
            return None
        role, key = raw.get("role"), raw.get("id")
        return cls(role, key) if role in ROLES and isinstance(key, str) and key else None


def paragraph_text(knowledge: Knowledge, paragraph: Paragraph) -> str:
    """The chat text of a paragraph (KeyError for an id the knowledge does not have)."""
    role, key = paragraph.role, paragraph.id
    if role == "answer":
        return knowledge.entry(key).answer
    if role == "quote":
        return " ".join(f"“{q.strip()}”" for q in knowledge.entry(key).quotes)
    if role == "gap":
        return knowledge.entry(key).gap
    fixed = {"notice": knowledge.notice, "source": knowledge.source_line, "urgent": knowledge.urgent}
    return knowledge.fill((fixed[role] if role in fixed else knowledge.replies[key]).text)


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
    paragraphs: tuple[Paragraph, ...] = ()  # what `text` is made of, paragraph by paragraph

    def custom(self) -> dict[str, Any]:
        """The contract's payload: answer_id, kind, and citation on knowledge answers."""
        payload: dict[str, Any] = {"answer_id": self.answer_id, "kind": kind_of(self.answer_id)}
        if self.citation is not None:
            payload["citation"] = self.citation
        return payload

    def structure(self) -> list[dict[str, str]]:
        """The paragraphs' roles and ids, sent with the message under `PARAGRAPHS_KEY`."""
        return [p.as_dict() for p in self.paragraphs]

    def message(self) -> dict[str, Any]:
        """The bot message an action sends: text, buttons, the contract's payload, the paragraphs."""
        message: dict[str, Any] = {"text": self.text, "custom": self.custom(), PARAGRAPHS_KEY: self.structure()}
        if self.buttons:
            message["buttons"] = [b.as_dict() for b in self.buttons]
        return message

    @property
    def topics(self) -> list[str]:
        """Knowledge topics offered as buttons, in order."""
        return [t for b in self.buttons if (t := topic_of_payload(b.payload))]

    @property
    def options(self) -> list[str]:
        """The answer ids every button asks for, in order: what "the second one" or an SMS "2" picks."""
        return [a for b in self.buttons if (a := answer_of_payload(b.payload))]


def compose(
    knowledge: Knowledge,
    answer_id: str,
    paragraphs: Iterable[Paragraph],
    buttons: Sequence[Button] = (),
    citation: dict[str, Any] | None = None,
    notice: bool = False,
) -> Reply:
    """A reply whose text is its paragraphs' chat texts, one blank line apart."""
    kept = tuple(paragraphs)
    text = "\n\n".join(paragraph_text(knowledge, p) for p in kept)
    return Reply(answer_id, text, tuple(buttons), citation, notice, kept)


def topic_payload(topic: str) -> str:
    """The button payload that asks for one knowledge topic: its intent, `/<topic>`."""
    return f"/{topic}"


def topic_of_payload(payload: str) -> str | None:
    """The knowledge topic a button payload asks for, if any."""
    topic = answer_of_payload(payload)
    return topic if topic in KNOWLEDGE_IDS else None


def answer_of_payload(payload: str) -> str | None:
    """The answer id a button payload asks for (`/handoff` -> `handoff`), if any."""
    answer_id = payload[1:] if payload.startswith("/") else ""
    return answer_id if answer_id in ALL_IDS else None


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


def _paragraphs(knowledge: Knowledge, answer_id: str, verbatim: bool = False) -> list[Paragraph]:
    """An entry's answer (or its quotes, for "tell me more"), then what the article does not cover."""
    body = Paragraph("quote" if verbatim else "answer", answer_id)
    return [body, Paragraph("gap", answer_id)] if knowledge.entry(answer_id).gap else [body]


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
    parts.append(Paragraph("source", "source_line"))
    citation = knowledge.citation(topic)
    citation["quotes"] = quotes
    return compose(
        knowledge,
        topic,
        parts,
        buttons=topic_buttons(knowledge, entry.related, exclude=[parent_id(topic)]),
        citation=citation,
    )


def _service_paragraphs(knowledge: Knowledge, name: str) -> list[Paragraph]:
    """A service reply's paragraph; the `urgent` line closes the ones marked so."""
    own = Paragraph("service", name)
    return [own, Paragraph("urgent", "urgent")] if knowledge.replies[name].urgent else [own]


def service_reply(knowledge: Knowledge, name: str, topics: Iterable[str] = (), answer_id: str | None = None) -> Reply:
    """A service reply by its name in service.yml, with topic buttons where it offers them."""
    spec = knowledge.replies[name]
    buttons = list(topic_buttons(knowledge, [*topics, *spec.topics]))
    if spec.offer_handoff:  # the handoff takes one of the MAX_BUTTONS
        buttons = [*buttons[: MAX_BUTTONS - 1], _handoff_button(knowledge)]
    return compose(knowledge, answer_id or name, _service_paragraphs(knowledge, name), buttons)


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
    return compose(knowledge, "fallback", _service_paragraphs(knowledge, "fallback"), buttons)


def personal_fact(mentioned: Sequence[str]) -> str | None:
    """The topic whose cited caution an own-case question gets (PERSONAL_FACTS), if it names one."""
    return next((t for t in mentioned if t in PERSONAL_FACTS), None)


def personal_advice_reply(knowledge: Knowledge, mentioned: Sequence[str] = ()) -> Reply:
    """No diagnosis, no dose: refer to their DO; add the cited caution the article gives for a
    named condition (PERSONAL_FACTS), else offer the named topics as buttons."""
    topic = personal_fact(mentioned)
    if topic is None:
        return service_reply(knowledge, "personal_advice", topics=mentioned)
    base = service_reply(knowledge, "personal_advice")
    fact = knowledge_reply(knowledge, topic)
    return compose(
        knowledge,
        fact.answer_id,
        (*base.paragraphs, *fact.paragraphs),
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
    return compose(knowledge, SAFETY_REPLIES[name], [Paragraph("emergency", name)])


def with_notice(knowledge: Knowledge, reply: Reply) -> Reply:
    """Lead the conversation's first reply with the one-time notice (never an emergency)."""
    if is_safety(reply.answer_id):
        return reply
    return compose(
        knowledge,
        reply.answer_id,
        (Paragraph("notice", "notice"), *reply.paragraphs),
        buttons=reply.buttons,
        citation=reply.citation,
        notice=True,
    )
