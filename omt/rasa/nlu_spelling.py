"""SpellingNormalizer: a misspelled word becomes the training word it is one edit from.

Patients type "dooes omt hrt" and "chset paain"; character n-grams absorb some of that,
not all. Before tokenization, each word of four letters or more that our training data
never uses is replaced by the vocabulary word one edit away (a deletion, insertion,
substitution or swap of neighbours; the symmetric-delete index of SymSpell), the most
frequent one when several are. The vocabulary (word -> count) is written by
`omt.ops.nlp_build` from data/ and the knowledge synonyms. Only the NLU's copy of the text
changes: the stored message and the emergency screener keep what the patient typed.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Container, Dict, List, Mapping

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

WORD = re.compile(r"[A-Za-z]+")
MIN_LENGTH = 4


def deletes(word: str) -> set[str]:
    """The word with one letter removed, every way."""
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class Speller:
    """Symmetric-delete lookup of words one edit from the vocabulary.

    `english` holds correctly spelled English words (spaCy's lemma lookup table): a real
    word that our data happens not to use ("blue") is never "corrected".
    """

    def __init__(self, counts: Mapping[str, int], english: Container[str] = frozenset()) -> None:
        self.counts = dict(counts)
        self.english = english
        self.index: dict[str, set[str]] = defaultdict(set)
        for word in self.counts:
            for key in {word} | deletes(word):
                self.index[key].add(word)

    def correct(self, word: str) -> str:
        """The closest known word, or the word itself when it is known, short or far off."""
        lower = word.lower()
        if len(lower) < MIN_LENGTH or lower in self.counts or lower in self.english:
            return word
        candidates: set[str] = set()
        for key in {lower} | deletes(lower):
            candidates |= self.index.get(key, set())
        candidates = {c for c in candidates if abs(len(c) - len(lower)) <= 1}
        if not candidates:
            return word
        return max(candidates, key=lambda c: (self.counts[c], c))

    def fix(self, text: str) -> str:
        return WORD.sub(lambda m: self.correct(m.group(0)), text)


class EnglishWords:
    """Every word form of spaCy's English lemma lookup table (spacy-lookups-data).

    The table stores its keys as hashes, so membership asks the table itself; the
    lemmas (its values) are words too.
    """

    def __init__(self) -> None:
        from spacy.lookups import load_lookups

        self.table = load_lookups("en", ["lemma_lookup"]).get_table("lemma_lookup")
        self.lemmas = frozenset(str(v) for v in self.table.values())

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and (word in self.table or word in self.lemmas)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class SpellingNormalizer(GraphComponent):
    """Corrects one-edit misspellings in the NLU's copy of each message."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"vocabulary": "build/vocabulary.json"}

    def __init__(self, speller: Speller) -> None:
        self.speller = speller

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SpellingNormalizer:
        counts = json.loads(Path(config["vocabulary"]).read_text(encoding="utf-8"))
        return cls(Speller(counts, EnglishWords()))

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if isinstance(text, str) and not text.startswith("/"):
                message.set(TEXT, self.speller.fix(text))
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training examples keep their typos: they teach the character n-grams."""
        return training_data
