"""Names out of the store: our cue rules against Microsoft Presidio's recognizers, as figures.

    python -m omt.bench.redaction_report [--phrasings FILE] [--ordinary FILE ...] [--runs N]

Why: Presidio (presidio-analyzer 2.2.358, the last release for Python 3.10) is the field's
standard for finding personal data. Without a NER model (ours has none: build/spacy_omt is
a blank pipeline) it finds emails, phones, dates and URLs, not names; a name can only come
from a pattern recognizer, scored up by context words near it. This measures, on the same
fixtures, what each way catches (names a patient gives: tests/fixtures/name_phrasings.yml),
what it wrongly takes (ordinary messages: NLU data, our question fixtures and
tests/fixtures/name_lookalikes.txt) and what it costs per message. Speed is measured here,
not in tests. Presidio is imported only here, so the stack never loads it.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from omt.bench.corpus import ordinary_messages
from omt.core.redaction import REDACTION_FILE, Rule, get_rules, redact

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
PHRASINGS = FIXTURES / "name_phrasings.yml"
ORDINARY = (
    REPO / "data" / "nlu.yml",
    FIXTURES / "questions.yml",
    FIXTURES / "ordinary_questions.txt",
    FIXTURES / "name_lookalikes.txt",
)
SPACY_MODEL = REPO / "build" / "spacy_omt"
NAME_LABEL = "[name]"


@dataclass(frozen=True)
class NamePhrasing:
    """A message that gives a name, and the names that must not be stored."""

    text: str
    names: tuple[str, ...]

    def kept(self, redacted: str) -> list[str]:
        """The names still in `redacted` (as whole words); all of them when a label cut a word in two."""
        if re.search(rf"\w{re.escape(NAME_LABEL)}|{re.escape(NAME_LABEL)}\w", redacted):
            return list(self.names)  # "[name]śniewski": part of a name left
        return [n for n in self.names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", redacted)]


def name_phrasings(path: Path = PHRASINGS) -> list[NamePhrasing]:
    """The fixture's phrasings."""
    return [NamePhrasing(str(i["text"]), tuple(str(n) for n in i["names"])) for i in yaml.safe_load(path.read_text())]


def name_rules(rules: Sequence[Rule] | None = None) -> tuple[Rule, ...]:
    """The rules that find names (knowledge/redaction.yml's `[name]` label)."""
    return tuple(r for r in (get_rules() if rules is None else rules) if r.label == NAME_LABEL)


def ours() -> Callable[[str], str]:
    """Our name rules alone (the others find numbers, not names)."""
    rules = name_rules()
    return lambda text: redact(text, rules)


# ---- Presidio ----------------------------------------------------------------------


def _offline_tldextract() -> None:
    """Presidio's email recognizer asks tldextract, which fetches the public suffix list once:
    use the list bundled with the package instead (no network, no wait)."""
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR.suffix_list_urls = ()


def presidio(recognizers: Sequence[Any] = (), predefined: bool = False, prefix_words: int = 5) -> Callable[[str], str]:
    """A Presidio analyzer over our spaCy pipeline, replacing each PERSON it finds by "[name]"."""
    _offline_tldextract()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": str(SPACY_MODEL)}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    if predefined:
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    for recognizer in recognizers:
        registry.add_recognizer(recognizer)
    engine = AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp,
        supported_languages=["en"],
        default_score_threshold=0.4,
        context_aware_enhancer=LemmaContextAwareEnhancer(context_prefix_count=prefix_words),
    )

    def run(text: str) -> str:
        found = engine.analyze(text=text, language="en", entities=["PERSON"])
        for result in sorted(found, key=lambda r: r.start, reverse=True):
            text = text[: result.start] + NAME_LABEL + text[result.end :]
        return text

    return run


def cue_words(path: Path = REDACTION_FILE) -> list[str]:
    """Presidio's context words for a name: the cue words and lists of knowledge/redaction.yml."""
    words = yaml.safe_load(path.read_text())["words"]
    out: list[str] = []
    for key in ("name_cue_words", "relation", "thanks", "signoff"):
        out += [w.replace("\\s+", " ").lower() for w in str(words[key]).split() if "(" not in w]
    return list(dict.fromkeys(out))


