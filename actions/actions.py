"""Custom actions: thin adapters from the tracker to `omt.core.replies` and back.

Each action picks a reply; the wording lives in knowledge/, the choice logic in
omt.core.routing, the payload shape in omt.core.replies. Every reply is logged (no patient text).
"""

from __future__ import annotations

import abc
from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, Restarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from omt.core import aspects, replies, routing
from omt.core.contract import KNOWLEDGE_IDS, SERVICE_IDS, is_safety
from omt.core.knowledge import Knowledge, get_knowledge
from omt.core.provenance import log_reply, reply_record
from omt.core.replies import Reply
from omt.core.safety import screen


def _intent(tracker: Tracker) -> tuple[str, float | None]:
    intent = tracker.latest_message.get("intent") or {}
    return str(intent.get("name") or ""), intent.get("confidence")


def _mentioned(knowledge: Knowledge, tracker: Tracker) -> list[str]:
    return routing.mentioned_topics(knowledge, tracker.latest_message.get("entities") or [])


def _ranking(tracker: Tracker, exclude: list[str] | None = None) -> list[str]:
    return routing.ranked_topics(tracker.latest_message.get("intent_ranking") or [], exclude or [])


def _routed(answer_id: str, tracker: Tracker) -> str:
    """`answer_id`, or the not-covered reply for an aspect it does not answer (omt.core.aspects)."""
    return aspects.route(answer_id, tracker.latest_message.get("text") or "")


def _not_covered(knowledge: Knowledge, tracker: Tracker, answer_id: str = "not_covered") -> Reply:
    """The not-covered reply `answer_id`, or personal advice where the aspect was the patient's own case."""
    if answer_id == "personal_advice":
        return _personal_advice(knowledge, tracker)
    return replies.not_covered_reply(knowledge, [*_mentioned(knowledge, tracker), *_ranking(tracker)], answer_id)


def _personal_advice(knowledge: Knowledge, tracker: Tracker) -> Reply:
    return replies.personal_advice_reply(knowledge, _mentioned(knowledge, tracker))


class ReplyAction(Action, abc.ABC):
    """Common tail of every action: notice, slots, dispatch and provenance."""

    @abc.abstractmethod
    def reply(self, knowledge: Knowledge, tracker: Tracker) -> Reply:
        """The reply for this turn; `run` does the rest."""

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        knowledge = get_knowledge()
        reply = self.reply(knowledge, tracker)
        events: List[EventType] = []
        if not is_safety(reply.answer_id) and not tracker.get_slot("notice_given"):
            reply = replies.with_notice(knowledge, reply)
            events.append(SlotSet("notice_given", True))
        dispatcher.utter_message(
            text=reply.text,
            buttons=[b.as_dict() for b in reply.buttons],
            json_message=reply.custom(),
            **{replies.PARAGRAPHS_KEY: reply.structure()},  # beside `custom`: for the SMS renderer
        )
        if reply.answer_id.split(".")[0] in KNOWLEDGE_IDS:
            events.append(SlotSet("last_topic", reply.answer_id))
        if reply.options:  # every button's answer id, for "the second one" (an SMS "2")
            events.append(SlotSet("listed_topics", reply.options))
        misses = tracker.get_slot("misses") or 0.0
        new_misses = misses + 1 if reply.answer_id == "fallback" else 0.0
        if new_misses != misses:
            events.append(SlotSet("misses", new_misses))
        _, confidence = _intent(tracker)
        log_reply(
            reply_record(
                tracker.sender_id, reply.answer_id, confidence, tracker.get_latest_input_channel(), knowledge.version
            )
        )
        return events


class ActionAnswer(ReplyAction):
    """Knowledge answers: the intent's topic (buttons send `/<topic>`), "tell me more", "the second one"
    (or "2" by SMS: any button of the last list, "Talk to a person" included)."""

    def name(self) -> str:
        return "action_answer"

    def reply(self, knowledge: Knowledge, tracker: Tracker) -> Reply:
        intent, _ = _intent(tracker)
        mentioned = _mentioned(knowledge, tracker)
        topic: str | None = None
        verbatim = False
        if intent == "choose_option":
            topic = routing.pick_option(
                tracker.latest_message.get("text") or "", tracker.get_slot("listed_topics") or [], knowledge.ordinals
            )
            if topic in SERVICE_IDS:  # a button such as "Talk to a person" picked by its number
                return replies.service_reply(knowledge, topic)
        elif intent == "tell_me_more":
            topic, verbatim = tracker.get_slot("last_topic"), True
        elif intent in KNOWLEDGE_IDS:
            text = tracker.latest_message.get("text") or ""
            topic = routing.refine_topic(intent, mentioned, text, knowledge.scope_cues)
            if (routed := _routed(topic, tracker)) != topic:
                return _not_covered(knowledge, tracker, routed)
        if topic is None or not knowledge.has_entry(topic):
            misses = int(tracker.get_slot("misses") or 0) + 1
            return replies.fallback_reply(knowledge, _ranking(tracker), misses)
        question = "" if verbatim else tracker.latest_message.get("text") or ""
        return replies.knowledge_reply(knowledge, topic, mentioned, verbatim=verbatim, question=question)


