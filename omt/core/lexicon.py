"""Is a capitalised word after "I'm" a name or an ordinary word? Pure functions, no Rasa.

Why: "I'm Keisha" and "I'm Retired" differ only in the word; a stop-list of ordinary
words cannot be complete. English words come from spacy-lookups-data (pinned with spaCy):
its lemma lookup table (inflected forms and their lemmas) and WordNet's lemma index
(nouns, verbs, adjectives, adverbs): about 124 000 words, read once (about 0.6 s, ~10 MB).
Some names are English words too (Grace, Will, Tom): for those, the message's own
capitalisation decides (`writes_in_sentence_case`): in "can my son Tom get OMT" the other
words are lower-case, so a capital means a name; in "This Is Ridiculous" it means nothing.
"""

from __future__ import annotations

import gzip
import json
import re
from functools import lru_cache
from pathlib import Path

_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_FIRST_PERSON = re.compile(r"(?i:I(?:['’](?:m|ve|ll|d))?)$")


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Lower-case English words (spacy-lookups-data's `en` lemma tables)."""
    import spacy_lookups_data

    data = Path(spacy_lookups_data.__file__).parent / "data"
    with gzip.open(data / "en_lemma_lookup.json.gz", "rt", encoding="utf-8") as f:
        lookup: dict[str, str] = json.load(f)
    with gzip.open(data / "en_lemma_index.json.gz", "rt", encoding="utf-8") as f:
        index: dict[str, list[str]] = json.load(f)
    words = set(lookup) | set(lookup.values()) | {w for lemmas in index.values() for w in lemmas}
    return frozenset(w.lower() for w in words if "_" not in w)


def all_english(words: str) -> bool:
    """Every word of `words` is an English word ("Pretty Sure"), so none has to be a name."""
    found = [w.lower().rstrip("'’").removesuffix("'s").removesuffix("’s") for w in _WORD.findall(words)]
    return bool(found) and all(w in english_words() for w in found)


def writes_in_sentence_case(text: str, skip: tuple[int, int]) -> bool:
    """The words of `text` outside `skip` show ordinary capitalisation: most of them lower-case.

    Not counted: a sentence's first word, "I"/"I'm", words in capitals (OMT), and the span
    `skip` (the cue and the candidate name). No word left to count: no evidence, False.
    """
    counted = capitalised = 0
    for match in _WORD.finditer(text):
        word, start = match.group(0), match.start()
        if skip[0] <= start < skip[1] or _FIRST_PERSON.match(word) or (len(word) > 1 and word.isupper()):
            continue
        before = text[:start].rstrip()
        if not before or before[-1] in ".!?:\n-–—~":
            continue
        counted += 1
        capitalised += word[0].isupper()
    return counted > 0 and capitalised / counted < 0.5
