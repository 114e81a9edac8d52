"""Reply building: one contract payload per turn, citations, buttons, notice."""

from __future__ import annotations

import pytest

from omt.core import replies
from omt.core.contract import KNOWLEDGE_IDS
from omt.core.knowledge import Knowledge, fold


@pytest.mark.parametrize("topic", KNOWLEDGE_IDS)
def test_knowledge_reply_cites_the_article(knowledge: Knowledge, topic: str) -> None:
    reply = replies.knowledge_reply(knowledge, topic)
    custom = reply.custom()
    assert custom["answer_id"] == topic
    assert custom["kind"] == "knowledge"
    citation = custom["citation"]
    assert citation["publisher"] == "WebMD"
    assert citation["reviewed_by"] == "Melinda Ratini, DO, MS"
    assert citation["reviewed_on"] == "2020-11-11"
    assert citation["section"] == knowledge.entries[topic].section
    article = fold(knowledge.source.article_text)
    assert citation["quotes"] and all(fold(q) in article for q in citation["quotes"])
    for words in ("WebMD", "Melinda Ratini, DO, MS", "November 11, 2020"):
        assert words in reply.text
    assert topic not in reply.topics


def test_population_caveat_is_added_and_cited(knowledge: Knowledge) -> None:
    reply = replies.knowledge_reply(knowledge, "how_it_feels", mentioned=["pregnancy"])
    assert reply.answer_id == "how_it_feels"
    assert knowledge.entries["pregnancy"].answer in reply.text
    assert set(knowledge.entries["pregnancy"].quotes) <= set(reply.custom()["citation"]["quotes"])


def test_tell_me_more_gives_the_articles_own_words(knowledge: Knowledge) -> None:
    reply = replies.knowledge_reply(knowledge, "muscle_energy", verbatim=True)
    assert "Think push-pull." in reply.text
    assert reply.answer_id == "muscle_energy"


def test_service_reply_has_no_citation(knowledge: Knowledge) -> None:
    custom = replies.service_reply(knowledge, "greet").custom()
    assert custom == {"answer_id": "greet", "kind": "service"}


def test_handoff_uses_clinic_config(knowledge: Knowledge) -> None:
    text = replies.service_reply(knowledge, "handoff").text
    assert knowledge.clinic.phone in text and knowledge.clinic.name in text


def test_capabilities_offers_topics_as_buttons(knowledge: Knowledge) -> None:
    reply = replies.service_reply(knowledge, "capabilities")
    assert len(reply.buttons) >= 3
    assert all(b.payload.startswith("/") and b.payload[1:] in KNOWLEDGE_IDS for b in reply.buttons)
    assert reply.buttons[0].title == knowledge.entries[reply.topics[0]].title


def test_not_covered_offers_the_nearest_topics(knowledge: Knowledge) -> None:
    reply = replies.not_covered_reply(knowledge, ["low_back_pain", "greet", "migraine"])
    assert reply.answer_id == "not_covered"
    assert reply.topics == ["low_back_pain", "migraine"]
    assert "citation" not in reply.custom()


def test_fallback_offers_candidates_then_the_handoff(knowledge: Knowledge) -> None:
    first = replies.fallback_reply(knowledge, ["fascia", "myofascial_release"], misses=1)
    assert first.answer_id == "fallback"
    assert first.topics == ["fascia", "myofascial_release"]
    assert first.buttons[-1].payload == "/capabilities"
    second = replies.fallback_reply(knowledge, ["fascia"], misses=2)
    assert second.answer_id == "fallback"
    assert second.buttons[-1].payload == "/handoff"


def test_personal_advice_adds_the_general_cited_fact(knowledge: Knowledge) -> None:
    plain = replies.personal_advice_reply(knowledge)
    assert plain.custom() == {"answer_id": "personal_advice", "kind": "service"}
    with_fact = replies.personal_advice_reply(knowledge, ["cranial", "bone_joint_conditions"])
    assert with_fact.answer_id == "bone_joint_conditions"
    assert "gentler form" in with_fact.text
    assert with_fact.text.startswith(plain.text)
    assert with_fact.buttons[-1].payload == "/handoff"


