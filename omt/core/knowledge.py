"""Load and validate the curated knowledge: the only place the assistant's words come from.

The files under `knowledge/` are checked when they load, and a bad file stops the
process: a wrong medical answer is worse than no answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from omt.core.contract import KNOWLEDGE_IDS, NOT_COVERED_IDS, SAFETY_REPLIES, SERVICE_IDS

REPO_ROOT = Path(__file__).resolve().parents[2]
KNOWLEDGE_DIR = REPO_ROOT / "knowledge"
ENTITY_TYPES = ("technique", "condition", "population")
# Every service answer of the contract, plus the variants some of them use, plus the safety replies.
SERVICE_REPLIES = (*SERVICE_IDS, *NOT_COVERED_IDS[1:], "fallback_handoff", *SAFETY_REPLIES, "error")
_QUOTE_FOLD = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "\u00a0": " "})


class KnowledgeError(ValueError):
    """The knowledge files break a rule; the message lists every problem found."""


def fold(text: str) -> str:
    """Fold whitespace, non-breaking spaces and curly quotes, so quotes compare fairly."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTE_FOLD)
    return " ".join(text.split())


@dataclass(frozen=True)
class Source:
    """The one reviewed article every knowledge answer rests on."""

    title: str
    publisher: str
    collection: str
    reviewed_by: str
    reviewed_on: str  # ISO date
    article_text: str

    @property
    def reviewed_on_words(self) -> str:
        day = dt.date.fromisoformat(self.reviewed_on)
        return f"{day:%B} {day.day}, {day.year}"

    @property
    def reviewed_month(self) -> str:
        return f"{dt.date.fromisoformat(self.reviewed_on):%b %Y}"

    def fields(self) -> dict[str, str]:
        """Placeholders that reply templates may use."""
        return {
            "publisher": self.publisher,
            "title": self.title,
            "reviewed_by": self.reviewed_by,
            "reviewed_on_words": self.reviewed_on_words,
            "reviewed_month": self.reviewed_month,
        }


@dataclass(frozen=True)
class Entry:
    """One knowledge topic: what the assistant says, and the article words behind it."""

    answer_id: str
    title: str
    section: str
    answer: str
    sms: str
    quotes: tuple[str, ...]
    synonyms: Mapping[str, tuple[str, ...]]
    related: tuple[str, ...]
    gap: str = ""  # what the article does not cover on this topic: said with every answer
    more: str | None = None  # the finer answer "tell me more" gives (`about_source.references`)
    asked_by: tuple[str, ...] = ()  # a finer answer's words in a question ("references")


@dataclass(frozen=True)
class ServiceReply:
    """A reply without medical content (greet, handoff, emergency, ...)."""

    text: str
    sms: str
    topics: tuple[str, ...] = ()
    offer_handoff: bool = False
    offer_nearest: bool = False  # also offer the topics closest to the question as buttons
    urgent: bool = False  # ends with service.yml's `urgent` line ("If this is urgent, call 911.")


@dataclass(frozen=True)
class Clinic:
    """Contact details for the handoff reply; edited per clinic in clinic.yml."""

    name: str
    phone: str
    hours: str

    def fields(self) -> dict[str, str]:
        return {"clinic_name": self.name, "phone": self.phone, "hours": self.hours}


