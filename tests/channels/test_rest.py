"""Bad input over REST against the running stack: always a polite, contract-shaped reply."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from omt.bench.evaluate import contract_faults, load_questions, post, report, run
from omt.core.contract import ALL_IDS, parent_id
from omt.core.knowledge import Knowledge
from omt.ops.stack import Stack

pytestmark = pytest.mark.stack
QUESTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "questions.yml"

BAD_INPUTS = [
    "",
    "   \n\t ",
    "a" * 10_000,
    ("does it hurt " * 800)[:10_000],
    "😀😀🙏",
    "¿El tratamiento osteopático duele?",
    "Tut die Behandlung weh?",
    "/greet",
    "/nonexistent_intent",
    '/how_it_feels{"technique": "<script>alert(1)</script>"}',
    "/restart",
    '/emergency{"x": 1}',
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "{{ 7*7 }} ${jndi:ldap://x} %s %n",
    "\u202etxet desrever\u200b\u200d",
]


def _turn(rest_url: str, text: str, sender: str | None = None) -> list[dict]:
    return post(rest_url, sender or f"test-{uuid.uuid4().hex}", text)


@pytest.mark.parametrize("text", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_input_gets_one_polite_contract_reply(rest_url: str, knowledge: Knowledge, text: str) -> None:
    messages = _turn(rest_url, text)
    answer_id, faults = contract_faults(messages, knowledge)
    assert parent_id(answer_id) in ALL_IDS
    assert not faults
    shown = " ".join(str(m.get("text") or "") for m in messages)
    assert shown.strip(), "never silence"
    assert "Traceback" not in shown and "<script>" not in shown


def test_over_long_message_gets_a_clear_http_error(rest_url: str) -> None:
    body = json.dumps({"sender": f"test-{uuid.uuid4().hex}", "message": "a" * 10_001}).encode()
    req = urllib.request.Request(rest_url, data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400
    assert "10000" in err.value.read().decode().replace(",", "")


def test_a_conversation_with_follow_ups(rest_url: str, knowledge: Knowledge) -> None:
    sender = f"test-{uuid.uuid4().hex}"
    first = _turn(rest_url, "hi", sender)
    assert contract_faults(first, knowledge)[0] == "greet"
    assert knowledge.notice.text in first[0]["text"]
    techniques = _turn(rest_url, "which techniques do they use", sender)
    assert contract_faults(techniques, knowledge)[0] == "techniques"
    assert knowledge.notice.text not in techniques[0]["text"]
    assert contract_faults(_turn(rest_url, "the third one", sender), knowledge)[0] == "myofascial_release"
    assert contract_faults(_turn(rest_url, "tell me more", sender), knowledge)[0] == "myofascial_release"


def test_a_conversation_longer_than_the_tracker_window_keeps_its_context(stack: Stack, knowledge: Knowledge) -> None:
    """endpoints.yml reads a conversation as its last `window_turns` messages (omt/rasa/sql_store.py).

    The notice, given once at the first turn, must not come back when that turn is long
    out of the window; a follow-up still works; every message is stored exactly once.
    """
    window = yaml.safe_load(stack.endpoints.read_text(encoding="utf-8"))["tracker_store"]["window_turns"]
    sender = f"test-{uuid.uuid4().hex}"
    assert knowledge.notice.text in _turn(stack.rest_url, "hi", sender)[0]["text"]
    questions = [
        "does it hurt",
        "what is omt",
        "can my baby have it",
        "is it safe when pregnant",
        "what is muscle energy",
    ]
    sent = ["hi", *(questions * 2)[: window + 2], "which techniques do they use", "the third one", "tell me more"]
    replies = {text: _turn(stack.rest_url, text, sender) for text in sent[1:]}
    assert contract_faults(replies["tell me more"], knowledge)[0] == "myofascial_release"
    for text, messages in replies.items():
        assert contract_faults(messages, knowledge)[1] == [], text
        assert knowledge.notice.text not in " ".join(str(m.get("text") or "") for m in messages), text
    with sqlite3.connect(stack.tracker_db) as db:
        stored = [
            json.loads(data)["text"]
            for (data,) in db.execute(
                "SELECT data FROM events WHERE sender_id = ? AND type_name = 'user' ORDER BY id", (sender,)
            )
        ]
    assert stored == sent


def test_emergency_is_answered_alone_mid_conversation(rest_url: str, knowledge: Knowledge) -> None:
    sender = f"test-{uuid.uuid4().hex}"
    _turn(rest_url, "what is omt", sender)
    messages = _turn(rest_url, "what is muscle energy, also my chest hurts really bad right now", sender)
    assert contract_faults(messages, knowledge) == ("emergency", [])
    assert len(messages) == 2 and "911" in messages[0]["text"]


def test_own_question_set(rest_url: str, knowledge: Knowledge) -> None:
    """Our own questions (not training data, not the dev set): a regression floor."""
    turns = list(run(rest_url, load_questions(QUESTIONS), knowledge))
    figures, _ = report(turns, 0.9)
    assert figures["citation_faults"] == 0
    assert figures["emergency_right"] == figures["emergency_total"]
    assert figures["accuracy"] >= 0.9, figures["misses"]
