"""The NLU profile's timer and its refusal without a model (the profile itself needs a trained model: `make`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from omt.bench.nlu_profile import main, median_ms, timed


def test_a_timed_node_returns_its_result_and_records_each_call() -> None:
    spent: list[float] = []
    node = timed(lambda a, b: a + b, spent)
    assert node(2, 3) == 5 and node(1, 1) == 2
    assert len(spent) == 2 and all(s >= 0 for s in spent)


def test_a_failing_node_raises_its_error_and_is_still_timed() -> None:
    spent: list[float] = []

    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        timed(boom, spent)()
    assert len(spent) == 1


def test_median_is_in_milliseconds() -> None:
    assert median_ms([0.001, 0.003, 0.002]) == pytest.approx(2.0)
    assert median_ms([]) == 0.0


def test_without_a_model_it_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", str(tmp_path / "none.tar.gz")]) == 2
    assert "no such model" in capsys.readouterr().err
