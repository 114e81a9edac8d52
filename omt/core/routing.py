"""Decide which topic a patient means: entities, follow-ups and picks from a list.

Pure functions over plain values, so they are tested without Rasa.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from omt.core.contract import KNOWLEDGE_IDS
from omt.core.knowledge import Knowledge

# A specific topic named in the message beats the general intent that covers it:
# "does omt help back pain" classified as what_it_treats still answers low_back_pain.
GENERAL_TOPICS = ("what_it_treats", "who_can_get", "techniques")


def mentioned_topics(knowledge: Knowledge, entities: Iterable[Mapping[str, Any]]) -> list[str]:
    """Topic ids named by the message's entities, in order, without duplicates."""
    topics: list[str] = []
    for ent in entities:
        value = str(ent.get("value", ""))
        topic = value if value in KNOWLEDGE_IDS else None
        if topic is None and (hit := knowledge.topic_for(value)):
            topic = hit[1]
        if topic and topic not in topics:
            topics.append(topic)
    return topics


def asks_about_range(text: str, scope_cues: Sequence[str]) -> bool:
    """True when the text uses a phrase that asks how far a general topic reaches ("only treat")."""
    folded = " ".join(re.findall(r"[a-z0-9']+", text.casefold()))
    return any(re.search(rf"\b{re.escape(cue)}\b", folded) for cue in scope_cues)


def refine_topic(intent_topic: str, mentioned: Sequence[str], text: str = "", scope_cues: Sequence[str] = ()) -> str:
    """The intent's topic, unless it is general and the message names a specific one.

    A question about the general topic's range keeps it: "I thought osteopaths only treated
    backache" is answered by what OMT can treat, not by the low back pain study.
    """
    if intent_topic in GENERAL_TOPICS and not asks_about_range(text, scope_cues):
        specific = [t for t in mentioned if t != intent_topic and t not in GENERAL_TOPICS]
        if specific:
            return specific[0]
    return intent_topic


def pick_option(text: str, options: Sequence[str], ordinals: Mapping[str, int]) -> str | None:
    """The option a patient picks by position ("the second one", "3", "last")."""
    if not options:
        return None
    for token in re.findall(r"[a-z0-9]+", text.casefold()):
        position = ordinals.get(token)
        if position is None and token.isdigit() and len(token) <= 2:
            position = int(token)
        if position is not None:
            index = position - 1 if position > 0 else len(options) + position
            return options[index] if 0 <= index < len(options) else None
    return None


def ranked_topics(intent_ranking: Iterable[Mapping[str, Any]], exclude: Sequence[str] = ()) -> list[str]:
    """Knowledge topics from the classifier's ranking, best first: "did you mean" candidates."""
    return [
        str(r.get("name")) for r in intent_ranking if r.get("name") in KNOWLEDGE_IDS and r.get("name") not in exclude
    ]
