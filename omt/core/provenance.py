"""One structured log line per reply: what was answered, never what the patient wrote.

Lines are JSON: time, hashed conversation id, answer id, intent confidence, knowledge
version and channel. `summarise` turns them into rates per id, channel and day.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from omt.core.contract import FAILED_TURN_ID, parent_id

logger = logging.getLogger("omt.core.provenance")
DEV_HASH_KEY = "dev-only-not-secret"


def keyed_hash(value: str, key: str) -> str:
    """HMAC-SHA256 of `value` as hex: stable per key, useless without it (ids, phone numbers)."""
    return hmac.new(key.encode(), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def conversation_hash(sender_id: str, key: str | None = None) -> str:
    """Keyed hash of a conversation id, so log lines can be grouped but not traced back."""
    return keyed_hash(sender_id, key or os.environ.get("OMT_HASH_KEY") or DEV_HASH_KEY)[:16]


def reply_record(
    sender_id: str, answer_id: str, confidence: float | None, channel: str | None, version: str
) -> dict[str, Any]:
    """The log record for one reply; holds no patient text by construction."""
    return {
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "conversation": conversation_hash(sender_id),
        "answer_id": answer_id,
        "confidence": None if confidence is None else round(float(confidence), 4),
        "knowledge_version": version,
        "channel": channel or "unknown",
    }


def log_reply(record: dict[str, Any], path: Path | None = None) -> None:
    """Write the record to the `omt.core.provenance` logger and append it to the JSONL file."""
    line = json.dumps(record, sort_keys=True)
    logger.info(line)
    target = path or Path(os.environ.get("OMT_PROVENANCE_LOG", "logs/replies.jsonl"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError as exc:  # a full disk must not stop a patient getting an answer
        logger.warning("cannot write provenance log %s: %s", target, exc)


def summarise(lines: Iterable[str]) -> dict[str, Any]:
    """Answers per id, and not-covered/fallback/emergency/error rates per channel and per day."""
    per_id: collections.Counter[str] = collections.Counter()
    groups: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in lines:
        try:
            rec = json.loads(line)
            full = str(rec["answer_id"])
            answer = parent_id(full)
            key = (str(rec.get("channel", "unknown")), str(rec["time"])[:10])
        except (ValueError, KeyError, TypeError):
            continue
        per_id[answer] += 1
        groups[key]["total"] += 1
        groups[key][answer] += 1
        groups[key]["error"] += full == FAILED_TURN_ID
    rates = {
        f"{channel} {day}": {
            "replies": c["total"],
            **{f"{a}_rate": round(c[a] / c["total"], 4) for a in ("not_covered", "fallback", "emergency", "error")},
        }
        for (channel, day), c in sorted(groups.items())
    }
    return {"answers": dict(per_id.most_common()), "rates": rates}
