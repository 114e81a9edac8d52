"""The load tooling on a few requests: the closed-loop generator, the storage check and the bench report.

No timing is asserted (the machine may be busy); counts, errors, stored events and the
report's fields are.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import rasa.cli

from omt.bench import bench_report
from omt.bench.load import count_user_events, seconds, storage_check
from omt.bench.loadgen import Target, closed_loop, percentile, source_address, turn_latencies
from omt.bench.patients import QUESTIONS, long_conversation, moodbot_conversations, our_conversations
from omt.ops.stack import Stack

RASA_INIT_PROJECT = Path(rasa.cli.__file__).parent / "initial_project"


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([10.0], 95) == 10.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_durations_and_storage_check() -> None:
    assert [seconds(d) for d in ("5m", "30s", "90", "1h2m3s")] == [300, 30, 90, 3723]
    assert storage_check({"a": 2, "b": 1}, {"a": 2, "b": 1}) == []
    assert storage_check({"a": 2}, {"a": 1, "c": 1}) == [
        {"sender": "a", "sent": 2, "stored": 1},
        {"sender": "c", "sent": 0, "stored": 1},
    ]


def test_each_user_connects_from_its_own_loopback_address() -> None:
    assert source_address(300, "http://127.0.0.1:5005/x") == ("127.0.2.51", 0)
    assert source_address(0, "http://example.org/x") is None


def test_patients_say_our_own_questions_and_the_reference_bots_examples() -> None:
    convs = our_conversations(50, seed=1)
    assert len(convs) == 50 and all(2 <= len(c) <= 6 for c in convs)
    assert our_conversations(5, seed=1) == convs[:5]  # reproducible
    assert "dev_questions" not in str(QUESTIONS)
    assert len(long_conversation(100)) == 100
    mood = moodbot_conversations(RASA_INIT_PROJECT, 10)
    assert len(mood) == 10 and all(len(c) >= 4 for c in mood)


@pytest.mark.stack
def test_closed_loop_sends_counts_and_every_message_is_stored(stack: Stack) -> None:
    prefix = f"smoke-{uuid.uuid4().hex[:8]}"
    run = closed_loop(Target(stack.rest_url), our_conversations(4, seed=5), users=2, max_requests=8, prefix=prefix)
    assert len(run.samples) == 8 and sum(run.sent.values()) == 8
    assert run.errors == 0, run.error_samples
    stored = count_user_events(f"sqlite:///{stack.tracker_db}", prefix)
    assert storage_check(run.sent, stored) == []
    summary = run.summary()
    assert summary["requests"] == 8 and summary["errors"] == 0 and summary["conversations"] == len(run.sent)
    assert summary["p50_ms"] is not None and summary["p95_ms"] >= summary["p50_ms"]


@pytest.mark.stack
def test_bench_report_from_a_small_run(stack: Stack, tmp_path: Path) -> None:
    target, scripts = Target(stack.rest_url), our_conversations(6, seed=9)
    single = closed_loop(target, scripts, users=1, max_requests=4, prefix="smoke-single")
    levels = [closed_loop(target, scripts, users=u, max_requests=4, prefix=f"smoke-u{u}").summary() for u in (1, 2)]
    long = closed_loop(target, [long_conversation(6)], users=1, max_requests=6, prefix="smoke-long")
    assert len(turn_latencies(long)) == 6
    results = {
        "quick": True,
        "ours": {
            "startup_s": 1.0,
            "single_webhook": single.summary(),
            "levels": levels,
            "long": {"turns": 6, "errors": long.errors, "latencies_ms": turn_latencies(long)},
        },
        "reference": {"skipped": "test"},
        "cluster": {"skipped": "test"},
    }
    json_path, png_path = tmp_path / "bench.json", tmp_path / "bench.png"
    bench_report.write(results, json_path, png_path)
    data = json.loads(json_path.read_text())
    verdicts = {t["id"]: t["pass"] for t in data["targets"]}
    assert set(verdicts) == {"webhook_p50", "throughput", "long_conversation", "vs_reference", "errors"}
    assert verdicts["errors"] is True
    assert verdicts["vs_reference"] is None and verdicts["long_conversation"] is None  # not measured: n/a, not PASS
    assert [lv["users"] for lv in data["ours"]["levels"]] == [1, 2]
    assert data["long_summary"]["window"] >= 1
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = bench_report.table(data)
    assert "errors, all runs" in text and "n/a" in text and "skipped: test" in text