def test_personal_advice_for_a_child_refers_and_offers_the_topic(knowledge: Knowledge) -> None:
    """ "What should I do for my son?" is not answered by "people of every age can get OMT"."""
    reply = replies.personal_advice_reply(knowledge, ["who_can_get"])
    assert reply.custom() == {"answer_id": "personal_advice", "kind": "service"}
    assert reply.text == replies.personal_advice_reply(knowledge).text
    assert [b.payload for b in reply.buttons] == ["/who_can_get", "/handoff"]
    many = replies.personal_advice_reply(knowledge, ["who_can_get", "cranial", "fascia", "migraine", "techniques"])
    assert len(many.buttons) == replies.MAX_BUTTONS and many.buttons[-1].payload == "/handoff"


@pytest.mark.parametrize(
    ("key", "answer_id", "number"),
    [
        ("emergency", "emergency", "911"),
        ("after_treatment", "emergency.after_treatment", "911"),
        ("crisis", "emergency.crisis", "988"),
        ("no_such_key", "emergency", "911"),  # the safety path never fails: 911
    ],
)
def test_emergency_reply_is_alone_and_never_gets_the_notice(
    knowledge: Knowledge, key: str, answer_id: str, number: str
) -> None:
    reply = replies.emergency_reply(knowledge, key)
    assert reply.custom() == {"answer_id": answer_id, "kind": "safety"}
    assert number in reply.text.split(". ", 1)[0], "the call to action comes first"
    assert not reply.buttons and reply.citation is None
    assert replies.with_notice(knowledge, reply) is reply


def test_notice_leads_the_first_reply(knowledge: Knowledge) -> None:
    reply = replies.with_notice(knowledge, replies.knowledge_reply(knowledge, "how_it_feels"))
    assert reply.notice and reply.text.startswith(knowledge.notice.text)
    assert reply.answer_id == "how_it_feels"


def _every_reply(knowledge: Knowledge) -> list[replies.Reply]:
    shapes = [replies.knowledge_reply(knowledge, t, mentioned=replies.CAVEAT_TOPICS) for t in knowledge.entries]
    shapes += [replies.knowledge_reply(knowledge, t, verbatim=True) for t in knowledge.entries]
    shapes += [replies.service_reply(knowledge, name) for name in ("greet", "handoff", "capabilities")]
    shapes.append(replies.service_reply(knowledge, "error", answer_id="fallback.error"))
    shapes += [replies.personal_advice_reply(knowledge, ["pregnancy"]), replies.fallback_reply(knowledge, [], 1)]
    shapes += [replies.emergency_reply(knowledge, key) for key in ("emergency", "crisis")]
    return shapes + [replies.with_notice(knowledge, r) for r in shapes]


def test_every_reply_names_its_paragraphs_role_and_id(knowledge: Knowledge) -> None:
    """The text is its paragraphs' knowledge texts, in order: what the SMS renders by id."""
    for reply in _every_reply(knowledge):
        assert reply.paragraphs, reply.answer_id
        texts = [replies.paragraph_text(knowledge, p) for p in reply.paragraphs]
        assert reply.text == "\n\n".join(texts), reply.answer_id
        message = reply.message()
        assert message[replies.PARAGRAPHS_KEY] == [{"role": p.role, "id": p.id} for p in reply.paragraphs]
        assert replies.PARAGRAPHS_KEY not in message["custom"], "the contract's payload is kept exactly"
        assert [replies.Paragraph.parse(p) for p in message[replies.PARAGRAPHS_KEY]] == list(reply.paragraphs)


def test_paragraph_roles_of_a_first_cited_answer(knowledge: Knowledge) -> None:
    reply = replies.with_notice(knowledge, replies.knowledge_reply(knowledge, "how_it_feels", mentioned=["pregnancy"]))
    assert [(p.role, p.id) for p in reply.paragraphs] == [
        ("notice", "notice"),
        ("answer", "how_it_feels"),
        ("answer", "pregnancy"),
        *([("gap", "pregnancy")] if knowledge.entries["pregnancy"].gap else []),
        ("source", "source_line"),
    ]
    crisis = replies.emergency_reply(knowledge, "crisis")
    assert [(p.role, p.id) for p in crisis.paragraphs] == [("emergency", "crisis")]


def test_options_are_every_buttons_answer_id(knowledge: Knowledge) -> None:
    """A "Talk to a person" button can be picked by its number like a topic."""
    reply = replies.not_covered_reply(knowledge, ["migraine"], "not_covered.cost")
    assert reply.options[-1:] == ["handoff"] and "handoff" not in reply.topics
    fallback = replies.fallback_reply(knowledge, ["migraine", "pregnancy"], 1)
    assert fallback.options == ["migraine", "pregnancy", "capabilities"]
    assert replies.Paragraph.parse({"role": "answer"}) is None and replies.Paragraph.parse("x") is None
