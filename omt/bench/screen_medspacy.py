"""medspaCy's ConText as the screener's context judge: for measuring only (issue #10, item 5).

The comparison is fair when both judges see the same matches: ``omt.core.safety.screen_with``
runs our patterns (with their typo handling) and asks a judge whether each match is to
be dropped. Ours is negation plus ``_Scan.excused``; this one is ConText (medspaCy's
default rules, which mark negation, family and a little history and hypothesis) plus
rules of our own built from the lexicon's `history` phrases ("last year", "in March")
and `hypothetical` phrases ("could ... cause"). As with ours, a strong pattern is only
dropped when negated, and an after-treatment pattern only when negated or hypothetical.
"Family" (experienced by someone else) never drops a hit: "my dad is having a stroke"
is an emergency too.

medspaCy is imported lazily: it is a measuring dependency, not a runtime one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from omt.core.safety import RedFlag, default_lexicon, screen_with

LABEL = "RED_FLAG"


def _phrases(phrases: Any) -> list[str]:
    """The plain phrases of a lexicon phrase table (prefix phrases like "in 20*" become "in")."""
    out = []
    for group in (*phrases.by_first.values(), (p for p in phrases.prefixed)):
        for words in group:
            text = " ".join(w.rstrip("*") for w in words)
            out.append(text)
    return sorted(set(out))


@lru_cache(maxsize=1)
def pipeline() -> Any:
    """A blank English pipeline with ConText: medspaCy's rules plus ours for history and hypotheses."""
    from loguru import logger  # medspaCy's PyRuSH logs every sentence at DEBUG through loguru

    logger.disable("PyRuSH")
    logger.disable("medspacy")
    import spacy
    from medspacy.context import ConText, ConTextRule

    assert ConText  # importing it registers the "medspacy_context" factory

    nlp = spacy.blank("en")
    context: Any = nlp.add_pipe("medspacy_context", config={"rules": "default"})
    ctx = default_lexicon().context
    rules = [ConTextRule(p, "HISTORICAL", direction="BIDIRECTIONAL") for p in _phrases(ctx.history)]
    rules += [ConTextRule(p, "HYPOTHETICAL", direction="BIDIRECTIONAL") for p in _phrases(ctx.hypothetical)]
    context.add(rules)
    return nlp


def judge(scan: Any, pattern: Any, positions: Sequence[int]) -> bool:
    """Drop the match when ConText marks it negated (any kind), or historical / hypothetical (weak)."""
    from spacy.tokens import Doc, Span

    nlp = pipeline()
    lo, hi = scan.sentence_bounds(positions[0])
    words = list(scan.doc.tokens[lo:hi])
    doc = Doc(nlp.vocab, words=words, sent_starts=[i == 0 for i in range(len(words))])  # one sentence
    doc.ents = (Span(doc, positions[0] - lo, positions[-1] + 1 - lo, label=LABEL),)
    doc = nlp.get_pipe("medspacy_context")(doc)
    ent = doc.ents[0]
    if ent._.is_negated:
        return True
    if pattern.kind == "strong":
        return False
    if pattern.kind == "after_treatment":
        return bool(ent._.is_hypothetical)
    return bool(ent._.is_historical or ent._.is_hypothetical)


def screen_medspacy(text: str) -> RedFlag | None:
    """Our patterns, ConText's judgement."""
    return screen_with(text, judge)
