"""Actions against tracker fixtures (RasaHQ/financial-demo style): answer ids, payload, events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import actions
from omt.core.knowledge import Knowledge
from omt.core.replies import PARAGRAPHS_KEY
from omt.core.safety import RedFlag

SLOTS: dict[str, Any] = {
    "last_topic": None,
    "technique": None,
    "listed_topics": None,
    "notice_given": True,
    "misses": None,
}


def tracker(
    text: str, intent: str, entities: list[dict[str, Any]] | None = None, ranking: list[str] | None = None, **slots: Any
) -> Tracker:
    ranking_list = [{"name": n, "confidence": 0.1} for n in (ranking or [])]
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "entities": entities or [],
        "intent_ranking": [{"name": intent, "confidence": 0.9}, *ranking_list],
    }
    events = [{"event": "user", "text": text, "parse_data": latest, "input_channel": "rest"}]
    return Tracker("patient-1", {**SLOTS, **slots}, latest, events, False, None, {}, "action_listen")


def run(action: Any, trk: Tracker, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list]:
    monkeypatch.setenv("OMT_PROVENANCE_LOG", str(tmp_path / "replies.jsonl"))
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, trk, {})
    assert len(dispatcher.messages) == 1, "one message (one payload) per turn"
    return dispatcher.messages[0], events


@pytest.fixture()
def go(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    return lambda action, trk: run(action, trk, tmp_path, monkeypatch)


def test_answer_from_intent(go: Any) -> None:
    message, events = go(actions.ActionAnswer(), tracker("does it hurt", "how_it_feels"))
    assert message["custom"]["answer_id"] == "how_it_feels"
    assert message["custom"]["citation"]["section"] == "How Does It Feel?"
    assert SlotSet("last_topic", "how_it_feels") in events


def test_general_intent_refined_by_entity(go: Any) -> None:
    trk = tracker("is omt ok when pregnant", "who_can_get", [{"entity": "population", "value": "pregnancy"}])
    message, _ = go(actions.ActionAnswer(), trk)
    assert message["custom"]["answer_id"] == "pregnancy"


def test_a_question_about_the_range_keeps_the_general_topic(go: Any) -> None:
    entities = [{"entity": "condition", "value": "low_back_pain"}]
    trk = tracker("so osteopaths don't only treat bad backs?", "what_it_treats", entities)
    message, events = go(actions.ActionAnswer(), trk)
    assert message["custom"]["answer_id"] == "what_it_treats"
    assert SlotSet("last_topic", "what_it_treats") in events


def test_techniques_list_is_remembered_for_the_second_one(go: Any) -> None:
    message, events = go(actions.ActionAnswer(), tracker("what techniques are there", "techniques"))
    listed = next(e["value"] for e in events if e["name"] == "listed_topics")
    assert listed == ["soft_tissue", "muscle_energy", "myofascial_release", "cranial"]
    assert [b["payload"] for b in message["buttons"]] == [f"/{t}" for t in listed]
    follow, _ = go(actions.ActionAnswer(), tracker("the second one", "choose_option", listed_topics=listed))
    assert follow["custom"]["answer_id"] == "muscle_energy"


def test_a_number_picks_any_button_of_the_last_list(go: Any) -> None:
    """An SMS "4" reaches Rasa as it is; "Talk to a person" is picked like a topic."""
    message, events = go(actions.ActionNotCovered(), tracker("how much does it cost", "not_covered"))
    listed = next(e["value"] for e in events if e["name"] == "listed_topics")
    assert listed[-1] == "handoff" and message["buttons"][-1]["payload"] == "/handoff"
    number = str(len(listed))
    follow, _ = go(actions.ActionAnswer(), tracker(number, "choose_option", listed_topics=listed))
    assert follow["custom"] == {"answer_id": "handoff", "kind": "service"}
    first, _ = go(actions.ActionAnswer(), tracker("1", "choose_option", listed_topics=listed))
    assert first["custom"]["answer_id"] == listed[0]
    beyond, _ = go(actions.ActionAnswer(), tracker(str(len(listed) + 1), "choose_option", listed_topics=listed))
    assert beyond["custom"]["answer_id"] == "fallback"


def test_every_message_names_its_paragraphs_beside_the_payload(go: Any) -> None:
    """The SMS renders by these ids; `custom` keeps the contract's fields only."""
    message, _ = go(actions.ActionAnswer(), tracker("does it hurt", "how_it_feels", notice_given=None))
    roles = [(p["role"], p["id"]) for p in message[PARAGRAPHS_KEY]]
    assert roles[:2] == [("notice", "notice"), ("answer", "how_it_feels")]
    assert message[PARAGRAPHS_KEY][-1] == {"role": "source", "id": "source_line"}
    assert set(message["custom"]) == {"answer_id", "kind", "citation"}


