"""The typo generator makes one small edit per chosen word, deterministically."""

from __future__ import annotations

import random
from typing import Any

from omt.bench.typos import perturb, perturb_questions, perturb_word


def test_each_edit_changes_one_letter_position() -> None:
    rng = random.Random(1)
    for _ in range(200):
        out = perturb_word("treatment", rng)
        assert abs(len(out) - len("treatment")) <= 1
        assert out[0] == "t" and out[-1] == "t"


def test_short_words_and_numbers_are_kept() -> None:
    assert perturb("is it ok at 40", random.Random(3)) == "is it ok at 40"


def test_at_least_one_word_changes() -> None:
    assert perturb("does treatment hurt", random.Random(0)) != "does treatment hurt"


def test_question_files_keep_answers_and_are_deterministic() -> None:
    question = "what is myofascial release"
    spec: dict[str, Any] = {
        "single": [{"q": question, "ok": ["myofascial_release"]}],
        "multi": [{"turns": [{"q": "which techniques exist", "ok": ["techniques"]}]}],
    }
    a, b = perturb_questions(spec, seed=5), perturb_questions(spec, seed=5)
    assert a == b
    assert a["single"][0]["ok"] == ["myofascial_release"]
    assert a["single"][0]["q"] != question
