"""Is an answer true to its quotes? Words, hedges, negations and framing, one check.

Checking that every content word of an answer is in its quotes is not enough: spaCy's
stop words include not, never, may, can, many, often, should..., so "OMT eases
migraines" passes for "This technique may also ease migraines", and "It should hurt"
for "It should not hurt". Here every content word carries the qualifiers in front of
it (hedges, negations, quantifiers, comparatives), and must occur in the quotes with
the same ones. A quote sentence the answer retells keeps its framing ("the idea
that", "one study", "research shows", "trained to"): a claim never becomes a fact.

Pure functions over a spaCy pipeline with a lemmatizer (omt.ops.nlp_build.make_pipeline).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from spacy.language import Language
from spacy.tokens import Token

from omt.core.knowledge import fold

# Lemmas that change what a sentence claims when added, removed or swapped (the
# lookup lemmatizer gives "n't" -> not, "'ll" -> will, "fewer" -> few).
HEDGES = frozenset({"may", "might", "can", "could", "will", "would", "should", "must", "often", "usually"})
NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "nor", "neither", "without", "cannot"})
QUANTIFIERS = frozenset({"many", "some", "all", "every", "any", "only", "just", "always", "most"})
COMPARATIVES = frozenset({"few", "less", "more", "least"})
QUALIFIERS = HEDGES | NEGATIONS | QUANTIFIERS | COMPARATIVES
# Words that frame a statement as an idea, a finding or a training, not a plain fact.
FRAMES = frozenset({"idea", "study", "research", "train"})
_CONJUNCTIONS = frozenset({"and", "or"})
_SENTENCE_ENDS = frozenset({".", "!", "?", ";", ":"})
_USED_SHARE = 0.5  # an answer retells a quote sentence when it uses half its content words
_USED_MIN = 3


@dataclass(frozen=True)
class Word:
    """A content word and the qualifiers in front of it ("should not hurt": hurt, {should, not})."""

    lemma: str
    lower: str
    qualifiers: frozenset[str]
    sentence: int


def _lemma(token: Token) -> str:
    return str(token.lemma_).casefold()


def qualified_words(nlp: Language, text: str, transparent: Iterable[str] = ()) -> list[Word]:
    """Content words of `text` with their qualifiers, sentence by sentence.

    A qualifier applies to the next content word of its sentence; a content word right
    after "and"/"or" shares the qualifiers of the one before ("fewer painkillers and
    days off"). `transparent` words (OMT, DOs: the article's subject) pass qualifiers
    on, so "Many DOs use" and "Many use" read alike. A qualifier left at a sentence's
    end applies to the content word before it.
    """
    skip = frozenset(w.casefold() for w in transparent)
    words: list[Word] = []
    pending: set[str] = set()
    previous: frozenset[str] = frozenset()
    joined = False
    sentence = 0
    sentence_start = 0
    for token in nlp(fold(text)):
        lemma, lower = _lemma(token), token.lower_
        if token.text in _SENTENCE_ENDS:
            if pending and len(words) > sentence_start:
                last = words[-1]
                words[-1] = Word(last.lemma, last.lower, last.qualifiers | pending, last.sentence)
            pending, previous, joined = set(), frozenset(), False
            sentence += 1
            sentence_start = len(words)
            continue
        if lemma in QUALIFIERS or lower in QUALIFIERS:
            pending.add(lemma if lemma in QUALIFIERS else lower)
            continue
        if lower in _CONJUNCTIONS:
            joined = True
            continue
        content = (token.is_alpha or token.like_num) and not token.is_stop and len(token.text) > 1
        if not content or lower in skip or lemma in skip:
            continue
        qualifiers = frozenset(pending) if pending else (previous if joined else frozenset())
        words.append(Word(lemma, lower, qualifiers, sentence))
        pending, previous, joined = set(), qualifiers, False
    if pending and words:
        last = words[-1]
        words[-1] = Word(last.lemma, last.lower, last.qualifiers | pending, last.sentence)
    return words


def _shown(qualifiers: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(qualifiers)) + "}" if qualifiers else "{}"


def grounding_problems(nlp: Language, text: str, quotes: Iterable[str], allowed: Iterable[str] = ()) -> list[str]:
    """What `text` says that `quotes` do not: new words, changed qualifiers, lost framing."""
    allowed = frozenset(w.casefold() for w in allowed)
    quoted = qualified_words(nlp, " ".join(quotes), allowed)
    said = qualified_words(nlp, text, allowed)
    seen: dict[str, set[frozenset[str]]] = defaultdict(set)
    for word in quoted:
        seen[word.lemma].add(word.qualifiers)
        seen[word.lower].add(word.qualifiers)
    problems: list[str] = []
    for word in said:
        forms = seen.get(word.lemma, set()) | seen.get(word.lower, set())
        if not forms:
            problems.append(f"{word.lower!r} is not in its quotes")
        elif word.qualifiers not in forms:
            quoted_as = " or ".join(sorted(_shown(q) for q in forms))
            problems.append(f"{word.lower!r} said with {_shown(word.qualifiers)}, quoted with {quoted_as}")
    said_lemmas = {w.lemma for w in said} | {w.lower for w in said}
    by_sentence: dict[int, list[Word]] = defaultdict(list)
    for word in quoted:
        by_sentence[word.sentence].append(word)
    for sentence in by_sentence.values():
        lemmas = {w.lemma for w in sentence}
        frames = lemmas & FRAMES
        used = lemmas & said_lemmas
        if frames and len(used) >= _USED_MIN and len(used) >= _USED_SHARE * len(lemmas):
            lost = sorted(frames - said_lemmas)
            if lost:
                problems.append(f"retells a quote but drops its framing: {lost}")
    return problems


def gap_problems(nlp: Language, text: str, article: str, opening: str, allowed: Iterable[str] = ()) -> list[str]:
    """A "what the article does not cover" sentence: it says so up front, in the article's words.

    It makes no claim of its own (it opens with `opening`, "The article does not"), so
    its words need only be the article's, or reviewed `allowed` ones (first, second).
    """
    problems = [] if fold(text).startswith(fold(opening)) else [f"does not open with {opening!r}"]
    known = {form for w in qualified_words(nlp, article) for form in (w.lemma, w.lower)}
    allowed = frozenset(w.casefold() for w in allowed)
    for word in qualified_words(nlp, text):
        if word.lemma not in known and word.lower not in known and word.lower not in allowed:
            problems.append(f"{word.lower!r} is not a word of the article")
    return problems
