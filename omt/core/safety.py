"""Deterministic emergency red-flag screener.

Why deterministic: an emergency must be caught the same way every time, before any
NLU model or dialogue policy runs, and a clinician must be able to read and review
what triggers it. So the phrases live in ``knowledge/red_flags.yml`` (see its header
for the pattern language and the rules), and this module only normalises raw text,
matches the patterns and applies the negation / general-question rules.

``screen`` never raises on any input text and runs in roughly linear time: patterns
are matched over words with bounded gaps (no regex backtracking over user text).
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Lexicon",
    "LexiconError",
    "RedFlag",
    "default_lexicon",
    "load_lexicon",
    "normalise",
    "screen",
    "screen_with",
]

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "knowledge" / "red_flags.yml"
REPLIES = frozenset({"emergency", "crisis"})  # a category's reply in the lexicon
AFTER_TREATMENT = "after_treatment"  # RedFlag.reply for a non-crisis hit after an OMT treatment
KINDS = ("strong", "weak", "after_treatment")  # pattern kinds, see the lexicon's header
NUM = "<num>"
MAX_GAP = 9
FUZZY_MIN = 5  # lexicon words shorter than this never match with a typo
FUZZY_PREFIX_MIN = 6  # same for prefixes ("tight*" must not match "night")
MAX_WORD = 40  # longer "words" are cut: no lexicon word is that long, and caches stay small
MAX_CHARS = 200_000  # longer messages are screened on their head and tail (bounded latency)


class LexiconError(ValueError):
    """The red-flag lexicon file is malformed: refuse to run without a valid one."""


@dataclass(frozen=True)
class RedFlag:
    """A screening hit: which category fired and which emergency reply to send."""

    category: str  # e.g. "chest_pain"
    reply: str  # "emergency", "crisis" or "after_treatment" (the reply key; see the lexicon's header)
    matched: str  # matched span of normalised text (tests/debugging only, never log it)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class _Element:
    """One pattern position: any of ``ids`` (word-spec ids), after up to ``gap`` words."""

    ids: frozenset[int]
    gap: int
    optional: bool


Part = tuple[_Element, ...]
Judge = Callable[["_Scan", "_Pattern", Sequence[int]], bool]
SHORT_CLAUSE = 4  # a clause this short beside the hit may date it ("last year, I had a stroke")


@dataclass(frozen=True)
class _Pattern:
    source: str
    parts: tuple[Part, ...]  # parts[0] gives the span; the others must match in the sentence
    kind: str  # one of KINDS

    @property
    def weak(self) -> bool:
        return self.kind == "weak"


@dataclass(frozen=True)
class _Category:
    id: str
    reply: str
    patterns: tuple[_Pattern, ...]
    exclude: tuple[Part, ...]
    post_treatment: bool  # a warning sign after treatment (counted apart by the screen report)


@dataclass(frozen=True)
class _Phrases:
    """Fixed word sequences (a word may end with ``*``), indexed by first word."""

    by_first: Mapping[str, tuple[tuple[str, ...], ...]]
    prefixed: tuple[tuple[str, ...], ...]

    def length_at(self, tokens: Sequence[str], i: int) -> int:
        """Length of a phrase that starts at ``tokens[i]``, or 0."""
        for phrase in (*self.by_first.get(tokens[i], ()), *self.prefixed):
            if _phrase_at(phrase, tokens, i):
                return len(phrase)
        return 0


@dataclass(frozen=True, eq=False)
class _Vocab:
    """Every word spec of the patterns, with the indexes for exact/prefix/typo lookup."""

    exact: Mapping[str, frozenset[int]]
    prefixes: Mapping[int, Mapping[str, frozenset[int]]]  # prefix length -> prefix -> ids
    fuzzy: Mapping[str, tuple[tuple[str, int], ...]]  # deletion key -> (word, id)
    fuzzy_prefixes: Mapping[int, Mapping[str, tuple[tuple[str, int], ...]]]
    not_typos: frozenset[str]
    num_id: int


@dataclass(frozen=True)
class _Negation:
    before: _Phrases
    pseudo: _Phrases
    after: _Phrases
    override: _Phrases
    revive: _Phrases
    scope_end: frozenset[str]
    after_scope_end: frozenset[str]
    window_before: int
    window_after: int


@dataclass(frozen=True)
class _Context:
    openers: _Phrases
    markers: _Phrases
    fillers: frozenset[str]
    topic: _Phrases
    history: _Phrases
    urgency: _Phrases
    onset: _Phrases
    onset_pseudo: _Phrases
    report_openers: _Phrases
    hypothetical: _Phrases
    hypothetical_pseudo: _Phrases
    treatment: tuple[Part, ...]
    segment_breaks: _Phrases
    first_person: frozenset[str]


@dataclass(frozen=True, eq=False, repr=False)
class Lexicon:
    """A validated, compiled red-flag lexicon (build it with ``load_lexicon``)."""

    categories: tuple[_Category, ...]
    vocab: _Vocab
    shorthand: Mapping[str, tuple[str, ...]]
    rewrites: Mapping[tuple[str, ...], tuple[str, ...]]
    gap_breakers: frozenset[str]
    negation: _Negation
    context: _Context
    index: Mapping[int, tuple[tuple[int, int], ...]]  # first-element id -> (category, pattern)
    known: frozenset[str]  # words preferred when a letter run is collapsed ("nooo" -> "no")

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)

    def __repr__(self) -> str:
        return f"Lexicon(categories={list(self.category_ids)})"


# --------------------------------------------------------------------------- loading

_WORD_RE = re.compile(r"[a-z0-9]+")
_ALT_RE = re.compile(r"(=?)([a-z0-9]+)(\*?)")
_PHRASE_RE = re.compile(r"[a-z0-9]+\*?( [a-z0-9]+\*?)*")
_SHORT_KEY_RE = re.compile(r"[a-z0-9']+")
_WORDS_RE = re.compile(r"[a-z0-9]+( [a-z0-9]+)*")
_TOP_KEYS = {"version", "shorthand", "rewrites", "not_typos", "gap_breakers", "negation", "context", "categories"}
_NEG_KEYS = {
    "window_before",
    "window_after",
    "before",
    "pseudo",
    "scope_end",
    "after_scope_end",
    "after",
    "override",
    "revive",
}
_CTX_KEYS = {
    "question_openers",
    "question_markers",
    "fillers",
    "topic_words",
    "history",
    "urgency",
    "onset",
    "onset_pseudo",
    "report_openers",
    "hypothetical",
    "hypothetical_pseudo",
    "treatment",
    "segment_breaks",
    "first_person",
}
_CAT_KEYS = {"reply", "post_treatment", *KINDS, "exclude"}


def _fail(where: str, msg: str) -> LexiconError:
    return LexiconError(f"red-flag lexicon: {where}: {msg}")


def _mapping(value: Any, where: str, keys: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(where, "expected a mapping with string keys")
    if keys is not None and set(value) - keys:
        raise _fail(where, f"unknown keys {sorted(set(value) - keys)}")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, "expected a list of strings")
    return value


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(where, f"expected an integer in [{lo}, {hi}]")
    return value


def _phrases(items: Iterable[str], where: str) -> _Phrases:
    by_first: dict[str, list[tuple[str, ...]]] = {}
    prefixed: list[tuple[str, ...]] = []
    for item in items:
        if not _PHRASE_RE.fullmatch(item):
            raise _fail(where, f"bad phrase {item!r} (lowercase words, optional trailing *)")
        words = tuple(item.split())
        if words[0].endswith("*"):
            prefixed.append(words)
        else:
            by_first.setdefault(words[0], []).append(words)
    return _Phrases({k: tuple(v) for k, v in by_first.items()}, tuple(prefixed))


class _SpecTable:
    """Assigns ids to word specs ("word", "=word", "word*", "<num>") while parsing."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {NUM: 0}

    def id_of(self, spec: str) -> int:
        return self.ids.setdefault(spec, len(self.ids))


