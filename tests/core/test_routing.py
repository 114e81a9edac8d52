"""Which topic a patient means: entities, general vs specific intents, picks from a list."""

from __future__ import annotations

from omt.core.knowledge import Knowledge
from omt.core.routing import asks_about_range, mentioned_topics, pick_option, ranked_topics, refine_topic

OPTIONS = ["soft_tissue", "muscle_energy", "myofascial_release", "cranial"]


def test_entities_map_to_topics_by_value_or_synonym(knowledge: Knowledge) -> None:
    entities = [
        {"entity": "population", "value": "who_can_get"},
        {"entity": "condition", "value": "Migraines"},
        {"entity": "population", "value": "babies"},
        {"entity": "condition", "value": "not a synonym"},
    ]
    assert mentioned_topics(knowledge, entities) == ["who_can_get", "migraine"]


def test_specific_topic_beats_general_intent() -> None:
    assert refine_topic("what_it_treats", ["low_back_pain"]) == "low_back_pain"
    assert refine_topic("who_can_get", ["pregnancy"]) == "pregnancy"
    assert refine_topic("who_can_get", ["who_can_get"]) == "who_can_get"


def test_a_question_about_the_range_keeps_the_general_topic(knowledge: Knowledge) -> None:
    cues = knowledge.scope_cues
    assert refine_topic("what_it_treats", ["low_back_pain"], "do DOs only treat sore backs?", cues) == "what_it_treats"
    assert refine_topic("what_it_treats", ["migraine"], "can it help anything other than migraines", cues) == (
        "what_it_treats"
    )
    assert refine_topic("who_can_get", ["pregnancy"], "is omt just for pregnant women?", cues) == "who_can_get"
    # No range asked: the named topic still wins; "only" alone is not a cue.
    assert refine_topic("what_it_treats", ["low_back_pain"], "does omt help back pain", cues) == "low_back_pain"
    assert refine_topic("what_it_treats", ["low_back_pain"], "my only problem is back pain", cues) == "low_back_pain"
    assert asks_about_range("Apart from backs, what do osteopaths treat?", cues)
    assert not asks_about_range("what do osteopaths treat", cues)


def test_specific_intent_is_kept() -> None:
    assert refine_topic("how_it_feels", ["muscle_energy"]) == "how_it_feels"


def test_pick_option_by_ordinal_digit_and_last(knowledge: Knowledge) -> None:
    ordinals = knowledge.ordinals
    assert pick_option("the second one", OPTIONS, ordinals) == "muscle_energy"
    assert pick_option("3", OPTIONS, ordinals) == "myofascial_release"
    assert pick_option("the last one pls", OPTIONS, ordinals) == "cranial"
    assert pick_option("1st", OPTIONS, ordinals) == "soft_tissue"


def test_pick_option_out_of_range_or_without_list(knowledge: Knowledge) -> None:
    assert pick_option("number 9", OPTIONS, knowledge.ordinals) is None
    assert pick_option("the second one", [], knowledge.ordinals) is None
    assert pick_option("that one", OPTIONS, knowledge.ordinals) is None


def test_ranked_topics_skip_service_intents() -> None:
    ranking = [{"name": "nlu_fallback"}, {"name": "greet"}, {"name": "fascia"}, {"name": "cranial"}]
    assert ranked_topics(ranking) == ["fascia", "cranial"]
    assert ranked_topics(ranking, exclude=["fascia"]) == ["cranial"]
