"""The answer contract (README, "Reply payload"): the ids every reply may carry.

Kept in one place so that loaders, actions, renderers and tests agree on spelling.
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["knowledge", "service", "safety"]

KNOWLEDGE_IDS: Final = (
    "what_is_omt",
    "how_it_works",
    "how_it_feels",
    "techniques",
    "soft_tissue",
    "muscle_energy",
    "myofascial_release",
    "cranial",
    "fascia",
    "what_it_treats",
    "low_back_pain",
    "migraine",
    "who_can_get",
    "bone_joint_conditions",
    "pregnancy",
    "do_training",
    "other_treatments",
    "about_source",
)

SERVICE_IDS: Final = (
    "greet",
    "goodbye",
    "thanks",
    "bot_challenge",
    "capabilities",
    "not_covered",
    "personal_advice",
    "handoff",
    "fallback",
)

SAFETY_IDS: Final = ("emergency",)
# Intents that `action_answer` serves besides the knowledge ids (each knowledge id is also
# the intent that asks for it, and a one-step rule sends it to `action_answer`): follow-ups
# that take their topic from the conversation. tests/test_contract.py checks domain.yml and
# data/rules.yml against these lists.
FOLLOW_UP_INTENTS: Final = ("tell_me_more", "choose_option")
# Finer "the article does not cover that" replies (they count as `not_covered`): cost and
# insurance, a visit's practical side, risks and side effects, a condition the article
# does not name, a comparison with other therapies; plain `not_covered` for the rest,
# off-topic requests included. Chosen by omt/core/aspects.py, worded in knowledge/service.yml.
NOT_COVERED_IDS: Final = (
    "not_covered",
    "not_covered.cost",
    "not_covered.visit",
    "not_covered.risks",
    "not_covered.condition",
    "not_covered.compare",
)
# The safety reply for each `reply` key of the red-flag screener (and of the classifier's
# `emergency`/`crisis` intents): its name in knowledge/service.yml -> the answer id it is sent
# as. Finer ids of `emergency`, so that the web can offer 988 or 911 and every other client
# still reads an emergency.
SAFETY_REPLIES: Final = {
    "emergency": "emergency",
    "crisis": "emergency.crisis",
    "after_treatment": "emergency.after_treatment",
}
# The apology when a turn fails on our side (action server or store down; omt/rasa/faults.py):
# not an id of its own, a finer topic of `fallback`, as the contract allows.
FAILED_TURN_ID: Final = "fallback.error"

ALL_IDS: Final = KNOWLEDGE_IDS + SERVICE_IDS + SAFETY_IDS


def parent_id(answer_id: str) -> str:
    """`who_can_get.infants` counts as `who_can_get` (contract: finer topics)."""
    return answer_id.split(".", 1)[0]


def is_safety(answer_id: str) -> bool:
    """An emergency reply of any kind: it goes first and alone, never with the notice."""
    return parent_id(answer_id) in SAFETY_IDS


def kind_of(answer_id: str) -> Kind:
    """The payload `kind` that belongs to an answer id."""
    base = parent_id(answer_id)
    if base in KNOWLEDGE_IDS:
        return "knowledge"
    if base in SAFETY_IDS:
        return "safety"
    if base in SERVICE_IDS:
        return "service"
    raise ValueError(f"unknown answer_id {answer_id!r}")