def _parse_part(text: str, specs: _SpecTable, where: str) -> Part:
    elements: list[_Element] = []
    gap = 0
    for tok in text.split():
        if tok.startswith("~"):
            if not elements or gap:
                raise _fail(where, f"misplaced gap {tok!r} in {text!r}")
            if not tok[1:].isdigit():
                raise _fail(where, f"bad gap {tok!r} in {text!r}")
            gap = _int(int(tok[1:]), f"{where}: {text!r}", 1, MAX_GAP)
            continue
        optional = tok.endswith("?")
        alts = tok[:-1] if optional else tok
        if optional and not elements:
            raise _fail(where, f"first element may not be optional in {text!r}")
        ids = set()
        for alt in alts.split("|"):
            if alt != NUM and not _ALT_RE.fullmatch(alt):
                raise _fail(where, f"bad word {alt!r} in {text!r}")
            ids.add(specs.id_of(alt))
        elements.append(_Element(frozenset(ids), gap, optional))
        gap = 0
    if not elements or gap:
        raise _fail(where, f"empty pattern or trailing gap in {text!r}")
    return tuple(elements)


def _parse_pattern(text: str, kind: str, specs: _SpecTable, where: str) -> _Pattern:
    parts = tuple(_parse_part(p, specs, where) for p in text.split(" & "))
    return _Pattern(text, parts, kind)


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _build_vocab(specs: _SpecTable, not_typos: frozenset[str]) -> _Vocab:
    exact: dict[str, set[int]] = {}
    prefixes: dict[int, dict[str, set[int]]] = {}
    fuzzy: dict[str, list[tuple[str, int]]] = {}
    fuzzy_prefixes: dict[int, dict[str, list[tuple[str, int]]]] = {}
    for spec, sid in specs.ids.items():
        if spec == NUM:
            continue
        strict, word, is_prefix = spec.startswith("="), spec.strip("=*"), spec.endswith("*")
        if is_prefix:
            prefixes.setdefault(len(word), {}).setdefault(word, set()).add(sid)
        else:
            exact.setdefault(word, set()).add(sid)
        if strict or len(word) < (FUZZY_PREFIX_MIN if is_prefix else FUZZY_MIN):
            continue
        table = fuzzy_prefixes.setdefault(len(word), {}) if is_prefix else fuzzy
        for key in _deletions(word) | {word}:
            table.setdefault(key, []).append((word, sid))
    return _Vocab(
        exact={k: frozenset(v) for k, v in exact.items()},
        prefixes={n: {k: frozenset(v) for k, v in t.items()} for n, t in prefixes.items()},
        fuzzy={k: tuple(v) for k, v in fuzzy.items()},
        fuzzy_prefixes={n: {k: tuple(v) for k, v in t.items()} for n, t in fuzzy_prefixes.items()},
        not_typos=not_typos,
        num_id=specs.ids[NUM],
    )


