"""Route a question by topic AND aspect: the topic's passage must answer what is asked.

"Is muscle energy safe for kids?" is about muscle energy, but it asks about safety, which
the article never discusses: answering with the muscle energy passage would cite the
article for something it does not say. The aspects (cost, risks, a visit's practical
side, comparisons, cure, evidence, diagnosis, conditions the article does not name) and
their words are data (knowledge/aspects.yml); this module finds them with spaCy's
PhraseMatcher and Matcher on the raw text and decides the answer id. Pure: no Rasa.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import spacy
import yaml
from spacy.matcher import Matcher, PhraseMatcher

from omt.core.contract import KNOWLEDGE_IDS, NOT_COVERED_IDS, parent_id

ASPECTS_FILE = Path(__file__).resolve().parents[2] / "knowledge" / "aspects.yml"
KNOWLEDGE = "knowledge"  # in `overrides`: every knowledge topic
REPLIES = (*NOT_COVERED_IDS, "personal_advice")  # what an aspect may route to


@dataclass(frozen=True)
class Aspect:
    """One aspect: the not-covered reply it gets, and which answers it leaves alone."""

    name: str
    reply: str
    answered_by: frozenset[str]
    overrides: frozenset[str]

    def replaces(self, answer_id: str) -> bool:
        """True when a question with this aspect must not get `answer_id`."""
        base = parent_id(answer_id)
        if base in self.answered_by:
            return False
        return base in self.overrides or (KNOWLEDGE in self.overrides and base in KNOWLEDGE_IDS)


class AspectDetector:
    """Finds the aspects a message asks about, in the file's order of precedence."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.nlp = spacy.blank("en")
        self.phrases = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        self.patterns = Matcher(self.nlp.vocab)
        self.aspects: dict[str, Aspect] = {}
        for name, raw in (spec.get("aspects") or {}).items():
            reply = str(raw["reply"])
            if reply not in REPLIES:
                raise ValueError(f"aspects.{name}: reply {reply!r} is not a not_covered id or personal_advice")
            for key in ("answered_by", "overrides"):
                unknown = [i for i in raw.get(key) or () if i != KNOWLEDGE and parent_id(i) not in _ALL_IDS]
                if unknown:
                    raise ValueError(f"aspects.{name}.{key}: unknown answer ids {unknown}")
            self.aspects[name] = Aspect(
                name, reply, frozenset(raw.get("answered_by") or ()), frozenset(raw.get("overrides") or ())
            )
            phrases = [str(p) for p in raw.get("phrases") or ()]
            if phrases:
                self.phrases.add(name, [self.nlp.make_doc(p) for p in phrases])
            if raw.get("patterns"):
                self.patterns.add(name, list(raw["patterns"]))

    def detect(self, text: str) -> list[str]:
        """Names of the aspects found in `text`, in the file's order."""
        doc = self.nlp.make_doc(text)
        found = {self.nlp.vocab.strings[m[0]] for m in [*self.phrases(doc), *self.patterns(doc)]}
        return [name for name in self.aspects if name in found]

    def route(self, answer_id: str, text: str) -> str:
        """The answer id for a message classified as `answer_id`: itself, or a not-covered reply.

        The first aspect found that the answer does not address wins; a `not_covered`
        question with no aspect stays the plain `not_covered` (off-topic included).
        """
        for name in self.detect(text):
            aspect = self.aspects[name]
            if aspect.replaces(answer_id):
                return aspect.reply
        return answer_id


_ALL_IDS = (*KNOWLEDGE_IDS, "not_covered", "handoff", "personal_advice", "fallback")


def load(path: Path = ASPECTS_FILE) -> AspectDetector:
    """The detector built from an aspects file; a bad file fails loudly."""
    return AspectDetector(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


@lru_cache(maxsize=1)
def get_detector() -> AspectDetector:
    """The process-wide detector, built once on first use."""
    return load()


def route(answer_id: str, text: str, detector: AspectDetector | None = None) -> str:
    """`AspectDetector.route` with the process-wide detector."""
    return (detector or get_detector()).route(answer_id, text)
