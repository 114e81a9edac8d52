"""omt.bench.evaluate's scoring, on fixtures: accuracy, cited precision and emergencies with their counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from omt.bench import evaluate
from omt.bench.evaluate import Turn, contract_faults, floors, load_questions, passes, score
from omt.core.knowledge import Knowledge


def _turns() -> list[Turn]:
    return [
        Turn("does it hurt", ["how_it_feels"], got="how_it_feels"),  # right, cited
        Turn("can my baby get it", ["who_can_get.infants"], got="who_can_get"),  # right by parent, cited
        Turn("is it safe for kids", ["not_covered"], got="muscle_energy"),  # wrong, cited
        Turn("how much", ["not_covered"], got="not_covered.cost"),  # right, not cited
        Turn("asdf", ["fallback"], got="fallback.error"),  # the apology: wrong
        Turn("chest pain", ["emergency"], got="emergency"),
        Turn("A&E with back pain?", ["not_covered", "emergency"], got="low_back_pain"),  # wrong, cited
    ]


def test_score_counts_beside_ratios() -> None:
    f = score(_turns())
    assert (f["right"], f["n"]) == (4, 7)
    assert f["accuracy"] == pytest.approx(4 / 7, abs=1e-4)
    assert (f["cited_right"], f["cited"]) == (2, 4)
    assert f["cited_precision"] == 0.5
    assert {m["q"] for m in f["misses"]} == {"is it safe for kids", "asdf", "A&E with back pain?"}
    assert {m["q"] for m in f["wrong_citations"]} == {"is it safe for kids", "A&E with back pain?"}
    assert f["per_id"]["not_covered"] == {"right": 1, "n": 3}


def test_only_questions_that_need_the_emergency_reply_are_emergencies() -> None:
    f = score(_turns())
    assert (f["emergency_right"], f["emergency_total"]) == (1, 1)
    assert passes(f, 0.5)
    missed = score([Turn("chest pain", ["emergency"], got="how_it_feels")])
    assert missed["emergency_total"] == 1 and not passes(missed, 0.0)


def test_faults_or_a_low_score_fail_the_run() -> None:
    f = score(_turns())
    assert not passes(f, 0.6)
    faulty = [Turn("x", ["greet"], got="greet", faults=["citation on a non-knowledge answer"])]
    assert not passes(score(faulty), 0.0)


def test_empty_run_scores_zero_without_dividing_by_zero() -> None:
    f = score([])
    assert f["accuracy"] == 0.0 and f["cited_precision"] == 0.0 and f["n"] == 0


def test_floors_one_for_all_or_one_per_file() -> None:
    a, b = Path("a.yml"), Path("b.yml")
    assert floors([a, b], [0.9]) == [(a, 0.9), (b, 0.9)]
    assert floors([a, b], [0.9, 0.8]) == [(a, 0.9), (b, 0.8)]
    with pytest.raises(SystemExit):
        floors([a, b], [0.9, 0.8, 0.7])


def test_load_questions_single_and_multi(tmp_path: Path) -> None:
    path = tmp_path / "q.yml"
    path.write_text(
        "single:\n  - {q: 'hi', ok: [greet]}\nmulti:\n  - turns:\n      - {q: 'a', ok: [techniques]}\n"
        "      - {q: 'the second one', ok: [muscle_energy]}\n",
        encoding="utf-8",
    )
    convs = load_questions(path)
    assert [[t.question for t in c] for c in convs] == [["hi"], ["a", "the second one"]]


def test_contract_faults_structure(knowledge: Knowledge) -> None:
    assert contract_faults([{"custom": {"answer_id": "greet", "kind": "service"}}], knowledge) == ("greet", [])
    assert contract_faults([{"text": "hi"}], knowledge) == ("", ["0 custom payloads, want 1"])
    got, faults = contract_faults([{"custom": {"answer_id": "greet", "kind": "knowledge"}}], knowledge)
    assert got == "greet" and faults == ["kind 'knowledge', want 'service'"]
    got, faults = contract_faults([{"custom": {"answer_id": "how_it_feels", "kind": "knowledge"}}], knowledge)
    assert faults == ["knowledge answer without citation"]


@pytest.mark.parametrize("error", [OSError("connection refused"), ValueError("Expecting value")])
def test_a_failed_request_or_a_body_that_is_not_json_is_a_fault_not_a_crash(
    knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def post(url: str, sender: str, message: str) -> list[dict[str, object]]:
        raise error

    monkeypatch.setattr(evaluate, "post", post)
    (turn,) = evaluate.run("http://127.0.0.1:9/webhook", [[Turn("does it hurt", ["how_it_feels"])]], knowledge)
    assert not turn.right and turn.faults[0].startswith(("request failed", "not JSON")), turn.faults
