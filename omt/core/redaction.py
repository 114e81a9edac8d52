"""Take identifiers out of a patient's words before they are stored: pure functions, no Rasa.

Why: a tracker store keeps every message for as long as the conversation is kept, and
patients type phone numbers, emails, birth dates, record numbers and addresses into a
chat that needs none of them. The screener and the NLU read the raw text during the turn;
`omt.rasa.redacting_store` applies these functions to what is saved. The patterns live in
knowledge/redaction.yml, with examples that are checked when the file loads: a pattern
that no longer catches its own example stops the process, like a bad knowledge file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from omt.core.knowledge import KNOWLEDGE_DIR, KnowledgeError, _read_yaml
from omt.core.lexicon import all_english, writes_in_sentence_case

REDACTION_FILE = KNOWLEDGE_DIR / "redaction.yml"
_WORD_LIST = re.compile(r"\{\{(\w+)\}\}")
ID_GROUP = "id"  # a pattern's group of this name is all that gets replaced


@dataclass(frozen=True)
class Rule:
    """One kind of identifier: what finds it, and the label that replaces it.

    `unless_ordinary_words`: a match whose `id` is all English words ("I'm Retired") is
    kept unless the rest of the message is written in sentence case ("can my son Tom
    get OMT"): see omt/core/lexicon.py.
    """

    name: str
    label: str
    pattern: re.Pattern[str]
    unless_ordinary_words: bool = False

    def apply(self, text: str) -> str:
        """`text` with every match replaced by the label (only the `id` group, if any)."""
        return self.pattern.sub(self._replacement, text)

    def _replacement(self, match: re.Match[str]) -> str:
        if ID_GROUP not in self.pattern.groupindex or match.group(ID_GROUP) is None:
            return self.label
        start, end = match.span(ID_GROUP)
        whole, offset = match.group(0), match.start()
        if (
            self.unless_ordinary_words
            and all_english(match.group(ID_GROUP))
            and not writes_in_sentence_case(match.string, match.span())
        ):
            return whole
        return whole[: start - offset] + self.label + whole[end - offset :]


def redact(text: str, rules: Sequence[Rule] | None = None) -> str:
    """The text with identifiers replaced by labels such as "[phone]", rules applied in order.

    Order matters (an email holds digits, a record number looks like a phone number), so
    the file lists the most specific first and each rule sees what the previous ones left.
    """
    for rule in get_rules() if rules is None else rules:
        text = rule.apply(text)
    return text


def redact_value(value: Any, rules: Sequence[Rule] | None = None) -> Any:
    """Every string inside `value` (dicts, lists, nested) redacted; other values as they are.

    For free-form data a client may send along (message metadata), where we cannot know
    which field holds the patient's words.
    """
    if isinstance(value, str):
        return redact(value, rules)
    if isinstance(value, Mapping):
        return {key: redact_value(item, rules) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item, rules) for item in value]
    return value


def redact_entity(entity: Mapping[str, Any], rules: Sequence[Rule] | None = None) -> dict[str, Any]:
    """An extracted entity with its `value` (and `text`, if present) redacted.

    Entities copy words out of the message, so they would keep what the text lost.
    `start`/`end` still point into the original text; they are positions, not words.
    """
    return {key: redact_value(item, rules) if key in ("value", "text") else item for key, item in entity.items()}


def redact_user_event(event: Mapping[str, Any], rules: Sequence[Rule] | None = None) -> dict[str, Any]:
    """A serialised `user` event (Rasa's `UserUttered.as_dict()`) with the patient's words redacted.

    Covers every place the words are copied to: `text`, `parse_data.text`, the entities'
    values, and the free-form `metadata` (top level and inside `parse_data`). A new dict:
    the live event of the turn is not changed.
    """
    out = dict(event)
    if isinstance(out.get("text"), str):
        out["text"] = redact(out["text"], rules)
    if "metadata" in out:
        out["metadata"] = redact_value(out["metadata"], rules)
    parse_data = out.get("parse_data")
    if isinstance(parse_data, Mapping):
        parsed = dict(parse_data)
        if isinstance(parsed.get("text"), str):
            parsed["text"] = redact(parsed["text"], rules)
        if isinstance(parsed.get("entities"), list):
            parsed["entities"] = [redact_entity(e, rules) if isinstance(e, Mapping) else e for e in parsed["entities"]]
        if "metadata" in parsed:
            parsed["metadata"] = redact_value(parsed["metadata"], rules)
        out["parse_data"] = parsed
    return out


def _expand(pattern: str, words: Mapping[str, str], where: str) -> str:
    """Replace each `{{name}}` by the word list `name` (an alternation)."""

    def word_list(match: re.Match[str]) -> str:
        if match.group(1) not in words:
            raise KnowledgeError(f"{where}: unknown word list {{{{{match.group(1)}}}}}")
        return words[match.group(1)]

    return _WORD_LIST.sub(word_list, pattern)


def _rule(raw: Any, words: Mapping[str, str], where: str) -> Rule:
    if not isinstance(raw, Mapping) or not all(raw.get(k) for k in ("name", "label", "pattern")):
        raise KnowledgeError(f"{where}: a rule needs name, label and pattern")
    try:
        pattern = re.compile(_expand(" ".join(str(raw["pattern"]).split()), words, where), re.IGNORECASE)
    except re.error as exc:
        raise KnowledgeError(f"{where} ({raw['name']}): bad pattern: {exc}") from exc
    return Rule(
        name=str(raw["name"]),
        label=str(raw["label"]),
        pattern=pattern,
        unless_ordinary_words=bool(raw.get("unless_ordinary_words")),
    )


def _self_check(raw_rules: Sequence[Any], rules: Sequence[Rule], keeps: Sequence[Any]) -> list[str]:
    """Problems with the file's own examples: a rule that misses one, a false positive."""
    problems = [
        f"rule {rule.name!r} does not redact its example {example!r}"
        for raw, rule in zip(raw_rules, rules, strict=True)
        for example in raw.get("redacts") or ()
        if rule.label not in rule.apply(str(example))
    ]
    problems += [
        f"keeps: {text!r} became {redact(str(text), rules)!r}" for text in keeps if redact(str(text), rules) != text
    ]
    return problems


def load_rules(path: Path = REDACTION_FILE) -> tuple[Rule, ...]:
    """Load and check knowledge/redaction.yml; a bad pattern or a failed example stops the process."""
    raw = _read_yaml(path)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("rules"), list) or not raw["rules"]:
        raise KnowledgeError(f"{path}: needs a non-empty `rules` list")
    words: dict[str, str] = {}
    for key, value in (raw.get("words") or {}).items():  # a list may use the lists above it
        words[str(key)] = _expand("|".join(str(value).split()), words, f"{path}: words.{key}")
    rules = tuple(_rule(item, words, f"{path}: rules[{i}]") for i, item in enumerate(raw["rules"]))
    problems = _self_check(raw["rules"], rules, raw.get("keeps") or [])
    if problems:
        raise KnowledgeError(f"{path}:\n  " + "\n  ".join(problems))
    return rules


@lru_cache(maxsize=1)
def get_rules() -> tuple[Rule, ...]:
    """The process-wide rules, loaded (and checked) once."""
    return load_rules()