class ActionService(ReplyAction):
    """A service reply named after the action (`action_greet` -> `greet`)."""

    @property
    @abc.abstractmethod
    def reply_name(self) -> str:
        """The reply's name in knowledge/service.yml; also names the action."""

    def name(self) -> str:
        return f"action_{self.reply_name}"

    def reply(self, knowledge: Knowledge, tracker: Tracker) -> Reply:
        return replies.service_reply(knowledge, self.reply_name)


class ActionGreet(ActionService):
    reply_name = "greet"


class ActionGoodbye(ActionService):
    reply_name = "goodbye"


class ActionThanks(ActionService):
    reply_name = "thanks"


class ActionBotChallenge(ActionService):
    reply_name = "bot_challenge"


class ActionCapabilities(ActionService):
    reply_name = "capabilities"


class RoutedService(ActionService, abc.ABC):
    """A service reply that gives way to a finer not-covered reply when the message asks
    about an aspect (cost, risks, visit…) that omt.core.aspects routes elsewhere."""

    def reply(self, knowledge: Knowledge, tracker: Tracker) -> Reply:
        if (routed := _routed(self.reply_name, tracker)) != self.reply_name:
            return _not_covered(knowledge, tracker, routed)
        return self.own_reply(knowledge, tracker)

    def own_reply(self, knowledge: Knowledge, tracker: Tracker) -> Reply:
        """This action's reply when no aspect reroutes it."""
        return super().reply(knowledge, tracker)


class ActionHandoff(RoutedService):
    """The clinic's contact details; a question about cost gets the cost reply (it has them too)."""

    reply_name = "handoff"


class ActionNotCovered(RoutedService):
    """The article does not answer it: say so, offer the nearest covered topics."""

    reply_name = "not_covered"

    def own_reply(self, knowledge: Knowledge, tracker: Tracker) -> Reply:
        return _not_covered(knowledge, tracker)


class ActionPersonalAdvice(RoutedService):
    """The patient's own case: refer to their DO, plus the article's caution for a named condition."""

    reply_name = "personal_advice"

    def own_reply(self, knowledge: Knowledge, tracker: Tracker) -> Reply:
        return _personal_advice(knowledge, tracker)


class ActionFallback(RoutedService):
    """Not understood, or too close to call: "did you mean…?", then the handoff."""

    reply_name = "fallback"

    def own_reply(self, knowledge: Knowledge, tracker: Tracker) -> Reply:
        misses = int(tracker.get_slot("misses") or 0) + 1
        return replies.fallback_reply(knowledge, _ranking(tracker), misses)


class ActionEmergency(ActionService):
    """Call 911 (988 for suicidal thoughts): first, alone, on every channel.

    The screener's verdict picks the wording when it fired; otherwise the classifier's
    intent does, so crisis wording only the classifier caught still gets 988.
    """

    reply_name = "emergency"

    def reply(self, knowledge: Knowledge, tracker: Tracker) -> Reply:
        flag = screen(tracker.latest_message.get("text") or "")
        intent, _ = _intent(tracker)
        key = flag.reply if flag is not None else ("crisis" if intent == "crisis" else "emergency")
        return replies.emergency_reply(knowledge, key)


class ActionRestart(ActionService):
    """Overrides Rasa's `action_restart`: a typed `/restart` starts afresh, and says so."""

    reply_name = "greet"

    def name(self) -> str:
        return "action_restart"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        super().run(dispatcher, tracker, domain)
        return [Restarted()]


class ActionBack(ActionService):
    """Overrides Rasa's `action_back`: a typed `/back` is not understood, never silence."""

    reply_name = "fallback"

    def name(self) -> str:
        return "action_back"


def warm_up() -> None:
    """Load now what the first patient's turn would otherwise load under the action bound.

    The knowledge (every quote checked against the article), the aspect matchers (a spaCy
    pipeline) and the screener's lexicon take seconds on a busy machine, and Rasa waits 2 s
    for an action (omt.rasa.faults). Rasa SDK imports this module before the action server
    listens, so a patient never waits for them.
    """
    get_knowledge()
    aspects.get_detector()
    screen("")


warm_up()
