"""LexicalVote: DIET's intent ranking averaged with a TF-IDF + logistic-regression one.

On real patients' questions the two classifiers err on different messages: DIET is sure
of itself where a wording is new to it, the linear model on word and character n-grams
is flatter but steadier. Their average answers as often and cites the article wrongly
less often (README, "Measured": same data, same thresholds, `make eval`).
Rasa's own SklearnIntentClassifier cannot be this second vote: it reads dense features
only, and our spaCy pipeline has no word vectors. The same `lexical_model` is the
TF-IDF baseline of `make bench-nlu`, so the peer and our vote are one model.

Placed after DIETClassifier and before FallbackClassifier, so the fallback thresholds
judge the blended confidence. It reads the NLU's copy of the text (shortened and
spelling-corrected), as DIET does.
"""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Sequence

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

MODEL_FILE = "lexical_vote.pkl"
Ranking = list[tuple[str, float]]


def lexical_model(c: float = 10.0) -> Any:
    """TF-IDF of words (1-2 grams) and characters (1-4 grams within words), then logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    return make_pipeline(
        FeatureUnion(
            [
                ("words", TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True)),
                ("chars", TfidfVectorizer(lowercase=True, analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)),
            ]
        ),
        # newton-cg: the same convex optimum as scikit-learn's default lbfgs (probabilities within
        # 2e-4 on our data) in 9 s of training instead of 15: lbfgs took 123 steps over
        # 17,200 features x 30 intents (README, "Measured").
        LogisticRegression(max_iter=2000, C=c, solver="newton-cg"),
    )


@dataclass(frozen=True)
class Part:
    """One vectorizer of the union, as numbers: its analyzer, vocabulary, idf, and coefficient rows."""

    analyze: Callable[[str], List[str]]
    vocabulary: Mapping[str, int]
    idf: Any
    weights: Any  # this part's columns of the classifier's coef_, one C-ordered row per term


@dataclass(frozen=True)
class Lexical:
    """A fitted lexical model laid out for one message at a time.

    `pipeline` is what is stored (plain scikit-learn). For one short message its
    `predict_proba` spends far more on plumbing than on arithmetic: FeatureUnion hands each
    part to joblib, each TfidfVectorizer builds and validates sparse matrices, `hstack`
    joins them, and scipy copies the transposed coefficients. Here each part's terms come
    from scikit-learn's own analyzer and the same sums are done on the few rows the message
    touches: sublinear tf times idf, l2-normalised per part, as TfidfVectorizer does
    (3.0-3.9 ms a message through `predict_proba` against 0.3-0.4 ms here, on a loaded
    machine, `python -m omt.bench.nlu_profile`; tests/rasa/test_nlu_vote.py checks the
    numbers are `predict_proba`'s).
    """

    pipeline: Any
    parts: tuple[Part, ...]
    intercept: Any
    classes: tuple[str, ...]


def train_lexical(texts: Sequence[str], intents: Sequence[str], c: float = 10.0) -> Lexical:
    """The lexical model fitted on these examples, laid out for one-message use."""
    return prepared(lexical_model(c).fit(list(texts), list(intents)))


def prepared(pipeline: Any) -> Lexical:
    """A fitted pipeline (trained here or loaded from disk) laid out for `probabilities`."""
    import numpy as np

    union, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
    parts, start = [], 0
    for _, vectorizer in union.transformer_list:
        if not (vectorizer.sublinear_tf and vectorizer.norm == "l2" and vectorizer.use_idf):
            raise ValueError("prepared() computes sublinear, l2-normalised TF-IDF only (lexical_model's)")
        end = start + len(vectorizer.vocabulary_)
        weights = np.ascontiguousarray(classifier.coef_[:, start:end].T)
        parts.append(Part(vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.idf_, weights))
        start = end
    return Lexical(pipeline, tuple(parts), classifier.intercept_.copy(), tuple(classifier.classes_))


def probabilities(model: Lexical, text: str) -> Ranking:
    """The model's probability for every intent, highest first (the pipeline's `predict_proba`)."""
    import numpy as np
    from scipy.special import expit, softmax

    scores = model.intercept.copy()
    for part in model.parts:
        counts = Counter(term for term in part.analyze(text) if term in part.vocabulary)
        if not counts:
            continue
        rows = np.fromiter((part.vocabulary[term] for term in counts), dtype=np.intp, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=float, count=len(counts)))) * part.idf[rows]
        scores += (values / np.sqrt(values @ values)) @ part.weights[rows]
    if len(model.classes) == 2:  # binary logistic regression: one score, for the second class
        second = float(expit(scores[0]))
        probs = [1.0 - second, second]
    else:
        probs = [float(p) for p in softmax(scores)]
    return sorted(zip(model.classes, probs, strict=True), key=lambda r: -r[1])


def blend(first: Sequence[tuple[str, float]], second: Mapping[str, float], weight: float, length: int) -> Ranking:
    """(1 - weight) * first + weight * second per intent (missing = 0), highest first, `length` kept."""
    scores = {name: (1 - weight) * conf for name, conf in first}
    for name, conf in second.items():
        scores[name] = scores.get(name, 0.0) + weight * conf
    return sorted(scores.items(), key=lambda r: (-r[1], r[0]))[:length]


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class LexicalVote(GraphComponent, IntentClassifier):
    """Averages DIET's ranking with the lexical model's (see the module docstring)."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"weight": 0.5, "C": 10.0, "ranking_length": 10}

    def __init__(
        self, config: Dict[str, Any], storage: ModelStorage, resource: Resource, model: Lexical | None = None
    ) -> None:
        self.weight = float(config["weight"])
        self.c = float(config["C"])
        self.length = int(config["ranking_length"])
        self.storage = storage
        self.resource = resource
        self.model = model

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LexicalVote:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        examples = [(m.get(TEXT), m.get(INTENT)) for m in training_data.intent_examples if m.get(TEXT)]
        if len({intent for _, intent in examples}) >= 2:
            self.model = train_lexical([t for t, _ in examples], [i for _, i in examples], self.c)
        with self.storage.write_to(self.resource) as directory:
            (directory / MODEL_FILE).write_bytes(pickle.dumps(self.model.pipeline if self.model else None))
        return self.resource

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LexicalVote:
        """The model this project trained (pickle: the archive is ours, as Rasa's own sklearn classifier's is)."""
        try:
            with model_storage.read_from(resource) as directory:
                model = pickle.loads((directory / MODEL_FILE).read_bytes())
        except (ValueError, FileNotFoundError):
            model = None  # nothing trained (fewer than two intents): DIET's ranking stands
        return cls(config, model_storage, resource, prepared(model) if model is not None else None)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text, intent = message.get(TEXT), message.get(INTENT)
            ranking = message.get(INTENT_RANKING_KEY)
            if self.model is None or not isinstance(text, str) or not text or not intent or not ranking:
                continue
            first = [(r[INTENT_NAME_KEY], float(r[PREDICTED_CONFIDENCE_KEY])) for r in ranking]
            blended = blend(first, dict(probabilities(self.model, text)), self.weight, self.length)
            as_dicts = [{INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: conf} for name, conf in blended]
            message.set(INTENT, as_dicts[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, as_dicts, add_to_output=True)
        return messages
