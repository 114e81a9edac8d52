"""How a reply is scored: one definition for evaluate, the NLU bench, thresholds, the load generator and Locust.

Several tools judge replies; when each had its own rule they disagreed (a failed turn's
apology counted as right in one and as an error in another). This module holds the
rules once. It imports only the standard library and omt.core.contract, so Locust's own venv
(which has no Rasa) imports it too.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Sequence

from omt.core.contract import ALL_IDS, FAILED_TURN_ID, KNOWLEDGE_IDS, parent_id

# What a response should be: our assistant's webhook reply (exactly one contract payload),
# any bot's webhook reply (the `rasa init` reference bot has no payload), or /model/parse.
ReplyKind = Literal["webhook", "any_webhook", "parse"]


def is_right(got: str, ok: Sequence[str]) -> bool:
    """Whether answer `got` is one of the allowed ids, compared by parent on both sides.

    `who_can_get.infants` answers a question labelled `who_can_get` and the other way
    round. The apology of a failed turn (`fallback.error`) is never right, even where a
    plain `fallback` ("please rephrase") is allowed: it means our side broke.
    """
    if not got or got == FAILED_TURN_ID:
        return False
    return parent_id(got) in {parent_id(o) for o in ok}


def is_cited(got: str) -> bool:
    """Whether the answer is a knowledge answer, one that cites the article."""
    return parent_id(got) in KNOWLEDGE_IDS


def contract_payload(messages: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A turn's one contract payload, and why the messages are not one contract reply (None if they are)."""
    if not isinstance(messages, list):
        return None, "not a list of messages"
    customs = [m["custom"] for m in messages if isinstance(m, dict) and isinstance(m.get("custom"), dict)]
    if len(customs) != 1:
        return (customs[0] if customs else None), f"{len(customs)} custom payloads, want 1"
    answer_id = str(customs[0].get("answer_id") or "")
    if parent_id(answer_id) not in ALL_IDS:
        return customs[0], f"unknown answer_id {answer_id!r}"
    return customs[0], None


def reply_problem(kind: ReplyKind, status: int, body: bytes | str) -> str | None:
    """Why a response does not count as a good reply, or None.

    Not 200, not JSON, no bot message; for our webhook also not exactly one payload with
    a contract id, or the apology of a failed turn.
    """
    if status != 200:
        return f"HTTP {status}: {body[:120]!r}"
    try:
        data = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:120]!r}"
    if kind == "parse":
        return None if isinstance(data, dict) and "intent" in data else f"no intent: {body[:120]!r}"
    if not (isinstance(data, list) and data):
        return f"no bot message: {body[:120]!r}"
    if kind == "any_webhook":
        return None
    payload, problem = contract_payload(data)
    if problem or payload is None:
        return f"{problem}: {body[:120]!r}"
    if payload.get("answer_id") == FAILED_TURN_ID:
        return "the turn failed on our side (apology)"
    return None
