"""What simulated patients say in load tests and benchmarks: short conversations as lists of messages.

Ours are built from our own regression questions (tests/fixtures/questions.yml) and the
follow-ups patients type ("tell me more", "the second one"), never from the shared
development set, which must keep measuring accuracy. The reference bot's come from the
example messages that `rasa init` writes into its own data/nlu.yml, in the order of its
own stories. One place for both, so `make load` (Locust, another venv, reads them as
JSON) and `make bench` (omt.bench.loadgen) send the same kind of traffic.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from omt.core.knowledge import REPO_ROOT

QUESTIONS = REPO_ROOT / "tests" / "fixtures" / "questions.yml"
OPENERS = ["hi", "hello", "good morning", "hey there"]
FOLLOW_UPS = ["tell me more", "tell me a bit more", "the second one", "ok the first one", "what about for babies"]
CLOSERS = ["thanks", "thank you", "ok bye", "great, thanks"]

Conversation = list[str]


def _our_pool(path: Path) -> tuple[list[str], list[Conversation]]:
    """(single questions, multi-turn conversations) of a question file in the shared dev-set format."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    singles = [str(item["q"]) for item in spec.get("single") or []]
    multis = [[str(turn["q"]) for turn in conv["turns"]] for conv in spec.get("multi") or []]
    return singles, multis


def our_conversations(
    count: int, seed: int = 7, turns: tuple[int, int] = (3, 6), path: Path = QUESTIONS
) -> list[Conversation]:
    """`count` patient conversations of `turns[0]`..`turns[1]` messages; the same ones for the same seed.

    A few are the file's own multi-turn conversations; the rest open with a greeting or a
    question, ask one or two questions with a follow-up now and then, and may close with thanks.
    """
    rng = random.Random(seed)
    singles, multis = _our_pool(path)
    out: list[Conversation] = []
    while len(out) < count:
        if multis and rng.random() < 0.2:
            out.append(list(rng.choice(multis)))
            continue
        length = rng.randint(*turns)
        conv: Conversation = [rng.choice(OPENERS)] if rng.random() < 0.5 else []
        while len(conv) < length - 1:
            conv.append(rng.choice(singles))
            if len(conv) < length - 1 and rng.random() < 0.4:
                conv.append(rng.choice(FOLLOW_UPS))
        conv.append(rng.choice(CLOSERS) if rng.random() < 0.5 else rng.choice(singles))
        out.append(conv)
    return out


def long_conversation(turns: int, seed: int = 11, path: Path = QUESTIONS) -> Conversation:
    """One conversation of `turns` messages (questions and follow-ups, no goodbye), to see if cost grows."""
    rng = random.Random(seed)
    singles, _ = _our_pool(path)
    return [rng.choice(FOLLOW_UPS) if i % 4 == 3 else rng.choice(singles) for i in range(turns)]


# The reference bot's stories (rasa init's data/stories.yml and rules.yml), as intent sequences.
MOODBOT_PATHS = [
    ["greet", "mood_great", "bot_challenge", "goodbye"],
    ["greet", "mood_unhappy", "affirm", "goodbye"],
    ["greet", "mood_unhappy", "deny", "bot_challenge", "goodbye"],
]


def moodbot_examples(project: Path) -> dict[str, list[str]]:
    """Example messages per intent from the generated reference project's data/nlu.yml."""
    spec = yaml.safe_load((project / "data" / "nlu.yml").read_text(encoding="utf-8")) or {}
    out: dict[str, list[str]] = {}
    for item in spec.get("nlu") or []:
        if "intent" in item:
            lines = str(item.get("examples") or "").splitlines()
            out[str(item["intent"])] = [line.strip()[2:].strip() for line in lines if line.strip().startswith("- ")]
    return out


def moodbot_conversations(project: Path, count: int, seed: int = 7) -> list[Conversation]:
    """`count` conversations for the reference bot, following its own stories with its own examples."""
    rng = random.Random(seed)
    examples = moodbot_examples(project)
    return [[rng.choice(examples[intent]) for intent in rng.choice(MOODBOT_PATHS)] for _ in range(count)]