def presidio_context_recognizer(case_sensitive: bool = True) -> Any:
    """Presidio's documented way without NER: a weak pattern made strong by context words.

    The pattern scores 0.1 (below the 0.4 threshold); a cue word among the preceding words
    lifts it to 0.45. Case-sensitive: capitalised words; otherwise any word.
    """
    from presidio_analyzer import Pattern, PatternRecognizer

    word = r"\b[A-Z][a-z]+(?:[-'’][A-Za-z]+)*\b" if case_sensitive else r"\b[a-z][a-z'’-]+\b"
    flags = re.DOTALL | re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
    return PatternRecognizer(
        supported_entity="PERSON",
        name="name after a cue word" + ("" if case_sensitive else " (any case)"),
        patterns=[Pattern("name", rf"{word}(?:\s+{word}){{0,2}}", 0.1)],
        context=cue_words(),
        global_regex_flags=flags,
    )


def presidio_our_rules() -> Any:
    """Our name patterns as one Presidio PatternRecognizer: its cost; without omt/core/lexicon.py's check."""
    from presidio_analyzer import Pattern, PatternRecognizer

    return PatternRecognizer(
        supported_entity="PERSON",
        name="omt name rules",
        patterns=[Pattern(rule.name, rule.pattern.pattern, 0.9) for rule in name_rules()],
        global_regex_flags=re.IGNORECASE,
    )


# ---- measuring ---------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One method's results on the fixtures."""

    method: str
    caught: int
    phrasings: int
    names_caught: int
    names: int
    false: int
    ordinary: int
    micros: float
    misses: tuple[str, ...]
    false_examples: tuple[str, ...]


def measure(
    method: str, run: Callable[[str], str], phrasings: Sequence[NamePhrasing], ordinary: Sequence[str], runs: int
) -> Figures:
    """Recall (phrasings with no name left; names), false redactions, median µs per message."""
    kept = [p.kept(run(p.text)) for p in phrasings]
    misses = tuple(p.text for p, k in zip(phrasings, kept, strict=True) if k)
    false = tuple(t for t in ordinary if run(t) != t)
    messages = [p.text for p in phrasings] + list(ordinary)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for text in messages:
            run(text)
        samples.append((time.perf_counter() - start) / len(messages))
    return Figures(
        method=method,
        caught=len(phrasings) - len(misses),
        phrasings=len(phrasings),
        names_caught=sum(len(p.names) - len(k) for p, k in zip(phrasings, kept, strict=True)),
        names=sum(len(p.names) for p in phrasings),
        false=len(false),
        ordinary=len(ordinary),
        micros=statistics.median(samples) * 1e6,
        misses=misses,
        false_examples=false,
    )


def methods() -> list[tuple[str, Callable[[str], str]]]:
    """Every method compared, ours first."""
    return [
        ("ours: cue rules (knowledge/redaction.yml)", ours()),
        ("Presidio: predefined recognizers, no NER", presidio(predefined=True)),
        ("Presidio: capitalised words + context words", presidio([presidio_context_recognizer()])),
        (
            "Presidio: capitalised words + context, 1 word back",
            presidio([presidio_context_recognizer()], prefix_words=1),
        ),
        ("Presidio: any word + context words", presidio([presidio_context_recognizer(case_sensitive=False)])),
        ("Presidio: our patterns, without our word check", presidio([presidio_our_rules()])),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phrasings", type=Path, default=PHRASINGS)
    parser.add_argument("--ordinary", type=Path, nargs="+", default=list(ORDINARY))
    parser.add_argument("--runs", type=int, default=3, help="timing runs over all messages (median)")
    parser.add_argument("--show", type=int, default=5, help="misses and false redactions listed per method")
    args = parser.parse_args(argv)
    phrasings = name_phrasings(args.phrasings)
    ordinary = [t for path in args.ordinary for t in ordinary_messages(path)]
    print(f"{len(phrasings)} name phrasings ({args.phrasings.name}); {len(ordinary)} ordinary messages")
    print(f"{'method':<52} {'recall':>14} {'names':>9} {'false redactions':>20} {'µs/msg':>8}")
    results = [measure(name, run, phrasings, ordinary, args.runs) for name, run in methods()]
    for f in results:
        recall = f"{f.caught:>3}/{f.phrasings} {f.caught / f.phrasings:>7.1%}"
        false = f"{f.false:>4}/{f.ordinary} {f.false / max(f.ordinary, 1):>6.2%}"
        print(f"{f.method:<52} {recall} {f.names_caught:>3}/{f.names:<5} {false} {f.micros:>8.1f}")
    for f in results:
        if args.show and (f.misses or f.false_examples):
            print(f"\n{f.method}:")
            for text in f.misses[: args.show]:
                print(f"  missed: {text!r}")
            for text in f.false_examples[: args.show]:
                print(f"  false:  {text!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
