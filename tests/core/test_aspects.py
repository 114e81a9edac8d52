"""The aspect detector (omt.core.aspects): which aspect a question asks, and which answer keeps it."""

from __future__ import annotations

import pytest

from omt.core import aspects
from omt.core.contract import KNOWLEDGE_IDS, NOT_COVERED_IDS


@pytest.fixture(scope="module")
def detector() -> aspects.AspectDetector:
    return aspects.load()


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("How much does it cost?", "cost"),
        ("Can I claim on my health insurance", "cost"),
        ("is it covered by my extended health benefits", "cost"),
        ("would managed care pay for it", "cost"),
        ("are you in network with my plan", "cost"),
        ("can I have it through the NHS", "cost"),
        ("my son is autistic, would cranial help", "condition"),
        ("Are there any side effects", "risks"),
        ("Is it SAFE for my dad", "risks"),
        ("How many sessions will I need", "visit"),
        ("do i need a referral", "visit"),
        ("will I be assessed first", "visit"),
        ("what triggers a migraine attack", "condition_itself"),
        ("are migraines hereditary", "condition_itself"),
        ("what's the best mattress for a bad back", "condition_itself"),
        ("does stress cause migraines", "condition_itself"),
        ("is arthritis curable", "cure"),
        ("is walking good for lower back pain", "self_care"),
        ("can OMT make my back pain worse", "risks"),
        ("how long have DOs been doing OMT", "history"),
        ("muscle energy compared to stretching", "compare"),
        ("osteopath vs chiropractor", "compare"),
        ("is there any evidence it works", "evidence"),
        ("can it cure me", "cure"),
        ("does it help tennis elbow", "condition"),
        ("I have knee pain", "condition"),
        ("my shoulder ache is bad", "condition"),
    ],
)
def test_detects_the_aspect(detector: aspects.AspectDetector, text: str, found: str) -> None:
    assert found in detector.detect(text)


@pytest.mark.parametrize(
    "text",
    [
        "does it hurt",
        "what is omt",
        "i have a sore back",
        "what is fascia",
        "who can get omt",
        "how does it work",
        "what topics do you cover",
        "my plan is to try omt",
        "what happens during an osteopathic consultation",
        "does omt help migraines",
        "can it help my lower back pain",
    ],
)
def test_plain_topic_questions_have_no_aspect(detector: aspects.AspectDetector, text: str) -> None:
    assert detector.detect(text) == []


@pytest.mark.parametrize(
    ("answer_id", "text", "routed"),
    [
        ("muscle_energy", "is muscle energy safe for kids", "not_covered.risks"),
        ("pregnancy", "is omt safe in pregnancy", "pregnancy"),
        ("bone_joint_conditions", "is it safe with osteoporosis", "bone_joint_conditions"),
        ("low_back_pain", "is there proof it helps back pain", "low_back_pain"),
        ("migraine", "what foods help with migraines", "not_covered"),
        ("low_back_pain", "how can I prevent back pain at work", "not_covered"),
        ("cranial", "is there proof cranial works", "not_covered"),
        ("not_covered", "what is the capital of france", "not_covered"),
        ("not_covered", "does it help asthma", "not_covered.condition"),
        ("handoff", "what are your opening hours", "handoff"),
        ("greet", "hi, how much is it", "greet"),
        ("how_it_feels.detail", "is it risky", "not_covered.risks"),
        ("bone_joint_conditions", "What is osteoporosis?", "not_covered"),
        ("migraine", "what's a migraine?", "not_covered"),
        ("low_back_pain", "What is low back pain?", "not_covered"),
        ("bone_joint_conditions", "What is osteoporosis, and can OMT help with it?", "bone_joint_conditions"),
        ("what_is_omt", "What is osteopathy?", "what_is_omt"),
        ("not_covered", "can omt help my mental health", "not_covered.condition"),
    ],
)
def test_route(detector: aspects.AspectDetector, answer_id: str, text: str, routed: str) -> None:
    assert detector.route(answer_id, text) == routed


def test_first_aspect_the_topic_does_not_answer_wins(detector: aspects.AspectDetector) -> None:
    assert detector.route("pregnancy", "is it safe in pregnancy and how much is it") == "not_covered.cost"


def test_every_reply_is_a_not_covered_id_with_wording(detector: aspects.AspectDetector) -> None:
    from omt.core.knowledge import get_knowledge

    replies = get_knowledge().replies
    for aspect in detector.aspects.values():
        assert aspect.reply in (*NOT_COVERED_IDS, "personal_advice")
        assert aspect.reply in replies
        assert all(a in KNOWLEDGE_IDS for a in aspect.answered_by)


def test_a_bad_file_fails_loudly() -> None:
    with pytest.raises(ValueError, match="not a not_covered id or personal_advice"):
        aspects.AspectDetector({"aspects": {"x": {"reply": "what_is_omt", "phrases": ["x"]}}})
    with pytest.raises(ValueError, match="unknown answer ids"):
        aspects.AspectDetector({"aspects": {"x": {"reply": "not_covered", "answered_by": ["nope"]}}})


@pytest.mark.parametrize(
    ("answer_id", "text", "routed"),
    [
        ("low_back_pain", "I have back pain, should I see a DO", "personal_advice"),
        ("how_it_feels", "what should I expect at my first visit", "how_it_feels"),
        ("how_it_feels", "will it crack my neck", "how_it_feels"),
        ("low_back_pain", "will you crack my back", "not_covered"),
    ],
)
def test_own_case_and_cracking(detector: aspects.AspectDetector, answer_id: str, text: str, routed: str) -> None:
    assert detector.route(answer_id, text) == routed


@pytest.mark.parametrize(
    ("answer_id", "text", "routed"),
    [
        ("not_covered", "Do I have a trapped nerve?", "personal_advice"),
        ("not_covered", "where should i go on holiday", "not_covered"),
        ("not_covered", "do i have to undress", "not_covered.visit"),
    ],
)
def test_self_diagnosis_is_personal_even_when_not_covered(
    detector: aspects.AspectDetector, answer_id: str, text: str, routed: str
) -> None:
    assert detector.route(answer_id, text) == routed