@dataclass(frozen=True)
class Knowledge:
    """Everything loaded and checked: entries, service texts, clinic, source."""

    source: Source
    entries: Mapping[str, Entry]
    allowed_words: frozenset[str]
    replies: Mapping[str, ServiceReply]
    notice: ServiceReply
    source_line: ServiceReply
    urgent: ServiceReply
    buttons: Mapping[str, str]
    clinic: Clinic
    ordinals: Mapping[str, int]
    version: str
    scope_cues: tuple[str, ...] = ()  # phrases asking about a general topic's range (routing)
    finer: Mapping[str, Entry] = field(default_factory=dict)  # `<id>.<sub>` answers
    gap_opening: str = ""
    gap_words: frozenset[str] = frozenset()
    _synonym_index: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    def entry(self, answer_id: str) -> Entry:
        """The entry of a knowledge answer id; a finer `<id>.<sub>` has its own."""
        return self.finer.get(answer_id) or self.entries[answer_id.split(".", 1)[0]]

    def has_entry(self, answer_id: str | None) -> bool:
        """Whether `answer_id` is a knowledge answer this knowledge can give."""
        return bool(answer_id) and (answer_id in self.entries or answer_id in self.finer)

    def finer_for(self, answer_id: str, question: str) -> str:
        """The finer answer a question asks for by its words ("what are your references"), else `answer_id`."""
        words = f" {_norm_phrase(question)} "
        for finer_id, entry in self.finer.items():
            if finer_id.split(".", 1)[0] == answer_id and any(f" {_norm_phrase(p)} " in words for p in entry.asked_by):
                return finer_id
        return answer_id

    def all_entries(self) -> list[Entry]:
        """Every entry, the finer ones too: what the SMS forms and the grounding checks cover."""
        return [*self.entries.values(), *self.finer.values()]

    def citation(self, answer_id: str) -> dict[str, Any]:
        """The contract's `citation` object for a knowledge answer."""
        entry = self.entry(answer_id)
        return {
            "title": self.source.title,
            "publisher": self.source.publisher,
            "reviewed_by": self.source.reviewed_by,
            "reviewed_on": self.source.reviewed_on,
            "section": entry.section,
            "quotes": list(entry.quotes),
        }

    def fill(self, template: str) -> str:
        """Fill a service template's {placeholders} from the clinic and the source."""
        return template.format(**self.clinic.fields(), **self.source.fields())

    def topic_for(self, phrase: str) -> tuple[str, str] | None:
        """(entity type, topic id) for a patient's phrase such as "babies", if known."""
        return self._synonym_index.get(_norm_phrase(phrase))

    def synonym_patterns(self) -> list[tuple[str, str, str]]:
        """(entity type, phrase, topic id) for every synonym: the entity ruler's input."""
        return [
            (etype, phrase, topic)
            for topic, entry in self.entries.items()
            for etype, phrases in entry.synonyms.items()
            for phrase in phrases
        ]