def _word_map(raw: Any, where: str, key_re: re.Pattern[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for key, value in _mapping(raw or {}, where).items():
        if not key_re.fullmatch(key) or not isinstance(value, str) or not _WORDS_RE.fullmatch(value):
            raise _fail(where, f"bad entry {key!r}: {value!r}")
        out[key] = tuple(value.split())
    return out


def _load_negation(raw: Any) -> _Negation:
    neg = _mapping(raw, "negation", _NEG_KEYS)
    return _Negation(
        before=_phrases(_str_list(neg.get("before"), "negation.before"), "negation.before"),
        pseudo=_phrases(_str_list(neg.get("pseudo"), "negation.pseudo"), "negation.pseudo"),
        after=_phrases(_str_list(neg.get("after"), "negation.after"), "negation.after"),
        override=_phrases(_str_list(neg.get("override"), "negation.override"), "negation.override"),
        revive=_phrases(_str_list(neg.get("revive"), "negation.revive"), "negation.revive"),
        scope_end=frozenset(_str_list(neg.get("scope_end"), "negation.scope_end")),
        after_scope_end=frozenset(_str_list(neg.get("after_scope_end"), "negation.after_scope_end")),
        window_before=_int(neg.get("window_before"), "negation.window_before", 0, 10),
        window_after=_int(neg.get("window_after"), "negation.window_after", 0, 10),
    )


def _load_context(raw: Any, specs: _SpecTable) -> _Context:
    ctx = _mapping(raw, "context", _CTX_KEYS)

    def ph(key: str) -> _Phrases:
        return _phrases(_str_list(ctx.get(key), f"context.{key}"), f"context.{key}")

    return _Context(
        openers=ph("question_openers"),
        markers=ph("question_markers"),
        fillers=frozenset(_str_list(ctx.get("fillers"), "context.fillers")),
        topic=ph("topic_words"),
        history=ph("history"),
        urgency=ph("urgency"),
        onset=ph("onset"),
        onset_pseudo=ph("onset_pseudo"),
        report_openers=ph("report_openers"),
        hypothetical=ph("hypothetical"),
        hypothetical_pseudo=ph("hypothetical_pseudo"),
        treatment=tuple(
            _parse_part(p, specs, "context.treatment") for p in _str_list(ctx.get("treatment"), "context.treatment")
        ),
        segment_breaks=ph("segment_breaks"),
        first_person=frozenset(_str_list(ctx.get("first_person"), "context.first_person")),
    )


def _load_category(cid: str, raw: Any, specs: _SpecTable) -> _Category:
    where = f"categories.{cid}"
    cat = _mapping(raw, where, _CAT_KEYS)
    reply = cat.get("reply")
    if reply not in REPLIES:
        raise _fail(where, f"reply must be one of {sorted(REPLIES)}, got {reply!r}")
    patterns = tuple(
        _parse_pattern(p, kind, specs, f"{where}.{kind}")
        for kind in KINDS
        for p in _str_list(cat.get(kind), f"{where}.{kind}")
    )
    post_treatment = cat.get("post_treatment", False)
    if not isinstance(post_treatment, bool):
        raise _fail(where, "post_treatment must be true or false")
    if not patterns:
        raise _fail(where, "no patterns")
    exclude = tuple(
        _parse_part(p, specs, f"{where}.exclude") for p in _str_list(cat.get("exclude"), f"{where}.exclude")
    )
    return _Category(cid, str(reply), patterns, exclude, post_treatment)


def _build_index(categories: Sequence[_Category]) -> dict[int, tuple[tuple[int, int], ...]]:
    index: dict[int, list[tuple[int, int]]] = {}
    for ci, cat in enumerate(categories):
        for pi, pat in enumerate(cat.patterns):
            for sid in pat.parts[0][0].ids:
                index.setdefault(sid, []).append((ci, pi))
    return {k: tuple(v) for k, v in index.items()}


def _known_words(vocab: _Vocab, shorthand: Mapping[str, Any], neg: _Negation, ctx: _Context) -> frozenset[str]:
    """Words worth preferring when a letter run is collapsed ("nooo" -> "no")."""
    words = set(vocab.exact) | set(shorthand)
    for ph in (neg.before, neg.pseudo, neg.after, ctx.openers, ctx.topic, ctx.urgency):
        words.update(ph.by_first)
    return frozenset(words)


def load_lexicon(path: Path | None = None) -> Lexicon:
    """Load and compile the red-flag lexicon; raise ``LexiconError`` if it is malformed."""
    path = DEFAULT_PATH if path is None else Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LexiconError(f"red-flag lexicon: cannot read {path}: {exc}") from exc
    top = _mapping(raw, str(path), _TOP_KEYS)
    if top.get("version") != 1:
        raise _fail("version", "expected 1")
    specs = _SpecTable()
    cats_raw = _mapping(top.get("categories"), "categories")
    if not cats_raw:
        raise _fail("categories", "empty")
    categories = tuple(_load_category(cid, body, specs) for cid, body in cats_raw.items())
    rewrites = {tuple(k.split()): v for k, v in _word_map(top.get("rewrites"), "rewrites", _WORDS_RE).items()}
    context = _load_context(top.get("context"), specs)  # before the vocabulary: its treatment patterns add words
    vocab = _build_vocab(specs, frozenset(_str_list(top.get("not_typos"), "not_typos")))
    shorthand = _word_map(top.get("shorthand"), "shorthand", _SHORT_KEY_RE)
    negation = _load_negation(top.get("negation"))
    return Lexicon(
        categories=categories,
        vocab=vocab,
        shorthand=shorthand,
        rewrites=rewrites,
        gap_breakers=frozenset(_str_list(top.get("gap_breakers"), "gap_breakers")),
        negation=negation,
        context=context,
        index=_build_index(categories),
        known=_known_words(vocab, shorthand, negation, context),
    )


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    """The lexicon at ``DEFAULT_PATH``, loaded once per process."""
    return load_lexicon()


# --------------------------------------------------------------------------- normalising

_APOSTROPHES = str.maketrans({c: "'" for c in "\u2019\u2018\u02bc\u0060\u00b4\u2032\uff07\u02b9"})
_TAG_RE = re.compile(r"<[^<>]{0,300}>")
_ASCII_CONTROLS = {i: " " for i in (*range(0, 32), 127)}
_ASCII_CONTROLS.update({ord("\n"): "\n", ord("\r"): "\n"})
_DROP = frozenset({"Mn", "Me", "Cf", "Cs", "Co", "Cn"})
_NEWLINES = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85")


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    cat = unicodedata.category(ch)
    if cat in _DROP:
        return ""
    if cat == "Cc":
        return "\n" if ch in _NEWLINES else " "
    if cat in ("Zl", "Zp"):
        return "\n"
    return " " if cat == "Zs" else ch


def normalise(text: str) -> str:
    """Fold raw text so that look-alike spellings compare equal (see the YAML header)."""
    s = html.unescape(text)
    s = _TAG_RE.sub(" ", s).translate(_APOSTROPHES)
    s = unicodedata.normalize("NFKC", s).casefold()
    if s.isascii():
        return s.translate(_ASCII_CONTROLS)
    s = unicodedata.normalize("NFKD", s)
    return "".join(_fold_char(ch) for ch in s)


# --------------------------------------------------------------------------- tokens

_TOKEN_RE = re.compile(
    r"(?P<w>[^\W_]+(?:'[^\W_]+)*)"
    r"|(?P<hard>[.!?;\n\u3002\uff01\uff1f\u061f]+)"
    r"|(?P<soft>[,:()\[\]{}\"|\u2014\u2013\u060c]+)"
)
_RUN_RE = re.compile(r"([^\W\d_])\1{2,}")
_DOUBLE_RE = re.compile(r"(\w)\1")


@dataclass(frozen=True)
class _Doc:
    """A tokenised message: words plus the sentence and clause each belongs to."""

    tokens: tuple[str, ...]
    ids: tuple[frozenset[int], ...]
    exact_ids: tuple[frozenset[int], ...]  # without typo guesses: what exclusions read
    sentence: tuple[int, ...]
    clause: tuple[int, ...]


def _within_one(a: str, b: str) -> bool:
    """Optimal-string-alignment distance(a, b) <= 1."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    if la == lb:
        return a[i + 1 :] == b[i + 1 :] or (
            a[i + 1 : i + 2] == b[i : i + 1] and a[i : i + 1] == b[i + 1 : i + 2] and a[i + 2 :] == b[i + 2 :]
        )
    return a[i + 1 :] == b[i:] if la > lb else a[i:] == b[i + 1 :]


def _is_typo_of(token: str, word: str) -> bool:
    plural = token in (word + "s", word + "es")
    return not plural and _within_one(token, word)


def _fuzzy_hits(table: Mapping[str, tuple[tuple[str, int], ...]], token: str) -> set[int]:
    hits: set[int] = set()
    for key in _deletions(token) | {token}:
        for word, sid in table.get(key, ()):
            if _is_typo_of(token, word):
                hits.add(sid)
    return hits


@lru_cache(maxsize=65536)
def _exact_ids(vocab: _Vocab, token: str) -> frozenset[int]:
    """Ids of every word spec that ``token`` satisfies as typed (exact, prefix or number)."""
    ids: set[int] = set(vocab.exact.get(token, ()))
    for n, prefix_table in vocab.prefixes.items():
        if len(token) >= n:
            ids.update(prefix_table.get(token[:n], ()))
    if token.isascii() and token.isdigit() and 2 <= len(token) <= 9:
        ids.add(vocab.num_id)
    return frozenset(ids)


@lru_cache(maxsize=65536)
def _token_ids(vocab: _Vocab, token: str) -> frozenset[int]:
    """Ids of every word spec that ``token`` satisfies (exact, prefix, number or typo)."""
    ids: set[int] = set(_exact_ids(vocab, token))
    if token.isalpha() and 4 <= len(token) <= 30 and token not in vocab.not_typos:
        ids.update(_fuzzy_hits(vocab.fuzzy, token))
        for n, table in vocab.fuzzy_prefixes.items():
            for cut in (n - 1, n, n + 1):
                if len(token) >= cut:
                    ids.update(_fuzzy_hits(table, token[:cut]))
    return frozenset(ids)


def _run_variants(word: str) -> tuple[str, ...]:
    """A word with a letter run of 3+ may mean one or two letters ("killl", "painnn")."""
    if not _RUN_RE.search(word):
        return (word,)
    return (_RUN_RE.sub(r"\1\1", word), _RUN_RE.sub(r"\1", word))


@lru_cache(maxsize=65536)
def _expand_word(lex: Lexicon, raw: str) -> tuple[str, ...]:
    """One raw word -> normal words: shorthand, apostrophes, trailing 's, letter runs."""
    candidates: list[str] = []
    for variant in _run_variants(raw):
        hit = lex.shorthand.get(variant)
        if hit is not None:
            return hit
        bare = (variant[:-2] if variant.endswith("'s") else variant).replace("'", "")
        hit = lex.shorthand.get(bare)
        if hit is not None:
            return hit
        candidates.append(bare)
    if len(candidates) > 1:
        for cand in (*(c for c in candidates if c in lex.known), *(c for c in candidates if _token_ids(lex.vocab, c))):
            return (cand,)
    word = candidates[0]
    if word and word not in lex.known and not _token_ids(lex.vocab, word):
        # A doubled letter typed by mistake ("baaby", "bloood"): only when the word as
        # typed means nothing to the lexicon and the single-letter form does.
        single = _DOUBLE_RE.sub(r"\1", word)
        if single != word and len(single) >= 4 and _token_ids(lex.vocab, single):
            return (single,)
    return (word,) if word else ()


def _apply_rewrites(lex: Lexicon, words: list[str], clauses: list[int]) -> tuple[list[str], list[int]]:
    if not lex.rewrites:
        return words, clauses
    sizes = sorted({len(k) for k in lex.rewrites}, reverse=True)
    out_w: list[str] = []
    out_c: list[int] = []
    i = 0
    while i < len(words):
        for n in sizes:
            key = tuple(words[i : i + n])
            if len(key) == n and clauses[i] == clauses[i + n - 1] and key in lex.rewrites:
                repl = lex.rewrites[key]
                out_w.extend(repl)
                out_c.extend([clauses[i]] * len(repl))
                i += n
                break
        else:
            out_w.append(words[i])
            out_c.append(clauses[i])
            i += 1
    return out_w, out_c


def _analyse(lex: Lexicon, text: str) -> _Doc:
    """Normalise and tokenise; clause ids are global, sentences are runs of clause ids."""
    words: list[str] = []
    clauses: list[int] = []
    sentence_of_clause: dict[int, int] = {}
    clause, sentence = 0, 0
    pending: str | None = None  # boundary seen since the last word: "soft" or "hard"
    for m in _TOKEN_RE.finditer(normalise(text)):
        kind = m.lastgroup
        if kind != "w":
            pending = "hard" if kind == "hard" or pending == "hard" else "soft"
            continue
        expanded = _expand_word(lex, m.group()[:MAX_WORD])
        if expanded and pending and words:
            clause += 1
            sentence += pending == "hard"
        if expanded:
            pending = None
        for w in expanded:
            words.append(w)
            clauses.append(clause)
            sentence_of_clause[clause] = sentence
    words, clauses = _apply_rewrites(lex, words, clauses)
    return _Doc(
        tokens=tuple(words),
        ids=tuple(_token_ids(lex.vocab, w) for w in words),
        exact_ids=tuple(_exact_ids(lex.vocab, w) for w in words),
        sentence=tuple(sentence_of_clause[c] for c in clauses),
        clause=tuple(clauses),
    )


# --------------------------------------------------------------------------- matching


def _phrase_at(phrase: Sequence[str], tokens: Sequence[str], i: int) -> bool:
    if i < 0 or i + len(phrase) > len(tokens):
        return False
    for want, tok in zip(phrase, tokens[i : i + len(phrase)], strict=True):
        if want.endswith("*"):
            if not tok.startswith(want[:-1]):
                return False
        elif tok != want:
            return False
    return True


def _bounds(values: Sequence[int], i: int) -> tuple[int, int]:
    """[lo, hi) of the run of equal ``values`` around position ``i``."""
    lo, hi = i, i + 1
    while lo > 0 and values[lo - 1] == values[i]:
        lo -= 1
    while hi < len(values) and values[hi] == values[i]:
        hi += 1
    return lo, hi


class _Scan:
    """Matching state for one message: the doc plus memoised per-sentence facts."""

    def __init__(self, lex: Lexicon, doc: _Doc, judge: Judge | None = None) -> None:
        self.lex = lex
        self.doc = doc
        self.judge = judge
        self._sent_bounds: dict[int, tuple[int, int]] = {}
        self._clause_bounds: dict[int, tuple[int, int]] = {}
        self._memo: dict[tuple[Any, ...], bool] = {}
        self._question_before: list[bool] | None = None

    # -- spans
    def sentence_bounds(self, i: int) -> tuple[int, int]:
        key = self.doc.sentence[i]
        if key not in self._sent_bounds:
            self._sent_bounds[key] = _bounds(self.doc.sentence, i)
        return self._sent_bounds[key]

    def clause_bounds(self, i: int) -> tuple[int, int]:
        key = self.doc.clause[i]
        if key not in self._clause_bounds:
            self._clause_bounds[key] = _bounds(self.doc.clause, i)
        return self._clause_bounds[key]

    # -- element matching
    def match_part(self, part: Part, start: int, limit: int, exact: bool = False) -> tuple[int, ...] | None:
        """Positions of ``part``'s elements when its first element is at ``start``.

        ``exact`` ignores typo guesses: an exclusion must be typed as written, because
        a guessed exclusion would silence a real alarm ("training" is not "straining").
        """
        ids = self.doc.exact_ids if exact else self.doc.ids
        if not part[0].ids & ids[start]:
            return None
        failed: set[tuple[int, int, int]] = set()
        return self._extend(part, ids, 1, start + 1, 0, limit, (start,), failed)

    def _extend(
        self,
        part: Part,
        ids: Sequence[frozenset[int]],
        k: int,
        pos: int,
        carry: int,
        limit: int,
        acc: tuple[int, ...],
        failed: set[tuple[int, int, int]],
    ) -> tuple[int, ...] | None:
        if k == len(part):
            return acc
        if (k, pos, carry) in failed:
            return None
        el = part[k]
        last = min(limit - 1, pos + el.gap + carry)
        for p in range(pos, last + 1):
            if p > pos and self.doc.tokens[p - 1] in self.lex.gap_breakers:
                break
            if el.ids & ids[p]:
                found = self._extend(part, ids, k + 1, p + 1, 0, limit, (*acc, p), failed)
                if found is not None:
                    return found
        if el.optional:
            found = self._extend(part, ids, k + 1, pos, carry + el.gap, limit, acc, failed)
            if found is not None:
                return found
        failed.add((k, pos, carry))
        return None

    def part_in(self, part: Part, lo: int, hi: int, exact: bool = False) -> bool:
        """Does ``part`` match anywhere inside tokens[lo:hi]?"""
        key = ("part", id(part), lo, hi, exact)
        if key not in self._memo:
            self._memo[key] = any(self.match_part(part, s, hi, exact) is not None for s in range(lo, hi))
        return self._memo[key]

    def phrase_in(self, phrases: _Phrases, lo: int, hi: int) -> bool:
        key = ("phrase", id(phrases), lo, hi)
        if key not in self._memo:
            self._memo[key] = any(0 < phrases.length_at(self.doc.tokens, i) <= hi - i for i in range(lo, hi))
        return self._memo[key]

    # -- negation
    def _cue_ending_at(self, j: int) -> int:
        """Start of a real (non-pseudo) negation cue that ends at token ``j``, or -1."""
        neg, toks = self.lex.negation, self.doc.tokens
        for n in range(1, 4):
            s = j - n + 1
            if s >= 0 and neg.before.length_at(toks, s) == n and not self._in_pseudo(s, j):
                return s
        return -1

    def _in_pseudo(self, s: int, e: int) -> bool:
        return self._covered_by(self.lex.negation.pseudo, s, e)

    def _covered_by(self, phrases: _Phrases, s: int, e: int) -> bool:
        """Does one of `phrases` (starting up to 4 tokens before) overlap tokens[s..e]?"""
        toks = self.doc.tokens
        for k in range(max(0, s - 4), e + 1):
            n = phrases.length_at(toks, k)
            if n and k + n > s:
                return True
        return False

    def negated_before(self, start: int) -> bool:
        neg, toks, clause = self.lex.negation, self.doc.tokens, self.doc.clause
        j = start - 1
        while j >= 0 and clause[j] == clause[start] and start - 1 - j <= neg.window_before:
            if self._cue_ending_at(j) >= 0:
                return True
            if toks[j] in neg.scope_end:
                return False
            j -= 1
        return False

    def negated_in_gaps(self, positions: Sequence[int]) -> bool:
        """A cue among the words a ~N gap skipped ("my chest is not hurting")."""
        return any(self._cue_ending_at(j) > a for a, b in pairwise(positions) for j in range(a + 1, b))

    def negated_after(self, end: int) -> bool:
        neg, toks, clause = self.lex.negation, self.doc.tokens, self.doc.clause
        stop = min(len(toks), end + neg.window_after)
        for q in range(end, stop):
            if clause[q] != clause[end - 1] or toks[q] in neg.after_scope_end:
                return False
            if neg.after.length_at(toks, q) and not (q > end and self._cue_ending_at(q - 1) >= 0):
                return not self.phrase_in(neg.revive, q, self.sentence_bounds(q)[1])
        return False

    def overridden(self, end: int) -> bool:
        neg = self.lex.negation
        hi = min(len(self.doc.tokens), end + neg.window_after + 1)
        return end < len(self.doc.tokens) and self.phrase_in(neg.override, end, hi)

    def negated(self, positions: Sequence[int]) -> bool:
        start, end = positions[0], positions[-1] + 1
        if self.negated_before(start) and not self.overridden(end):
            return True
        return self.negated_in_gaps(positions) or self.negated_after(end)

    # -- weak-pattern context
    def question_before(self, i: int) -> bool:
        """Is token ``i`` inside a question clause (opener first, or a marker earlier)?"""
        if self._question_before is None:
            self._question_before = self._questions()
        return self._question_before[i]

    def _questions(self) -> list[bool]:
        ctx, toks = self.lex.context, self.doc.tokens
        flags = [False] * len(toks)
        lo = 0
        while lo < len(toks):
            _, hi = self.clause_bounds(lo)
            first = lo
            while first < hi and toks[first] in ctx.fillers:
                first += 1
            from_ = first + 1 if first < hi and ctx.openers.length_at(toks, first) else hi
            marker = next((k for k in range(lo, hi) if ctx.markers.length_at(toks, k)), hi)
            for k in range(min(from_, marker + 1), hi):
                flags[k] = True
            lo = hi
        return flags

    def marked(self, phrases: _Phrases, lo: int, hi: int, pseudo: _Phrases | None = None) -> bool:
        """A phrase of ``phrases`` in tokens[lo:hi] not inside a ``pseudo`` phrase (default: ``onset_pseudo``)."""
        pseudo = self.lex.context.onset_pseudo if pseudo is None else pseudo
        key = ("marked", id(phrases), id(pseudo), lo, hi)
        if key not in self._memo:
            toks = self.doc.tokens
            self._memo[key] = any(
                0 < (n := phrases.length_at(toks, i)) <= hi - i and not self._covered_by(pseudo, i, i + n - 1)
                for i in range(lo, hi)
            )
        return self._memo[key]

    def treated_in(self, lo: int, hi: int) -> bool:
        """Does a clause of tokens[lo:hi] (one sentence) say a treatment came first ("after my OMT")?"""
        while lo < hi:
            c_lo, c_hi = self.clause_bounds(lo)
            if any(self.part_in(part, c_lo, c_hi) for part in self.lex.context.treatment):
                return True
            lo = c_hi
        return False

    def reported(self, lo: int, hi: int) -> bool:
        """A report opener with a person after it: "is it normal to have numbness in MY groin"."""
        ctx, toks = self.lex.context, self.doc.tokens
        for k in range(lo, hi):
            n = ctx.report_openers.length_at(toks, k)
            if n and k + n <= hi:
                first = k if toks[k] in ctx.first_person else k + n - 1
                if any(toks[j] in ctx.first_person for j in range(first, hi)):
                    return True
        return False

    def treated(self) -> bool:
        """Does any sentence of the message say a treatment came first?"""
        key = ("treated",)
        if key not in self._memo:
            lo, found = 0, False
            while lo < len(self.doc.tokens) and not found:
                _, hi = self.sentence_bounds(lo)
                found = self.treated_in(lo, hi)
                lo = hi
            self._memo[key] = found
        return self._memo[key]

    def _segment(self, i: int) -> tuple[int, int]:
        """The part of token ``i``'s clause between ``segment_breaks`` ("... ago and now my face ...")."""
        breaks, toks = self.lex.context.segment_breaks, self.doc.tokens
        lo, hi = self.clause_bounds(i)
        seg_lo, seg_hi = lo, hi
        for k in range(lo, hi):
            if breaks.length_at(toks, k):
                if k <= i:
                    seg_lo = k
                else:
                    seg_hi = k
                    break
        return seg_lo, seg_hi

    def history_dates(self, start: int, end: int) -> bool:
        """A history phrase dates this hit: in its segment, or alone in a short clause next to it."""
        history = self.lex.context.history
        lo, _ = self._segment(start)
        _, hi = self._segment(end - 1)
        if self.phrase_in(history, lo, hi):
            return True
        s_lo, s_hi = self.sentence_bounds(start)
        c_lo, _ = self.clause_bounds(start)
        _, c_hi = self.clause_bounds(end - 1)
        for k in (c_lo - 1, c_hi):
            if s_lo <= k < s_hi:
                n_lo, n_hi = self.clause_bounds(k)
                if n_hi - n_lo <= SHORT_CLAUSE and self.phrase_in(history, n_lo, n_hi):
                    return True
        return False

    def excused(self, pat: _Pattern, start: int, end: int) -> bool:
        """A non-strong hit in a general or hypothetical question, or dated to the past.

        Context never silences a current symptom: urgency, or an onset ("since then",
        "after my OMT", "still", "today") keeps the past from excusing it; a report opener
        ("is it normal to have...", "should I worry that...") keeps it from being a general
        question; and a sign after treatment is excused only in a hypothetical question.
        """
        ctx = self.lex.context
        lo, hi = self.sentence_bounds(start)
        if self.marked(ctx.urgency, lo, hi):
            return False
        hypothetical = self.marked(ctx.hypothetical, lo, hi, ctx.hypothetical_pseudo)
        if pat.kind == "after_treatment":
            return hypothetical
        onset = self.marked(ctx.onset, lo, hi) or self.treated_in(lo, hi)
        if not onset and self.history_dates(start, end):
            return True
        if not hypothetical and self.reported(lo, hi):
            return False
        return self.question_before(start) and self.phrase_in(ctx.topic, lo, hi)

    def excluded(self, cat: _Category, start: int, end: int) -> bool:
        lo, _ = self.clause_bounds(start)
        _, hi = self.clause_bounds(end - 1)
        return any(self.part_in(part, lo, hi, exact=True) for part in cat.exclude)

    # -- a whole pattern
    def hit(self, cat: _Category, pat: _Pattern, start: int) -> tuple[int, int] | None:
        lo, hi = self.sentence_bounds(start)
        positions = self.match_part(pat.parts[0], start, hi)
        if positions is None:
            return None
        # `& B`: in the sentence; after treatment, in the message, like the treatment itself
        # ("I heard a pop in my cervical spine. I feel light headed.")
        b_lo, b_hi = (0, len(self.doc.tokens)) if pat.kind == "after_treatment" else (lo, hi)
        if not all(self.part_in(p, b_lo, b_hi) for p in pat.parts[1:]):
            return None
        end = positions[-1] + 1
        if pat.kind == "after_treatment" and not self.treated():
            return None
        if pat.kind != "strong" and self.excluded(cat, start, end):
            return None  # an exclusion never cancels a strong pattern
        if self.judge is not None:
            return None if self.judge(self, pat, positions) else (start, end)
        if self.negated(positions):
            return None
        if pat.kind != "strong" and self.excused(pat, start, end):
            return None
        return start, end


def _candidates(lex: Lexicon, doc: _Doc) -> list[tuple[int, int, int]]:
    """(category, start, pattern) for every pattern whose first word occurs, in order."""
    found: set[tuple[int, int, int]] = set()
    for i, ids in enumerate(doc.ids):
        for sid in ids:
            for ci, pi in lex.index.get(sid, ()):
                found.add((ci, i, pi))
    return sorted(found)


def _screen(lex: Lexicon, text: str, judge: Judge | None = None) -> RedFlag | None:
    doc = _analyse(lex, text)
    scan = _Scan(lex, doc, judge)
    for ci, start, pi in _candidates(lex, doc):
        cat = lex.categories[ci]
        span = scan.hit(cat, cat.patterns[pi], start)
        if span is not None:
            reply = cat.reply if cat.reply == "crisis" or not scan.treated() else AFTER_TREATMENT
            return RedFlag(cat.id, reply, " ".join(doc.tokens[span[0] : span[1]]))
    return None


def screen_with(text: str, judge: Judge, lexicon: Lexicon | None = None) -> RedFlag | None:
    """Screen with another context judge in place of negation and ``excused`` (for measuring only).

    ``judge(scan, pattern, positions)`` says whether the match is to be dropped; the
    screen report uses it to put medspaCy's ConText on the same matches as our rules.
    """
    return _screen(lexicon if lexicon is not None else default_lexicon(), text, judge)


def screen(text: str, lexicon: Lexicon | None = None) -> RedFlag | None:
    """Screen one raw user message; return the first red flag found, else None.

    Never raises on any input: an unexpected internal error is logged (its type only:
    an exception message could quote the patient's words) and treated as no hit, so
    the turn goes on to the NLU, which has its own emergency intent. A malformed lexicon
    does raise, from ``load_lexicon``: that is a deployment error, not an input.
    """
    lex = lexicon if lexicon is not None else default_lexicon()
    if not isinstance(text, str):
        text = text.decode("utf-8", "replace") if isinstance(text, bytes | bytearray) else ""
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS // 2] + "\n" + text[-MAX_CHARS // 2 :]
    try:
        return _screen(lex, text)
    except Exception as exc:  # pragma: no cover - defensive: the screener must not break a turn
        log.error("red-flag screen failed: %s (input length %d)", type(exc).__name__, len(text))
        return None