def test_tell_me_more_uses_the_last_topic(go: Any, knowledge: Knowledge) -> None:
    message, _ = go(actions.ActionAnswer(), tracker("tell me more", "tell_me_more", last_topic="fascia"))
    assert message["custom"]["answer_id"] == "fascia"
    assert knowledge.entries["fascia"].quotes[0].split(":")[0] in message["text"]


def test_follow_up_without_context_falls_back(go: Any) -> None:
    message, events = go(actions.ActionAnswer(), tracker("the second one", "choose_option"))
    assert message["custom"]["answer_id"] == "fallback"
    assert SlotSet("misses", 1.0) in events


def test_first_reply_carries_the_notice_once(go: Any, knowledge: Knowledge) -> None:
    message, events = go(actions.ActionGreet(), tracker("hi", "greet", notice_given=None))
    assert message["text"].startswith(knowledge.notice.text)
    assert SlotSet("notice_given", True) in events
    again, events = go(actions.ActionGreet(), tracker("hi", "greet"))
    assert knowledge.notice.text not in again["text"]
    assert SlotSet("notice_given", True) not in events


@pytest.mark.parametrize(
    ("action", "answer_id"),
    [
        (actions.ActionGreet(), "greet"),
        (actions.ActionGoodbye(), "goodbye"),
        (actions.ActionThanks(), "thanks"),
        (actions.ActionBotChallenge(), "bot_challenge"),
        (actions.ActionCapabilities(), "capabilities"),
        (actions.ActionHandoff(), "handoff"),
        (actions.ActionNotCovered(), "not_covered"),
        (actions.ActionPersonalAdvice(), "personal_advice"),
        (actions.ActionFallback(), "fallback"),
    ],
)
def test_service_actions(go: Any, action: Any, answer_id: str) -> None:
    message, _ = go(action, tracker("something", "x"))
    assert message["custom"] == {"answer_id": answer_id, "kind": "service"}
    assert action.name() == f"action_{answer_id}"


def test_not_covered_offers_ranked_topics(go: Any) -> None:
    message, _ = go(
        actions.ActionNotCovered(), tracker("does omt help asthma", "not_covered", ranking=["what_it_treats"])
    )
    assert message["buttons"][0]["payload"] == "/what_it_treats"


def test_personal_advice_with_a_population_gives_the_cited_fact(go: Any) -> None:
    trk = tracker("im pregnant should i do it", "personal_advice", [{"entity": "population", "value": "pregnancy"}])
    message, _ = go(actions.ActionPersonalAdvice(), trk)
    assert message["custom"]["answer_id"] == "pregnancy"
    assert message["custom"]["citation"]["quotes"]


def test_personal_advice_about_a_child_refers_without_a_citation(go: Any) -> None:
    trk = tracker("what should i do for my son", "personal_advice", [{"entity": "population", "value": "who_can_get"}])
    message, _ = go(actions.ActionPersonalAdvice(), trk)
    assert message["custom"] == {"answer_id": "personal_advice", "kind": "service"}
    assert "/who_can_get" in [b["payload"] for b in message["buttons"]]


def test_second_miss_offers_the_handoff(go: Any) -> None:
    message, events = go(actions.ActionFallback(), tracker("asdf", "nlu_fallback", misses=1.0))
    assert message["custom"]["answer_id"] == "fallback"
    assert message["buttons"][-1]["payload"] == "/handoff"
    assert SlotSet("misses", 2.0) in events


def test_a_good_answer_resets_misses(go: Any) -> None:
    _, events = go(actions.ActionAnswer(), tracker("what is omt", "what_is_omt", misses=2.0))
    assert SlotSet("misses", 0.0) in events


