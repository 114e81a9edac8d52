"""The one scoring rule shared by evaluate, the NLU bench, thresholds, the load generator and Locust."""

from __future__ import annotations

import json

import pytest

from omt.bench.scoring import contract_payload, is_cited, is_right, reply_problem


@pytest.mark.parametrize(
    ("got", "ok", "right"),
    [
        ("who_can_get", ["who_can_get"], True),
        ("who_can_get.infants", ["who_can_get"], True),  # finer reply, plain label
        ("who_can_get", ["who_can_get.infants"], True),  # plain reply, finer label
        ("not_covered.cost", ["not_covered.visit"], True),  # siblings share the parent
        ("techniques", ["what_it_treats", "not_covered"], False),
        ("fallback", ["fallback"], True),
        ("fallback.error", ["fallback"], False),  # the failed-turn apology is never right
        ("fallback.error", ["fallback.error"], False),
        ("", ["not_covered"], False),
    ],
)
def test_is_right_compares_parents_on_both_sides_and_never_credits_the_apology(
    got: str, ok: list[str], right: bool
) -> None:
    assert is_right(got, ok) is right


def test_is_cited_means_a_knowledge_answer() -> None:
    assert is_cited("who_can_get.infants") and is_cited("about_source")
    assert not is_cited("not_covered.cost") and not is_cited("emergency") and not is_cited("")


def _reply(*customs: dict[str, str]) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = [{"recipient_id": "x", "text": "hi"}]
    return messages + [{"recipient_id": "x", "custom": c} for c in customs]


def test_contract_payload_wants_exactly_one_known_id() -> None:
    payload, problem = contract_payload(_reply({"answer_id": "greet", "kind": "service"}))
    assert problem is None and payload == {"answer_id": "greet", "kind": "service"}
    assert contract_payload(_reply())[1] == "0 custom payloads, want 1"
    assert contract_payload(_reply({"answer_id": "greet"}, {"answer_id": "thanks"}))[1] == "2 custom payloads, want 1"
    assert "unknown answer_id" in str(contract_payload(_reply({"answer_id": "weather"}))[1])
    assert contract_payload({"text": "not a list"})[1] == "not a list of messages"


def test_reply_problem_one_rule_for_every_client() -> None:
    good = json.dumps(_reply({"answer_id": "how_it_feels", "kind": "knowledge"})).encode()
    apology = json.dumps(_reply({"answer_id": "fallback.error", "kind": "service"})).encode()
    no_payload = b'[{"text": "hi"}]'
    assert reply_problem("webhook", 200, good) is None
    assert reply_problem("webhook", 200, good.decode()) is None  # Locust hands over text
    assert reply_problem("webhook", 200, apology) == "the turn failed on our side (apology)"
    assert reply_problem("webhook", 200, no_payload) is not None, "our assistant always sends one payload"
    assert reply_problem("any_webhook", 200, no_payload) is None, "a bot without payloads (rasa init)"
    assert reply_problem("any_webhook", 200, b"[]") is not None
    assert reply_problem("webhook", 429, b"slow down") is not None
    assert reply_problem("webhook", 200, b"<html>") is not None
    assert reply_problem("parse", 200, b'{"intent": {"name": "greet"}}') is None
    assert reply_problem("parse", 200, b"not json") is not None
    assert reply_problem("parse", 200, b"[]") is not None
