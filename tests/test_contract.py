"""One contract: omt/core/contract.py's ids decide the domain's intents, the one-step rules and the actions.

The domain (domain.yml), the rules (data/rules.yml) and the actions (actions/) are written
by hand, for Rasa; these tests fail, naming what differs, as soon as one of them leaves the
contract: a knowledge id without its intent or its rule, a rule that sends an intent to the
wrong action, or an intent answered by `action_answer` that the contract does not know.
knowledge/omt.yml against the contract: tests/core/test_knowledge.py and the loader.
"""

from __future__ import annotations

import copy
import inspect
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Action

from actions import actions
from omt.bench.nlu_bench import Parse, answer_for
from omt.core.contract import FOLLOW_UP_INTENTS, KNOWLEDGE_IDS, SAFETY_IDS, SAFETY_REPLIES, SERVICE_IDS
from omt.core.knowledge import Knowledge

REPO = Path(__file__).resolve().parent.parent
ANSWER_ACTION = "action_answer"
# Rasa's own intent for "not understood or too close to call" (FallbackClassifier): `fallback`
# is the one service id that no intent of ours asks for.
NLU_FALLBACK = "nlu_fallback"


def _yaml(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / name).read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    return _yaml("domain.yml")


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    return list(_yaml("data/rules.yml")["rules"])


def action_for(answer_id: str) -> str:
    """The action that gives a reply: `action_answer` for every knowledge id, else `action_<id>`."""
    return ANSWER_ACTION if answer_id in KNOWLEDGE_IDS else f"action_{answer_id}"


def expected_rules(domain_intents: set[str]) -> dict[str, str]:
    """Intent -> the action its one-step rule must name, as the contract says."""
    expected = {i: ANSWER_ACTION for i in (*KNOWLEDGE_IDS, *FOLLOW_UP_INTENTS)}
    expected |= {i: action_for(i) for i in (*SERVICE_IDS, *SAFETY_IDS) if i != "fallback"}
    expected[NLU_FALLBACK] = action_for("fallback")
    # the classifier's crisis intent: an emergency reply with other words (SAFETY_REPLIES)
    expected |= {i: action_for("emergency") for i in SAFETY_REPLIES if i in domain_intents}
    return expected