def test_emergency_is_alone_without_notice(go: Any) -> None:
    message, events = go(
        actions.ActionEmergency(), tracker("I have crushing chest pain", "emergency", notice_given=None)
    )
    assert message["custom"] == {"answer_id": "emergency", "kind": "safety"}
    assert "911" in message["text"] and not message["buttons"]
    assert events == [], "no notice, no topic, no slot: the emergency turn changes nothing else"


@pytest.mark.parametrize(
    ("text", "intent", "answer_id"),
    [
        # the screener fired: its verdict picks the reply, whatever the classifier said
        ("i want to end my life", "emergency", "emergency.crisis"),
        ("i want to kill myself", "greet", "emergency.crisis"),
        ("I have crushing chest pain", "crisis", "emergency"),
        # the screener did not fire: the classifier's intent picks it
        ("some words the screener does not know", "crisis", "emergency.crisis"),
        ("some words the screener does not know", "emergency", "emergency"),
    ],
)
def test_emergency_reply_follows_screener_then_intent(go: Any, text: str, intent: str, answer_id: str) -> None:
    message, events = go(actions.ActionEmergency(), tracker(text, intent, notice_given=None))
    assert message["custom"] == {"answer_id": answer_id, "kind": "safety"}
    assert ("988" if answer_id == "emergency.crisis" else "911") in message["text"]
    assert not message["buttons"] and events == []


