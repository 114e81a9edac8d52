"""omt.bench.nlu_bench's scoring, on fixtures: how a parse becomes an answer, and the figures with their counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from omt.bench.evaluate import Turn
from omt.bench.nlu_bench import (
    Parse,
    answer_for,
    answers,
    macro_f1,
    nlu_extras,
    score_answers,
    tfidf_parser,
    with_entities,
    with_thresholds,
    write_nlu,
)
from omt.core.knowledge import Knowledge


def _parse(intent: str, top: float = 0.9, second: float = 0.05, entities: list | None = None) -> Parse:
    ranking = [(intent, top), ("greet", second)]
    return Parse(intent, top, ranking, entities or [])


def test_answer_for_maps_a_parse_as_the_assistant_does(knowledge: Knowledge) -> None:
    assert answer_for("what is omt", _parse("what_is_omt"), knowledge) == "what_is_omt"
    assert answer_for("i have crushing chest pain", _parse("what_is_omt"), knowledge) == "emergency"
    assert answer_for("blah", _parse("nlu_fallback"), knowledge) == "fallback"
    assert answer_for("tell me", _parse("crisis"), knowledge) == "emergency"  # a safety intent, whichever
    assert answer_for("the second one", _parse("choose_option"), knowledge) == "fallback"
    assert answer_for("yes", _parse("affirm"), knowledge) == "capabilities"
    low_back = [{"entity": "condition", "value": "low_back_pain"}]
    assert answer_for("does it help back pain", _parse("what_it_treats", entities=low_back), knowledge) == (
        "low_back_pain"
    )


def test_answer_for_personal_advice_is_the_replys_id(knowledge: Knowledge) -> None:
    """As omt.core.replies.personal_advice_reply: cited for a named condition, not for a child."""
    pregnant = [{"entity": "population", "value": "pregnancy"}]
    son = [{"entity": "population", "value": "who_can_get"}]
    assert answer_for("im pregnant should i", _parse("personal_advice", entities=pregnant), knowledge) == "pregnancy"
    assert answer_for("what about my son", _parse("personal_advice", entities=son), knowledge) == "personal_advice"


def test_with_thresholds_applies_the_fallback_rule() -> None:
    parse = Parse("nlu_fallback", 1.0, [("nlu_fallback", 1.0), ("cranial", 0.5), ("fascia", 0.45)], [])
    assert with_thresholds(parse, 0.4, 0.0).intent == "cranial"  # the raw ranking, without Rasa's fallback
    assert with_thresholds(parse, 0.6, 0.0).intent == "nlu_fallback"  # below the threshold
    assert with_thresholds(parse, 0.4, 0.1).intent == "nlu_fallback"  # too close to call


def test_answers_and_score_counts(knowledge: Knowledge) -> None:
    rows = [
        ("what is omt", _parse("what_is_omt", 0.9), ["what_is_omt"]),
        ("and the other thing", _parse("techniques", 0.3), ["not_covered"]),  # no aspect word: the guess stands
        ("is it safe", _parse("not_covered", 0.8), ["not_covered.risks"]),
    ]
    low = score_answers(answers(rows, 0.0, 0.0))
    assert (low["right"], low["n"], low["cited_right"], low["cited"]) == (2, 3, 1, 2)
    assert (low["not_covered_right"], low["not_covered"]) == (1, 2)
    high = score_answers(answers(rows, 0.5, 0.0))  # the unsure guess becomes "please rephrase"
    assert (high["right"], high["cited_right"], high["cited"]) == (2, 1, 1)
    assert high["cited_precision"] == 1.0


def test_macro_f1() -> None:
    assert macro_f1([("a", "a"), ("b", "b")]) == 1.0
    assert macro_f1([("a", "b")]) == 0.0
    assert macro_f1([("a", "a"), ("a", "b")]) == pytest.approx((2 / 3 + 0) / 2)


def test_score_answers_credits_an_allowed_alternative_in_macro_f1() -> None:
    turns = [Turn("q", ["not_covered", "what_it_treats"], got="what_it_treats")]
    assert score_answers(turns)["macro_f1"] == 1.0


def test_every_pipeline_sees_the_same_entities() -> None:
    own = lambda text: Parse("cranial", 0.9, [("cranial", 0.9)], [{"entity": "x", "value": "own"}])  # noqa: E731
    shared = with_entities(own, lambda text: [{"entity": "population", "value": text}])
    assert shared("babies").entities == [{"entity": "population", "value": "babies"}]
    assert shared("babies").intent == "cranial"


def test_folds_keep_synonyms_and_lookups(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "nlu.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n'
        "- synonym: cranial\n  examples: |\n    - head work\n- lookup: condition\n  examples: |\n    - migraine\n",
        encoding="utf-8",
    )
    (data / "rules.yml").write_text('version: "3.1"\nrules: []\n', encoding="utf-8")
    extras = nlu_extras(data)
    assert [next(iter(e)) for e in extras] == ["synonym", "lookup"]
    write_nlu([("hello", "greet"), ("bye", "goodbye")], tmp_path / "fold.yml", extras)
    nlu = yaml.safe_load((tmp_path / "fold.yml").read_text(encoding="utf-8"))["nlu"]
    assert [item.get("intent") for item in nlu] == ["greet", "goodbye", None, None]


def test_tfidf_baseline_ranks_every_intent() -> None:
    examples = [("hello there", "greet"), ("hi", "greet"), ("bye now", "goodbye"), ("see you", "goodbye")]
    parse, seconds = tfidf_parser(examples)
    p = parse("hello")
    assert p.intent == "greet" and {r[0] for r in p.ranking} == {"greet", "goodbye"} and seconds >= 0