def _norm_phrase(phrase: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", fold(phrase).casefold()).split())


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeError(f"{path}: cannot read: {exc}") from exc


def _require(data: Mapping[str, Any], keys: tuple[str, ...], where: str, problems: list[str]) -> bool:
    missing = [k for k in keys if not data.get(k)]
    for key in missing:
        problems.append(f"{where}: missing field {key!r}")
    return not missing


def _lines(text: Any) -> str:
    """Whitespace folded within lines; a `|` block's line breaks (a list) are kept."""
    return "\n".join(" ".join(line.split()) for line in str(text).splitlines() if line.strip())


def _entry(answer_id: str, raw: Any, article: str, gap_opening: str, problems: list[str]) -> Entry | None:
    where = f"entries.{answer_id}"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    if not _require(raw, ("title", "section", "answer", "sms", "quotes", "related"), where, problems):
        return None
    quotes = tuple(str(q) for q in raw["quotes"])
    for quote in quotes:
        if fold(quote) not in article:
            problems.append(f"{where}: quote is not verbatim in the article: {quote!r}")
    if fold(str(raw["section"])) not in article:
        problems.append(f"{where}: section {raw['section']!r} is not a heading of the article")
    synonyms_raw = raw.get("synonyms") or {}
    unknown_types = set(synonyms_raw) - set(ENTITY_TYPES)
    if unknown_types:
        problems.append(f"{where}: unknown synonym types {sorted(unknown_types)}")
    for rel in raw["related"]:
        if rel not in KNOWLEDGE_IDS:
            problems.append(f"{where}: related topic {rel!r} is not a knowledge id")
    gap = " ".join(str(raw.get("gap") or "").split())
    if gap and not fold(gap).startswith(fold(gap_opening)):
        problems.append(f"{where}: gap must open with {gap_opening!r}: {gap!r}")
    more = raw.get("more")
    if more is not None and f"{answer_id}.{more}" not in (raw.get("finer") or {}):
        problems.append(f"{where}: more: {more!r} is not one of its finer answers")
    return Entry(
        answer_id=answer_id,
        title=str(raw["title"]),
        section=str(raw["section"]),
        answer=_lines(raw["answer"]),
        sms=" ".join(str(raw["sms"]).split()),
        quotes=quotes,
        synonyms={t: tuple(str(p) for p in synonyms_raw.get(t) or ()) for t in ENTITY_TYPES},
        related=tuple(raw["related"]),
        gap=gap,
        more=f"{answer_id}.{more}" if more is not None else None,
        asked_by=tuple(str(p) for p in raw.get("asked_by") or ()),
    )


def _finer(entries_raw: Mapping[str, Any], article: str, gap_opening: str, problems: list[str]) -> dict[str, Entry]:
    """The `<id>.<sub>` answers declared under their parent's `finer:` (keys `<id>.<sub>`)."""
    finer: dict[str, Entry] = {}
    for parent, raw in entries_raw.items():
        for finer_id, sub in ((raw or {}).get("finer") or {}).items() if isinstance(raw, dict) else ():
            if str(finer_id).split(".", 1)[0] != parent or "." not in str(finer_id):
                problems.append(f"entries.{parent}.finer: {finer_id!r} is not named {parent}.<sub>")
            elif (entry := _entry(str(finer_id), sub, article, gap_opening, problems)) is not None:
                finer[str(finer_id)] = entry
    return finer


def _service_reply(raw: Any, where: str, problems: list[str]) -> ServiceReply:
    if not isinstance(raw, dict) or not raw.get("text"):
        problems.append(f"{where}: missing field 'text'")
        return ServiceReply(text="", sms="")
    text = " ".join(str(raw["text"]).split())
    topics = tuple(raw.get("topics") or ())
    for topic in topics:
        if topic not in KNOWLEDGE_IDS:
            problems.append(f"{where}: topic {topic!r} is not a knowledge id")
    return ServiceReply(
        text=text,
        sms=" ".join(str(raw.get("sms") or text).split()),
        topics=topics,
        offer_handoff=bool(raw.get("offer_handoff")),
        offer_nearest=bool(raw.get("offer_nearest")),
        urgent=bool(raw.get("urgent")),
    )


def load(knowledge_dir: Path = KNOWLEDGE_DIR, clinic_file: Path | None = None) -> Knowledge:
    """Load and check every knowledge file; raise KnowledgeError listing all problems."""
    omt_path = knowledge_dir / "omt.yml"
    raw = _read_yaml(omt_path)
    service_raw = _read_yaml(knowledge_dir / "service.yml")
    clinic_path = clinic_file or Path(os.environ.get("CLINIC_CONFIG", REPO_ROOT / "clinic.yml"))
    clinic_raw = _read_yaml(clinic_path)
    problems: list[str] = []
    if not isinstance(raw, dict) or not isinstance(service_raw, dict) or not isinstance(clinic_raw, dict):
        raise KnowledgeError("omt.yml, service.yml and clinic.yml must each be a mapping")

    src = raw.get("source") or {}
    _require(src, ("title", "publisher", "collection", "reviewed_by", "reviewed_on", "article"), "source", problems)
    try:
        article_raw = (knowledge_dir / str(src.get("article", "article.txt"))).read_text(encoding="utf-8")
    except OSError as exc:
        raise KnowledgeError(f"cannot read the article: {exc}") from exc
    article = fold(article_raw)
    try:
        dt.date.fromisoformat(str(src.get("reviewed_on")))
    except ValueError:
        problems.append("source.reviewed_on: not an ISO date")
    for key in ("title", "reviewed_by", "collection"):
        if src.get(key) and fold(str(src[key])) not in article:
            problems.append(f"source.{key}: not found in the article")

    entries_raw = raw.get("entries") or {}
    for unknown in sorted(set(entries_raw) - set(KNOWLEDGE_IDS)):
        problems.append(f"entries.{unknown}: not a knowledge answer_id of the contract")
    for missing in [i for i in KNOWLEDGE_IDS if i not in entries_raw]:
        problems.append(f"entries.{missing}: the contract's knowledge id has no entry")
    gap_opening = str(raw.get("gap_opening") or "")
    _require(raw, ("gap_opening",), "omt.yml", problems)
    entries = {
        answer_id: entry
        for answer_id in KNOWLEDGE_IDS
        if answer_id in entries_raw
        and (entry := _entry(answer_id, entries_raw[answer_id], article, gap_opening, problems)) is not None
    }
    finer = _finer(entries_raw, article, gap_opening, problems)

    replies_raw = service_raw.get("replies") or {}
    for missing in [r for r in SERVICE_REPLIES if r not in replies_raw]:
        problems.append(f"service.replies.{missing}: missing")
    replies = {
        name: _service_reply(replies_raw.get(name), f"service.replies.{name}", problems) for name in SERVICE_REPLIES
    }
    notice = _service_reply(service_raw.get("notice"), "service.notice", problems)
    source_line = _service_reply(service_raw.get("source_line"), "service.source_line", problems)
    urgent = _service_reply(service_raw.get("urgent"), "service.urgent", problems)
    buttons = {str(k): str(v) for k, v in (service_raw.get("buttons") or {}).items()}
    _require(buttons, ("something_else", "talk_to_person"), "service.buttons", problems)
    _require(clinic_raw, ("name", "phone", "hours"), str(clinic_path), problems)

    index: dict[str, tuple[str, str]] = {}
    for topic, entry in entries.items():
        for etype, phrases in entry.synonyms.items():
            for phrase in phrases:
                key = _norm_phrase(phrase)
                if key in index and index[key][1] != topic:
                    problems.append(f"synonym {phrase!r} names two topics: {index[key][1]}, {topic}")
                index[key] = (etype, topic)

    if problems:
        raise KnowledgeError("knowledge files are invalid:\n  - " + "\n  - ".join(problems))

    source = Source(
        title=str(src["title"]),
        publisher=str(src["publisher"]),
        collection=str(src["collection"]),
        reviewed_by=str(src["reviewed_by"]),
        reviewed_on=str(src["reviewed_on"]),
        article_text=article_raw,
    )
    knowledge = Knowledge(
        source=source,
        entries=entries,
        allowed_words=frozenset(str(w).casefold() for w in raw.get("allowed_words") or ()),
        replies=replies,
        notice=notice,
        source_line=source_line,
        urgent=urgent,
        buttons=buttons,
        clinic=Clinic(name=str(clinic_raw["name"]), phone=str(clinic_raw["phone"]), hours=str(clinic_raw["hours"])),
        ordinals={str(k).casefold(): int(v) for k, v in (service_raw.get("ordinals") or {}).items()},
        scope_cues=tuple(str(c).casefold() for c in service_raw.get("scope_cues") or ()),
        version=hashlib.sha256(omt_path.read_bytes()).hexdigest()[:12],
        finer=finer,
        gap_opening=gap_opening,
        gap_words=frozenset(str(w).casefold() for w in raw.get("gap_words") or ()),
        _synonym_index=index,
    )
    for name, reply in [
        *knowledge.replies.items(),
        ("notice", notice),
        ("source_line", source_line),
        ("urgent", urgent),
    ]:
        try:
            knowledge.fill(reply.text)
            knowledge.fill(reply.sms)
        except (KeyError, IndexError, ValueError) as exc:
            raise KnowledgeError(f"service.{name}: unknown placeholder {exc}") from exc
    return knowledge


@lru_cache(maxsize=1)
def get_knowledge() -> Knowledge:
    """The process-wide knowledge, loaded once (and checked) on first use."""
    return load()