def test_warning_sign_after_treatment_gets_its_own_reply(go: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The screener's `after_treatment` verdict (a red flag reported after OMT) is sent as its sub-id."""
    flag = RedFlag("neck_artery", "after_treatment", "dizzy since")
    monkeypatch.setattr(actions, "screen", lambda text: flag)
    message, events = go(actions.ActionEmergency(), tracker("so dizzy since my neck treatment", "emergency"))
    assert message["custom"] == {"answer_id": "emergency.after_treatment", "kind": "safety"}
    assert "911" in message["text"] and not message["buttons"] and events == []


def test_emergency_reply_is_logged_with_its_finer_id(go: Any, tmp_path: Any) -> None:
    go(actions.ActionEmergency(), tracker("the classifier alone heard it", "crisis"))
    (record,) = [json.loads(line) for line in (tmp_path / "replies.jsonl").read_text().splitlines()]
    assert record["answer_id"] == "emergency.crisis"


def test_every_reply_is_logged_without_patient_text(go: Any, tmp_path: Any) -> None:
    go(actions.ActionAnswer(), tracker("my name is Jane Canary, does it hurt", "how_it_feels"))
    log = (tmp_path / "replies.jsonl").read_text()
    assert '"answer_id": "how_it_feels"' in log
    assert "Canary" not in log and "patient-1" not in log


def test_typed_restart_greets_and_restarts(go: Any) -> None:
    message, events = go(actions.ActionRestart(), tracker("/restart", "restart"))
    assert message["custom"] == {"answer_id": "greet", "kind": "service"}
    assert events == [{"event": "restart", "timestamp": None}]


def test_typed_back_is_not_silent(go: Any) -> None:
    message, _ = go(actions.ActionBack(), tracker("/back", "back"))
    assert message["custom"]["answer_id"] == "fallback"


# Topic and aspect (omt.core.aspects): a topic's passage never answers an aspect it does not cover.


@pytest.mark.parametrize(
    ("text", "intent", "answer_id"),
    [
        ("is muscle energy safe for kids?", "muscle_energy", "not_covered.risks"),
        ("how much does a cranial session cost", "cranial", "not_covered.cost"),
        ("what should i wear for omt", "what_is_omt", "not_covered.visit"),
        ("can omt help my sciatica", "what_it_treats", "not_covered.condition"),
        ("is omt better than a chiropractor", "what_is_omt", "not_covered.compare"),
        ("can it cure my migraines for good", "migraine", "not_covered"),
    ],
)
def test_topic_question_about_an_uncovered_aspect_is_not_covered(
    go: Any, text: str, intent: str, answer_id: str
) -> None:
    message, events = go(actions.ActionAnswer(), tracker(text, intent))
    assert message["custom"] == {"answer_id": answer_id, "kind": "service"}
    assert not [e for e in events if e.get("name") == "last_topic"], "no cited topic to follow up"


def test_aspect_the_article_speaks_to_keeps_the_cited_answer(go: Any) -> None:
    trk = tracker("is omt safe during pregnancy", "pregnancy", [{"entity": "population", "value": "pregnancy"}])
    message, events = go(actions.ActionAnswer(), trk)
    assert message["custom"]["answer_id"] == "pregnancy"
    assert message["custom"]["citation"]["quotes"]
    assert SlotSet("last_topic", "pregnancy") in events


def test_cost_reply_gives_the_clinic_and_a_person(go: Any, knowledge: Knowledge) -> None:
    message, _ = go(actions.ActionNotCovered(), tracker("does insurance cover it", "not_covered"))
    assert message["custom"] == {"answer_id": "not_covered.cost", "kind": "service"}
    assert knowledge.clinic.phone in message["text"]
    assert {"title": knowledge.buttons["talk_to_person"], "payload": "/handoff"} in message["buttons"]


def test_risks_reply_does_not_pivot_to_topics(go: Any) -> None:
    trk = tracker("what are the side effects", "not_covered", ranking=["what_it_treats", "how_it_feels"])
    message, _ = go(actions.ActionNotCovered(), trk)
    assert message["custom"]["answer_id"] == "not_covered.risks"
    assert [b["payload"] for b in message["buttons"]] == ["/handoff"]


def test_off_topic_gets_plain_not_covered_with_topics(go: Any) -> None:
    message, _ = go(actions.ActionNotCovered(), tracker("tell me a joke", "not_covered", ranking=["what_is_omt"]))
    assert message["custom"]["answer_id"] == "not_covered"
    assert message["buttons"][0]["payload"] == "/what_is_omt"


@pytest.mark.parametrize(
    ("action", "text", "answer_id"),
    [
        (actions.ActionHandoff(), "how much is an appointment with you", "not_covered.cost"),
        (actions.ActionHandoff(), "can i book an appointment", "handoff"),
        (actions.ActionPersonalAdvice(), "will my insurance pay for my omt", "not_covered.cost"),
        (actions.ActionFallback(), "side effects??", "not_covered.risks"),
    ],
)
def test_service_intents_with_an_aspect(go: Any, action: Any, text: str, answer_id: str) -> None:
    message, events = go(action, tracker(text, "x"))
    assert message["custom"]["answer_id"] == answer_id
    assert SlotSet("misses", 1.0) not in events


def test_should_i_about_a_topic_is_personal_advice(go: Any) -> None:
    entities = [{"entity": "population", "value": "who_can_get"}, {"entity": "technique", "value": "cranial"}]
    message, _ = go(actions.ActionAnswer(), tracker("should i take my toddler for cranial", "cranial", entities))
    assert message["custom"] == {"answer_id": "personal_advice", "kind": "service"}, "the referral, not a cited yes"
    assert [b["payload"] for b in message["buttons"]] == ["/who_can_get", "/cranial", "/handoff"]


def test_a_question_for_the_references_gets_the_finer_answer(go: Any) -> None:
    message, events = go(actions.ActionAnswer(), tracker("what are your references?", "about_source"))
    assert message["custom"]["answer_id"] == "about_source.references"
    assert SlotSet("last_topic", "about_source.references") in events


@pytest.mark.parametrize("last_topic", ["about_source", "about_source.references"])
def test_tell_me_more_about_the_source_lists_the_references(go: Any, last_topic: str) -> None:
    message, _ = go(actions.ActionAnswer(), tracker("tell me more", "tell_me_more", last_topic=last_topic))
    assert message["custom"]["answer_id"] == "about_source.references"
    assert message["custom"]["kind"] == "knowledge"


def test_the_action_server_loads_knowledge_matchers_and_lexicon_before_the_first_turn() -> None:
    """Importing the actions module (what `rasa run actions` does before it listens) fills the caches."""
    import actions.actions  # noqa: F401  (imported at the top too; the import is the point)
    from omt.core import aspects, knowledge, safety

    assert aspects.get_detector.cache_info().currsize == 1
    assert knowledge.get_knowledge.cache_info().currsize == 1
    assert safety.default_lexicon.cache_info().currsize == 1
