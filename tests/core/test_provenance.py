"""Provenance log lines: useful for rates, useless for identifying anyone."""

from __future__ import annotations

import json
from pathlib import Path

from omt.core.provenance import conversation_hash, log_reply, reply_record, summarise
from omt.ops.log_summary import main as summary_main


def test_record_has_the_fields_and_no_sender(tmp_path: Path) -> None:
    record = reply_record("+15550100123", "how_it_feels", 0.93456, "rest", "abc123")
    assert set(record) == {"time", "conversation", "answer_id", "confidence", "knowledge_version", "channel"}
    assert "+1555" not in json.dumps(record)
    assert record["conversation"] == conversation_hash("+15550100123")
    assert record["confidence"] == 0.9346


def test_hash_depends_on_the_key() -> None:
    assert conversation_hash("a", key="k1") != conversation_hash("a", key="k2")


def test_summary_rates_per_channel_and_day(tmp_path: Path, capsys: object) -> None:
    log = tmp_path / "replies.jsonl"
    for answer_id, channel in [
        ("fallback", "rest"),
        ("how_it_feels", "rest"),
        ("emergency", "sms"),
        ("who_can_get.infants", "sms"),
    ]:
        log_reply(reply_record("s", answer_id, None, channel, "v"), path=log)
    log.write_text(log.read_text() + "not json\n")
    summary = summarise(log.read_text().splitlines())
    assert summary["answers"]["who_can_get"] == 1
    (rest,) = [v for k, v in summary["rates"].items() if k.startswith("rest ")]
    assert rest["replies"] == 2 and rest["fallback_rate"] == 0.5
    assert summary_main([str(log)]) == 0
