"""omt.bench.thresholds' rule, on fixtures: answered share and precision per pair, and which pair it picks."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omt.bench.evaluate import Turn
from omt.bench.nlu_bench import Parse
from omt.bench.thresholds import answered_right, choose, cross_validate, folds, load_rows, save_rows, sweep


def _row(text: str, intent: str, conf: float, ok: list[str]) -> tuple[str, Parse, list[str]]:
    return text, Parse(intent, conf, [(intent, conf), ("greet", 0.0)], []), ok


def test_folds_split_every_intent_across_parts() -> None:
    examples = [(f"t{i}", "a" if i % 2 else "b") for i in range(20)]
    parts = folds(examples, 5)
    assert sorted(ex for part in parts for ex in part) == sorted(examples)
    assert all({i for _, i in part} == {"a", "b"} for part in parts)
    assert folds(examples, 5) == parts  # reproducible


def test_rephrase_is_not_an_answer_unless_allowed() -> None:
    turns = [
        Turn("a", ["what_is_omt"], got="what_is_omt"),
        Turn("b", ["not_covered"], got="fallback"),  # abstained
        Turn("c", ["fallback"], got="fallback"),  # gibberish, rightly not understood
        Turn("d", ["not_covered"], got="techniques"),
    ]
    assert answered_right(turns) == (3, 2)


def test_sweep_pools_the_choice_parts_and_reports_the_rest_apart() -> None:
    cv = [_row("what is omt", "what_is_omt", 0.8, ["what_is_omt"]), _row("x", "techniques", 0.3, ["fascia"])]
    questions = [_row("and the other thing", "techniques", 0.4, ["not_covered"])]
    dev = [_row("does omt hurt", "how_it_feels", 0.35, ["how_it_feels"])]
    table = sweep({"cv": cv, "questions": questions}, {"dev": dev})
    at = {(r["threshold"], r["ambiguity"]): r for r in table}
    low, mid = at[(0.0, 0.0)], at[(0.5, 0.0)]
    assert (low["n"], low["answered_n"], low["right_n"]) == (3, 3, 1)
    assert (mid["answered_n"], mid["right_n"]) == (1, 1) and mid["precision"] == 1.0
    assert low["dev"] == {"n": 1, "answered": 1, "right": 1}
    assert mid["dev"] == {"n": 1, "answered": 0, "right": 0}
    assert at[(0.85, 0.0)]["answered_n"] == 0 and at[(0.85, 0.0)]["precision"] == 1.0  # nothing answered


def _point(threshold: float, answered: int, right: int, ambiguity: float = 0.0) -> dict:
    return {
        "threshold": threshold,
        "ambiguity": ambiguity,
        "n": 10,
        "answered_n": answered,
        "right_n": right,
        "answered": answered / 10,
        "precision": right / answered if answered else 1.0,
    }


def test_choose_largest_share_answered_at_the_target() -> None:
    table = [_point(0.0, 10, 8), _point(0.3, 9, 8), _point(0.5, 6, 6), _point(0.9, 0, 0)]
    assert choose(table, 0.85)["threshold"] == 0.3  # 8/9 >= 0.85, answers the most
    assert choose(table, 0.95)["threshold"] == 0.5


def test_choose_breaks_ties_towards_higher_thresholds() -> None:
    table = [_point(0.0, 9, 9), _point(0.1, 9, 9), _point(0.2, 9, 9, ambiguity=0.05)]
    chosen = choose(table, 0.9)
    assert (chosen["threshold"], chosen["ambiguity"]) == (0.2, 0.05)


def test_choose_without_a_pair_at_the_target_takes_the_most_precise() -> None:
    table = [_point(0.0, 10, 5), _point(0.3, 8, 6), _point(0.6, 4, 3)]
    assert choose(table, 0.99)["threshold"] == 0.3  # 0.75 beats 0.5; of two at 0.75, the one answering more


def test_cross_validate_predicts_each_example_with_a_model_that_never_saw_it(tmp_path: Path) -> None:
    examples = [(f"text {i}", "greet" if i % 2 else "thanks") for i in range(10)]
    seen: list[set[str]] = []

    def trainer(train: Sequence[tuple[str, str]], workdir: Path):
        texts = {t for t, _ in train}
        seen.append(texts)
        known = dict(train)
        return (lambda text: Parse(known.get(text, "nlu_fallback"), 1.0, [("greet", 1.0)], [])), 0.0

    rows = cross_validate(trainer, examples, 5, tmp_path, entities=lambda text: [])
    assert len(rows) == 10 and len(seen) == 5
    assert all(parse.intent == "nlu_fallback" for _, parse, _ in rows)  # never in its own training fold
    assert sorted(ok[0] for _, _, ok in rows) == ["greet"] * 5 + ["thanks"] * 5


def test_predictions_survive_a_save(tmp_path: Path) -> None:
    parts = {"cv": [_row("a", "greet", 0.5, ["greet"])]}
    save_rows(parts, tmp_path / "p.json")
    assert load_rows(tmp_path / "p.json") == {"cv": [("a", parts["cv"][0][1], ["greet"])]}