def one_step_rules(rules: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Intent -> the actions of the rules that are just "intent X, then action Y"."""
    found: dict[str, list[str]] = defaultdict(list)
    for rule in rules:
        steps = rule.get("steps") or []
        if len(steps) == 2 and "intent" in steps[0] and "action" in steps[1] and not rule.get("condition"):
            found[str(steps[0]["intent"])].append(str(steps[1]["action"]))
    return found


def domain_problems(domain: dict[str, Any]) -> list[str]:
    """The contract's intents that domain.yml lacks."""
    intents = {str(i) for i in domain.get("intents") or []}
    wanted = [i for i in expected_rules(intents) if i != NLU_FALLBACK]
    return [f"domain.yml has no intent {i!r} (the contract's)" for i in wanted if i not in intents]


def rule_problems(domain: dict[str, Any], rules: list[dict[str, Any]]) -> list[str]:
    """Where data/rules.yml's one-step rules and the contract differ."""
    intents = {str(i) for i in domain.get("intents") or []}
    expected = expected_rules(intents)
    found = one_step_rules(rules)
    problems = []
    for intent, action in expected.items():
        got = found.get(intent, [])
        if not got:
            problems.append(f"no rule: intent {intent!r} -> {action}")
        elif got != [action]:
            problems.append(f"intent {intent!r} -> {got}, want [{action!r}]")
    for intent, got in sorted(found.items()):
        if intent not in expected and ANSWER_ACTION in got:
            problems.append(f"intent {intent!r} -> {ANSWER_ACTION}, but it is not a knowledge id of the contract")
        elif intent not in expected and len(got) > 1:
            problems.append(f"intent {intent!r} has {len(got)} one-step rules: {got}")
    problems += [f"domain intent {i!r} has no one-step rule" for i in sorted(intents - set(found))]
    unknown = sorted(set(found) - intents - {NLU_FALLBACK})
    problems += [f"rule for intent {i!r}, which domain.yml lacks" for i in unknown]
    return problems


def action_names() -> dict[str, type[Action]]:
    """Every action the action server registers from actions/, by name."""
    classes: list[type[Action]] = [
        c
        for _, c in inspect.getmembers(actions, inspect.isclass)
        if issubclass(c, Action) and c.__module__ == actions.__name__ and not inspect.isabstract(c)
    ]
    return {c().name(): c for c in classes}


# --- the real files -------------------------------------------------------------------


def test_domain_has_every_intent_of_the_contract(domain: dict[str, Any]) -> None:
    assert not domain_problems(domain), "\n".join(domain_problems(domain))


def test_one_step_rules_are_the_contracts(domain: dict[str, Any], rules: list[dict[str, Any]]) -> None:
    problems = rule_problems(domain, rules)
    assert not problems, "\n".join(problems)
    knowledge_rules = [i for i, a in one_step_rules(rules).items() if a == [ANSWER_ACTION] and i in KNOWLEDGE_IDS]
    assert len(knowledge_rules) == len(KNOWLEDGE_IDS) == 18


def test_actions_are_the_domains_and_answer_their_ids(domain: dict[str, Any], rules: list[dict[str, Any]]) -> None:
    registered = action_names()
    declared = {str(a) for a in domain.get("actions") or []}
    assert declared == set(registered), (
        f"in domain.yml, not in actions/: {sorted(declared - set(registered))}; "
        f"in actions/, not in domain.yml: {sorted(set(registered) - declared)}"
    )
    named = {a for r in rules for s in r.get("steps") or [] if (a := s.get("action"))}
    assert named <= declared, f"rules name actions domain.yml lacks: {sorted(named - declared)}"
    for answer_id in (*SERVICE_IDS, *SAFETY_IDS):
        action = registered.get(action_for(answer_id))
        assert action is not None, f"no action {action_for(answer_id)!r} for the contract's {answer_id!r}"
        assert getattr(action, "reply_name", None) == answer_id, f"{action.__name__} does not give {answer_id!r}"


def test_service_replies_exist_for_every_service_action(knowledge: Knowledge) -> None:
    for name, action in action_names().items():
        reply_name = getattr(action, "reply_name", None)
        assert reply_name is None or reply_name in knowledge.replies, f"{name}: no reply {reply_name!r}"


def test_the_nlu_bench_reads_a_first_message_as_the_rules_do(
    domain: dict[str, Any], rules: list[dict[str, Any]], knowledge: Knowledge
) -> None:
    """omt.bench.nlu_bench.answer_for models the rules for a first message: it must agree with them."""
    for intent, (action,) in one_step_rules(rules).items():
        if action == ANSWER_ACTION:
            want = intent if intent in KNOWLEDGE_IDS else "fallback"  # a follow-up with nothing before it
        else:
            want = action.removeprefix("action_")
        got = answer_for("", Parse(intent, 1.0, [(intent, 1.0)], []), knowledge, route_aspects=False)
        assert got == want, f"intent {intent!r}: the NLU bench says {got!r}, the rules {want!r}"


# --- the checks fail, and say why ------------------------------------------------------


def _without_rule(rules: list[dict[str, Any]], intent: str) -> list[dict[str, Any]]:
    return [r for r in rules if r["steps"][0].get("intent") != intent]


def test_a_missing_intent_or_rule_is_named(domain: dict[str, Any], rules: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(domain)
    broken["intents"].remove("fascia")
    assert domain_problems(broken) == ["domain.yml has no intent 'fascia' (the contract's)"]
    assert "no rule: intent 'cranial' -> action_answer" in rule_problems(domain, _without_rule(rules, "cranial"))


def test_a_wrong_action_is_named(domain: dict[str, Any], rules: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(rules)
    for rule in broken:
        if rule["steps"][0].get("intent") == "migraine":
            rule["steps"][1]["action"] = "action_not_covered"
    assert rule_problems(domain, broken) == ["intent 'migraine' -> ['action_not_covered'], want ['action_answer']"]


def test_a_knowledge_intent_the_contract_lacks_is_named(domain: dict[str, Any], rules: list[dict[str, Any]]) -> None:
    broken_domain = copy.deepcopy(domain)
    broken_domain["intents"].append("cost")
    broken_rules = [*rules, {"rule": "cost", "steps": [{"intent": "cost"}, {"action": ANSWER_ACTION}]}]
    assert rule_problems(broken_domain, broken_rules) == [
        "intent 'cost' -> action_answer, but it is not a knowledge id of the contract"
    ]
    assert rule_problems(broken_domain, rules) == ["domain intent 'cost' has no one-step rule"]
