"""No evaluation question, nor a near-copy of one under the same label, stands in the training data.

A copied question makes the eval measure memory: the dev set scored 1.000 while real
questions scored 0.60. Every data/*.yml file counts, whoever adds it (omt/bench/leaks.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omt.bench.leaks import (
    EVAL_DIR,
    HOLDOUTS,
    Example,
    Question,
    data_examples,
    eval_questions,
    find_leaks,
    nlu_examples,
    remove,
)

REPO = Path(__file__).resolve().parents[2]


def test_no_eval_question_is_copied_into_the_training_data() -> None:
    files = sorted(EVAL_DIR.glob("*.yml"))
    if not files:
        pytest.skip(f"no shared eval set at {EVAL_DIR} (set OMT_EVAL_DIR); .ci/run fails without it")
    examples = data_examples(REPO / "data")
    assert len(examples) > 100, "the NLU examples were not found: has the data format changed?"
    leaks = find_leaks(examples, eval_questions(files))
    assert not leaks, "remove them (`python -m omt.bench.leaks --remove`):\n" + "\n".join(map(str, leaks))


def test_our_held_out_questions_are_not_copied_into_the_training_data() -> None:
    assert [p.name for p in HOLDOUTS] == ["real_holdout.yml", "real_holdout2.yml", "real_holdout3.yml"]
    leaks = find_leaks(data_examples(REPO / "data"), eval_questions(HOLDOUTS))
    assert not leaks, "remove them (`python -m omt.bench.leaks --remove`):\n" + "\n".join(map(str, leaks))


def _example(text: str, intent: str) -> Example:
    return Example(Path("data/x.yml"), 0, intent, text)


def test_near_copies_under_the_same_label_and_verbatim_copies_under_any() -> None:
    questions = [Question("What is OMT?", ("what_is_omt",)), Question("Is osteopathy safe?", ("not_covered",))]
    examples = [
        _example("wat is omt", "what_is_omt"),  # a typo apart, same label
        _example("wat is omt", "techniques"),  # a typo apart, another label: allowed
        _example("is osteopathy safe", "what_is_omt"),  # verbatim once normalised: never allowed
        _example("is osteopathy safe for my kid", "not_covered"),  # far enough
        _example("is [osteopathy](technique) safe", "not_covered"),  # annotations do not hide a copy
    ]
    leaks = find_leaks(examples, questions)
    assert [(leak.example.text, leak.example.intent, leak.verbatim) for leak in leaks] == [
        ("wat is omt", "what_is_omt", False),
        ("is osteopathy safe", "what_is_omt", True),
        ("is [osteopathy](technique) safe", "not_covered", True),
    ]


def test_finer_labels_and_sub_intents_count_as_the_same_label() -> None:
    questions = [Question("how much does it cost", ("not_covered.cost",))]
    assert find_leaks([_example("how much does it costs", "not_covered_cost")], questions)
    assert find_leaks([_example("how much does it costs", "not_covered")], questions)
    assert not find_leaks([_example("how much does it costs", "techniques")], questions)


def test_examples_are_read_from_intents_only_and_removed_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n    - helo\n'
        "- synonym: cranial\n  examples: |\n    - hello\n- intent: thanks\n  examples: |\n    - thanks a lot\n",
        encoding="utf-8",
    )
    examples = nlu_examples(path)
    assert [(e.intent, e.text) for e in examples] == [("greet", "hi"), ("greet", "helo"), ("thanks", "thanks a lot")]
    leaks = find_leaks(examples, [Question("hello", ("greet",))])
    assert [leak.example.text for leak in leaks] == ["helo"]
    remove(leaks)
    assert [e.text for e in nlu_examples(path)] == ["hi", "thanks a lot"]
    assert "- hello" in path.read_text(encoding="utf-8"), "a synonym is not an example"
