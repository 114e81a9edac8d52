"""Shared fixtures: the loaded knowledge, one running stack for the `stack` tests, and a tiny DIET.

The stack (action server + Rasa, free loopback ports, its own SQLite tracker) starts
once per test session and only when a test asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from omt.core.knowledge import Knowledge, get_knowledge
from omt.ops.stack import Stack, running_stack

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "omt.tar.gz"


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return get_knowledge()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` first (make test does)")
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="session")
def rest_url(stack: Stack) -> str:
    return stack.rest_url


TINY_TRAINING = {
    "greet": ["hello", "hi there", "good morning", "hey"],
    "cost": ["how much is it", "what does a session cost", "is it covered by insurance", "price of a visit"],
    "pain": ["does it hurt", "is it painful", "will I be sore after", "does the treatment hurt"],
}


@dataclass
class TinyDiet:
    """A DIET with config.yml's settings (2 epochs) trained on a dozen examples through Rasa's own components."""

    diet: Any
    process: Callable[[str], list[tuple[str, float]]]  # a message's intent ranking, (name, confidence)
    texts: list[str]


def config_pipeline() -> list[dict[str, Any]]:
    """config.yml's NLU pipeline, component by component."""
    return list(yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))["pipeline"])


def config_diet() -> dict[str, Any]:
    """config.yml's DIETClassifier settings."""
    return next({k: v for k, v in c.items() if k != "name"} for c in config_pipeline() if c["name"] == "DIETClassifier")


@pytest.fixture()
def tiny_diet(tmp_path: Path) -> TinyDiet:
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.nlu.classifiers.diet_classifier import DIETClassifier
    from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "tiny")
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    featurizer = CountVectorsFeaturizer.create(
        CountVectorsFeaturizer.get_default_config(), storage, Resource("cvf"), context
    )
    config = {**DIETClassifier.get_default_config(), **config_diet(), "epochs": 2, "evaluate_every_number_of_epochs": 1}
    diet = DIETClassifier.create(config, storage, Resource("diet"), context)
    data = TrainingData([Message.build(text=t, intent=i) for i, texts in TINY_TRAINING.items() for t in texts])
    tokenizer.process_training_data(data)
    featurizer.train(data)
    featurizer.process_training_data(data)
    diet.train(data)

    def process(text: str) -> list[tuple[str, float]]:
        message = Message.build(text=text)
        tokenizer.process([message])
        featurizer.process([message])
        diet.process([message])
        return [(r["name"], r["confidence"]) for r in message.get("intent_ranking", [])]

    return TinyDiet(diet, process, [t for texts in TINY_TRAINING.values() for t in texts])
