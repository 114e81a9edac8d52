"""The lexical vote: the blend rule, and the component trained, stored, loaded and run through Rasa's storage."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from omt.rasa.nlu_vote import LexicalVote, blend, lexical_model, probabilities, train_lexical

EXAMPLES = {
    "how_it_feels": ["does it hurt", "is omt painful", "will it hurt", "what does it feel like", "is it sore"],
    "not_covered": ["how much does it cost", "is it covered by insurance", "what are the fees", "price please"],
    "cranial": ["what is cranial osteopathy", "skull bones treatment", "cranial therapy for my head"],
}

Trained = tuple[LocalModelStorage, Resource, ExecutionContext]


def test_blend_averages_and_fills_missing_with_zero() -> None:
    blended = blend([("a", 0.9), ("b", 0.1)], {"b": 0.7, "c": 0.3}, weight=0.5, length=10)
    assert [name for name, _ in blended] == ["a", "b", "c"]
    assert dict(blended) == pytest.approx({"a": 0.45, "b": 0.4, "c": 0.15})


def test_blend_can_overturn_the_first_vote_and_keeps_length() -> None:
    blended = blend([("a", 0.55), ("b", 0.45)], {"a": 0.1, "b": 0.9}, weight=0.5, length=1)
    assert blended == [("b", pytest.approx(0.675))]
    assert blend([("a", 1.0)], {"b": 1.0}, weight=0.0, length=5)[0] == ("a", 1.0)


def _message(text: str, ranking: list[tuple[str, float]]) -> Message:
    message = Message(data={TEXT: text})
    message.set(INTENT, {"name": ranking[0][0], "confidence": ranking[0][1]})
    message.set(INTENT_RANKING_KEY, [{"name": n, "confidence": c} for n, c in ranking])
    return message


@pytest.fixture
def trained(tmp_path: Path) -> Trained:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("lexical_vote")
    context = ExecutionContext(GraphSchema({}), "test")
    config = {**LexicalVote.get_default_config()}
    component = LexicalVote.create(config, storage, resource, context)
    data = TrainingData([Message(data={TEXT: t, INTENT: i}) for i, texts in EXAMPLES.items() for t in texts])
    component.train(data)
    return storage, resource, context


def test_trained_vote_is_stored_loaded_and_overturns_an_unsure_first_vote(trained: Trained) -> None:
    storage, resource, context = trained
    loaded = LexicalVote.load(LexicalVote.get_default_config(), storage, resource, context)
    assert loaded.model is not None and loaded.model.classes == tuple(sorted(EXAMPLES))
    # DIET slightly prefers the wrong topic; the lexical model is sure it is about cost.
    message = _message("how much does a session cost", [("cranial", 0.55), ("not_covered", 0.45)])
    loaded.process([message])
    assert message.get(INTENT)["name"] == "not_covered"
    ranking = message.get(INTENT_RANKING_KEY)
    assert ranking[0]["name"] == "not_covered"
    assert {r["name"] for r in ranking} == set(EXAMPLES)
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)


def test_a_sure_first_vote_that_agrees_stays(trained: Trained) -> None:
    storage, resource, context = trained
    loaded = LexicalVote.load(LexicalVote.get_default_config(), storage, resource, context)
    message = _message("does it hurt", [("how_it_feels", 0.98), ("cranial", 0.02)])
    loaded.process([message])
    assert message.get(INTENT)["name"] == "how_it_feels"
    assert message.get(INTENT)["confidence"] > 0.5


def test_messages_without_a_first_vote_or_text_pass_unchanged(trained: Trained) -> None:
    storage, resource, context = trained
    loaded = LexicalVote.load(LexicalVote.get_default_config(), storage, resource, context)
    empty = Message(data={TEXT: ""})
    no_ranking = Message(data={TEXT: "does it hurt"})
    loaded.process([empty, no_ranking])
    assert empty.get(INTENT) is None and no_ranking.get(INTENT) is None


def test_with_fewer_than_two_intents_nothing_is_trained_and_diet_stands(tmp_path: Path) -> None:
    storage, resource = LocalModelStorage(tmp_path), Resource("lexical_vote")
    context = ExecutionContext(GraphSchema({}), "test")
    config = LexicalVote.get_default_config()
    LexicalVote.create(config, storage, resource, context).train(
        TrainingData([Message(data={TEXT: "hello", INTENT: "greet"})])
    )
    loaded = LexicalVote.load(config, storage, resource, context)
    message = _message("hello", [("greet", 0.7), ("goodbye", 0.3)])
    loaded.process([message])
    assert message.get(INTENT) == {"name": "greet", "confidence": 0.7}


def test_probabilities_are_the_plain_pipelines_own() -> None:
    texts = [t for texts in EXAMPLES.values() for t in texts]
    labels = [i for i, texts in EXAMPLES.items() for _ in texts]
    model = lexical_model().fit(texts, labels)
    prepared = train_lexical(texts, labels)
    for text in ("does a session cost much", "skull", "", "zzz qqq"):
        expected = dict(zip(model.classes_, model.predict_proba([text])[0], strict=True))
        got = probabilities(prepared, text)
        assert dict(got) == pytest.approx(expected)
        assert [c for _, c in got] == sorted((c for _, c in got), reverse=True)


def test_two_intent_probabilities_are_the_binary_pipelines_own() -> None:
    """With two intents logistic regression keeps one score, not a softmax over two."""
    pairs = [(t, i) for i, texts in EXAMPLES.items() if i != "cranial" for t in texts]
    texts, labels = [t for t, _ in pairs], [i for _, i in pairs]
    model = lexical_model().fit(texts, labels)
    prepared = train_lexical(texts, labels)
    for text in ("does a session cost much", "will it hurt", "zzz"):
        expected = dict(zip(model.classes_, model.predict_proba([text])[0], strict=True))
        assert dict(probabilities(prepared, text)) == pytest.approx(expected)
