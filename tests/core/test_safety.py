"""Tests for the deterministic red-flag screener (omt/core/safety.py + knowledge/red_flags.yml).

Data-driven: the phrasings that must fire live in fixtures/red_flag_phrasings.yml and the
ordinary questions that must (almost) never fire in fixtures/ordinary_questions.txt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from omt.bench.evaluate import contract_faults, post
from omt.core.contract import parent_id
from omt.core.knowledge import Knowledge
from omt.core.safety import Lexicon, LexiconError, RedFlag, default_lexicon, load_lexicon, normalise, screen

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PHRASINGS: dict[str, list[str]] = yaml.safe_load((FIXTURES / "red_flag_phrasings.yml").read_text(encoding="utf-8"))
AFTER_TREATMENT: dict[str, list[str]] = yaml.safe_load(
    (FIXTURES / "red_flags_after_treatment.yml").read_text(encoding="utf-8")
)
BLIND: dict[str, Any] = yaml.safe_load((FIXTURES / "red_flags_blind.yml").read_text(encoding="utf-8"))
ORDINARY = [
    line.strip()
    for line in (FIXTURES / "ordinary_questions.txt").read_text(encoding="utf-8").splitlines()
    if line.strip()
]
CASES = [(cat, text) for cat, texts in PHRASINGS.items() for text in texts]
AFTER_CASES = [(cat, text) for cat, texts in AFTER_TREATMENT.items() for text in texts]

EXPECTED_REPLIES = {
    "chest_pain": "emergency",
    "breathing": "emergency",
    "stroke": "emergency",
    "suicide_self_harm": "crisis",
    "overdose": "emergency",
    "severe_bleeding": "emergency",
    "unresponsive_collapse": "emergency",
    "cauda_equina": "emergency",
    "worst_headache": "emergency",
    "infant_not_breathing": "emergency",
    "crisis_indirect": "crisis",
    "pregnancy_emergency": "emergency",
    "anaphylaxis": "emergency",
    "head_injury": "emergency",
    "neck_artery": "emergency",
    "heart": "emergency",
}
NEW_CATEGORIES = ("crisis_indirect", "pregnancy_emergency", "anaphylaxis", "head_injury", "neck_artery", "heart")
POST_TREATMENT = {"neck_artery", "cauda_equina"}
CRISIS = {c for c, r in EXPECTED_REPLIES.items() if r == "crisis"}
MAX_FALSE_ALARM_RATE = 0.002
# Recall on the blind set (tests/fixtures/red_flags_blind.yml) when it was first scored
# against the finished lexicon: it must not regress. Never tune the lexicon against it.
BLIND_RECALL_FLOOR = 0.95
BLIND_ORDINARY_MAX_ALARMS = 1


def assert_fires(flag: RedFlag | None, category: str, reply: str, text: str) -> None:
    """The flag fired with ``reply``, in ``category`` (any crisis category for a crisis phrasing)."""
    assert flag is not None, f"missed: {text!r}"
    assert flag.reply == reply, (text, flag)
    assert flag.category in CRISIS if category in CRISIS else flag.category == category, (text, flag)


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return load_lexicon()


# --------------------------------------------------------------------------- the lexicon


def test_lexicon_has_every_category_with_its_reply(lexicon: Lexicon) -> None:
    replies = {c.id: c.reply for c in lexicon.categories}
    assert replies == EXPECTED_REPLIES


def test_crisis_is_checked_first(lexicon: Lexicon) -> None:
    # The crisis reply also says to call 911, so it must win when both fire.
    assert lexicon.categories[0].reply == "crisis"
    assert screen("I took too many pills because I want to die", lexicon).reply == "crisis"  # type: ignore[union-attr]


def test_fixture_has_at_least_20_phrasings_per_category() -> None:
    assert set(PHRASINGS) == set(EXPECTED_REPLIES)
    assert set(AFTER_TREATMENT) <= set(EXPECTED_REPLIES)
    for cat, texts in PHRASINGS.items():
        total = set(texts) | set(AFTER_TREATMENT.get(cat, []))
        assert len(total) >= (30 if cat in NEW_CATEGORIES else 20), cat
    assert len(CASES) >= 200


def test_post_treatment_categories_have_10_after_treatment_phrasings(lexicon: Lexicon) -> None:
    assert {c.id for c in lexicon.categories if c.post_treatment} == POST_TREATMENT
    for cat in POST_TREATMENT:
        assert len(set(AFTER_TREATMENT[cat])) >= 10, cat


def test_default_lexicon_is_cached() -> None:
    assert default_lexicon() is default_lexicon()
    assert screen("I have chest pain") == screen("I have chest pain", default_lexicon())


# --------------------------------------------------------------------------- must fire


@pytest.mark.parametrize(("category", "text"), CASES)
def test_phrasing_fires_its_category(lexicon: Lexicon, category: str, text: str) -> None:
    assert_fires(screen(text, lexicon), category, EXPECTED_REPLIES[category], text)


@pytest.mark.parametrize(("category", "text"), AFTER_CASES)
def test_after_treatment_phrasing_fires_with_the_after_treatment_reply(
    lexicon: Lexicon, category: str, text: str
) -> None:
    assert_fires(screen(text, lexicon), category, "after_treatment", text)


def _zero_width(text: str) -> str:
    return "\u200b".join(text)


WRAPPERS: dict[str, Callable[[str], str]] = {
    "rasa_intent": lambda t: '/inform{"text":"' + t.replace('"', '\\"') + '"}',
    "rasa_intent_prefix": lambda t: f'/greet{{"x":"{t}"}}',
    "html": lambda t: f"<p><b>{t}</b></p><br/>",
    "html_entities": lambda t: f"&lt;i&gt;{t}&lt;/i&gt; &amp; &#128557;",
    "zero_width": _zero_width,
    "zwj_and_bom": lambda t: "\ufeff" + t.replace(" ", " \u200d"),
    "upper_case": str.upper,
    "emoji_and_noise": lambda t: f"😭😭 {t} 🙏🙏!!!",
    "sms_lowercase": lambda t: t.lower().replace("'", ""),
    "fullwidth": lambda t: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in t),
    "rtl_marks": lambda t: f"\u202e\u200f{t}\u202c",
    "nul_bytes": lambda t: t.replace(" ", " \x00"),
    "after_greeting": lambda t: f"Hi, I have a question. {t}",
}


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_wrapped_phrasings_still_fire(lexicon: Lexicon, wrapper: str) -> None:
    wrap = WRAPPERS[wrapper]
    misses = []
    for category, text in CASES + AFTER_CASES:
        flag = screen(wrap(text), lexicon)
        if flag is None or (flag.category != category and category not in CRISIS):
            misses.append((category, text, flag))
    assert not misses, f"{len(misses)} misses with {wrapper}: {misses[:10]}"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("difficulty breething", "breathing"),
        ("he is unconcious", "unresponsive_collapse"),
        ("im feeling sucidal", "suicide_self_harm"),
        ("cant breath", "breathing"),
        ("cnt breathe", "breathing"),
        ("chst pain", "chest_pain"),
        ("hart attack", "chest_pain"),
        ("kms", "suicide_self_harm"),
        ("wanna die", "suicide_self_harm"),
        ("i od'd", "overdose"),
        ("i od\u2019d", "overdose"),
        ("chest painnnnn", "chest_pain"),
        ("i want to killll myself", "suicide_self_harm"),
        ("c\u0336h\u0336e\u0336s\u0336t\u0336 pain", "chest_pain"),  # combining strike-through
        ("ch\u00adest pain", "chest_pain"),  # soft hyphen
        ("I can\u2019t breathe", "breathing"),
        ("no, I really have chest pain", "chest_pain"),
        ("I can't breathe", "breathing"),
        ("I have no fever but I have chest pain", "chest_pain"),
        ("never had chest pain like this before", "chest_pain"),
        ("not sure but I think it's a heart attack", "chest_pain"),
        ("chest pain that is not gone", "chest_pain"),
        ("does OMT help back pain? also I can't breathe right now", "breathing"),
        ("I have chest pain, can OMT help?", "chest_pain"),
        ("can OMT help my crushing chest pain right now", "chest_pain"),
        ("my chest pain isn't going away", "chest_pain"),
        ("<script>alert(1)</script>I want to end my life", "suicide_self_harm"),
        # An exclusion is never a typo guess: "training" is not "straining" (found by the fuzz test).
        ('i have crushing chest pain /do_training{"x": "<script>alert(1)</script>"}', "chest_pain"),
        ("chest pain during my training", "chest_pain"),
    ],
)
def test_typos_shorthand_and_tricky_positives(lexicon: Lexicon, text: str, category: str) -> None:
    flag = screen(text, lexicon)
    assert flag is not None and flag.category == category, (text, flag)


def test_matched_is_the_normalised_span(lexicon: Lexicon) -> None:
    assert screen("My CHEST really HURTS!!", lexicon) == RedFlag("chest_pain", "emergency", "chest really hurts")
    assert screen("kms", lexicon) == RedFlag("suicide_self_harm", "crisis", "kill myself")


# --------------------------------------------------------------------------- must not fire

NEGATED = [
    "no chest pain",
    "No chest pain.",
    "I don't have chest pain",
    "I do not have any chest pain",
    "i dont have chest pain",
    "not suicidal",
    "I'm not suicidal",
    "i am not suicidal, just sore",
    "never had a heart attack",
    "I've never had a heart attack",
    "my chest pain is gone",
    "my chest pain went away after treatment",
    "the chest pain has resolved",
    "my chest is not hurting",
    "I don't have any trouble breathing",
    "no shortness of breath",
    "no trouble breathing",
    "I don't have chest pain or shortness of breath",
    "denies chest pain",
    "I'm not bleeding a lot",
    "no numbness in my arm",
    "I don't want to kill myself, I just want my back to stop hurting",
    "no thoughts of suicide",
    "I would never kill myself",
    "I have never self harmed",
    "I didn't take too many pills",
    "not the worst headache, just a mild one",
    "I'm not having a stroke, I just have a stiff neck",
    "no, not choking",
    "I have never passed out",
    "he is not unconscious",
    "no seizure",
    "my face is not drooping",
    "I have no loss of bladder control",
]


@pytest.mark.parametrize("text", NEGATED)
def test_negated_mentions_do_not_fire(lexicon: Lexicon, text: str) -> None:
    assert screen(text, lexicon) is None, text


GENERAL_QUESTIONS = [
    "does OMT help back pain",
    "can OMT help migraines",
    "is it safe for babies",
    "does it hurt",
    "will I feel pressure on my chest during myofascial release",
    "what is the muscle energy technique",
    "does cranial treatment help headaches",
    "I have arthritis",
    "what about my baby",
    "is osteopathic manipulation painful",
    "can i get omt while pregnant",
    "can omt treat breathing problems like asthma",
    "can OMT prevent heart attacks",
    "is OMT safe after a heart attack",
    "I had a heart attack five years ago, is OMT safe for me",
    "my dad had a stroke last year, can OMT help his recovery",
    "can OMT help with shortness of breath from COPD",
    "my son has seizures, can OMT help",
    "I hurt myself lifting boxes, can OMT help",
    "this back pain is killing me",
    "I painted my kitchen and now my shoulder hurts",
    "my mom cannot leave the house, do you do home visits",
    "I ate lunch and took my pills, can I still come in",
    "my dad is not walking well since his hip surgery",
    "my baby won't move her neck to the left, can OMT help torticollis",
    "I can't breathe through my nose when I have allergies",
    "my gums bleed a lot when I brush",
    "my blood pressure is high, is OMT ok",
    "how fast can I get an appointment",
    "I feel odd after my session",
    "baby blues after delivery, can OMT help",
]


@pytest.mark.parametrize("text", GENERAL_QUESTIONS)
def test_general_questions_do_not_fire(lexicon: Lexicon, text: str) -> None:
    assert screen(text, lexicon) is None, text


def test_false_alarm_rate_on_ordinary_questions(lexicon: Lexicon) -> None:
    assert len(ORDINARY) >= 300
    assert len(set(ORDINARY)) == len(ORDINARY), "duplicate ordinary questions"
    alarms = [(q, screen(q, lexicon)) for q in ORDINARY]
    alarms = [(q, f) for q, f in alarms if f is not None]
    rate = len(alarms) / len(ORDINARY)
    print(f"\nred-flag false-alarm rate on {len(ORDINARY)} ordinary questions: {rate:.2%} ({len(alarms)})")
    for q, f in alarms:
        print(f"  false alarm: {q!r} -> {f}")
    assert rate <= MAX_FALSE_ALARM_RATE


# --------------------------------------------------------------------------- robustness

NASTY = [
    "",
    " ",
    "\x00" * 50,
    "\x00chest\x00 \x00pain\x00",
    "\ud800",
    "chest \udfff pain \ud83d",
    "\u202e\u05d0\u05e0\u05d9 \u05dc\u05d0 \u05d9\u05db\u05d5\u05dc \u05dc\u05e0\u05e9\u05d5\u05dd",
    "\u0627\u0644\u0645 \u0641\u064a \u0627\u0644\u0635\u062f\u0631 \u061f",
    "\u200b\u200c\u200d\u2060\ufeff" * 100,
    "e\u0301\u0302\u0303\u0304\u0305" * 200,
    ("Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035aA") * 50,
    "<" * 5000,
    "<a" * 3000 + ">",
    "&" * 3000 + "#" * 3000 + ";" * 3000,
    "&#xD800;&#0;&#x110000;&#99999999999;",
    '/greet{"name":"' + "a" * 5000 + '"}',
    "/" + "{" * 2000 + "}" * 2000,
    "{" + '"x":' * 1000,
    "a" * 100_000,
    "aaaa " * 20_000,
    "no " * 5000 + "chest pain",
    "chest " * 5000,
    "chest pain " * 3000,
    "does omt help chest pain and " * 500,
    "'" * 5000,
    "i'm'" * 2000,
    "1" * 5000,
    "9" * 100 + " pills",
    "took " + "9" * 5000 + " pills",
    "\U0001f600" * 5000,
    "\U0001fac0\U0001f494\U0001f635" * 100,
    "\ufdfd" * 1000,
    "\u0130" * 1000,
    "ß" * 1000,
    "\r\n" * 5000,
    "\t\v\f" * 1000,
    "." * 10_000,
    "?!;,:" * 2000,
    "x" * 29 + "y" * 31,
    "".join(chr(0x4E00 + i) for i in range(20_000)),
    " ".join("w" + str(i) + "x" * 50 for i in range(3000)),
]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_nasty_input_never_raises(lexicon: Lexicon, text: str) -> None:
    result = screen(text, lexicon)
    assert result is None or isinstance(result, RedFlag)


def test_nasty_inputs_that_still_mean_an_emergency(lexicon: Lexicon) -> None:
    assert screen("\x00chest\x00 \x00pain\x00", lexicon) is not None
    assert screen("chest \udfff pain \ud83d", lexicon) is not None
    assert screen("no " * 5000 + ". chest pain", lexicon) is not None
    assert screen("x " * 10_000 + "I want to kill myself", lexicon) is not None
    assert screen("I can't breathe " + "blah " * 300_000, lexicon) is not None  # head of a huge message
    assert screen("blah " * 300_000 + " I can't breathe", lexicon) is not None  # and its tail


@pytest.mark.parametrize("value", [None, b"I can't breathe", 42])
def test_non_string_input_never_raises(lexicon: Lexicon, value: object) -> None:
    result = screen(value, lexicon)  # type: ignore[arg-type]
    assert result is None or isinstance(result, RedFlag)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=400))
def test_any_text_never_raises(text: str) -> None:
    result = screen(text)
    assert result is None or isinstance(result, RedFlag)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*(t for _, t in CASES), *ORDINARY[:50], "no", "not", ",", "."]), max_size=8))
def test_any_mix_of_phrases_never_raises(parts: list[str]) -> None:
    result = screen(" ".join(parts))
    assert result is None or isinstance(result, RedFlag)


def test_normalise_strips_invisible_and_folds() -> None:
    assert normalise("C\u200bH\u200dE\ufeffST\u00a0P\u0301AIN") == "chest pain"
    assert normalise("<b>Chest</b>&nbsp;pain") == " chest  pain"
    assert normalise("ｃｈｅｓｔ") == "chest"


# --------------------------------------------------------------------------- malformed lexicon


def _write_lexicon(tmp_path: Path, mutate: Callable[[dict[str, object]], None]) -> Path:
    data = yaml.safe_load(Path(default_lexicon_path()).read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "red_flags.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def default_lexicon_path() -> Path:
    from omt.core.safety import DEFAULT_PATH

    return DEFAULT_PATH


def _cats(data: dict[str, object]) -> dict[str, dict[str, object]]:
    return data["categories"]  # type: ignore[return-value]


MALFORMED: dict[str, Callable[[dict[str, object]], None]] = {
    "bad_reply": lambda d: _cats(d)["chest_pain"].update(reply="call someone"),
    "bad_word": lambda d: _cats(d)["chest_pain"].update(strong=["Chest Pain"]),
    "leading_gap": lambda d: _cats(d)["chest_pain"].update(strong=["~2 chest pain"]),
    "huge_gap": lambda d: _cats(d)["chest_pain"].update(strong=["chest ~50 pain"]),
    "optional_first": lambda d: _cats(d)["chest_pain"].update(strong=["chest? pain"]),
    "no_patterns": lambda d: _cats(d).update(chest_pain={"reply": "emergency"}),
    "unknown_category_key": lambda d: _cats(d)["chest_pain"].update(stong=["chest pain"]),
    "unknown_top_key": lambda d: d.update(extra=1),
    "yaml_boolean": lambda d: d["negation"].update(before=[False]),  # type: ignore[attr-defined]
    "bad_window": lambda d: d["negation"].update(window_before=-1),  # type: ignore[attr-defined]
    "bad_shorthand": lambda d: d["shorthand"].update(cant=["cannot"]),  # type: ignore[attr-defined]
    "no_categories": lambda d: d.update(categories={}),
    "bad_version": lambda d: d.update(version=2),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_lexicon_fails_loudly(tmp_path: Path, case: str) -> None:
    path = _write_lexicon(tmp_path, MALFORMED[case])
    with pytest.raises(LexiconError):
        load_lexicon(path)


def test_unreadable_lexicon_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(LexiconError):
        load_lexicon(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("categories: [unclosed", encoding="utf-8")
    with pytest.raises(LexiconError):
        load_lexicon(bad)


def test_a_valid_copy_loads_and_screens(tmp_path: Path) -> None:
    lex = load_lexicon(_write_lexicon(tmp_path, lambda d: None))
    assert screen("I can't breathe", lex) == RedFlag("breathing", "emergency", "cannot breathe")


# --------------------------------------------------------------------------- context (issue #10)

CURRENT_DESPITE_CONTEXT = [
    # an onset marker keeps a history phrase from excusing the symptom
    ("I had my neck adjusted last week and since then one side of my face is numb", "after_treatment"),
    ("I had chest pain last year and now it's back", "emergency"),
    ("had a stroke years ago and my face is drooping", "emergency"),
    ("my chest pain from last week is still there", "emergency"),
    # a report opener with the patient's own symptom is a report
    ("Is it normal to have numbness in my groin after OMT on my lower back?", "after_treatment"),
    ("should I worry that my face is drooping", "emergency"),
    ("is it normal that my lips are swelling", "emergency"),
    # exclusions never cancel a strong pattern
    ("crushing chest pain after I pulled a muscle at the gym", "emergency"),
    ("I'm pregnant and I can't feel my legs", "emergency"),
    # after treatment
    ("crushing chest pain after my muscle energy session", "after_treatment"),
    ("I can't see out of my left eye since the OMT this morning", "after_treatment"),
    # "ever since" dates an onset; it is not the "ever" of "can OMT ever cause..."
    ("dizzy ever since the osteopath manipulated my neck", "after_treatment"),
    ("ever since my back was cracked I can't feel the toilet paper when I wipe", "after_treatment"),
    ("I want to go to sleep and never wake up", "crisis"),
    ("after my session I want to go to sleep and never wake up", "crisis"),
]


@pytest.mark.parametrize(("text", "reply"), CURRENT_DESPITE_CONTEXT)
def test_context_never_silences_a_current_symptom(lexicon: Lexicon, text: str, reply: str) -> None:
    flag = screen(text, lexicon)
    assert flag is not None and flag.reply == reply, (text, flag)


NOT_ALARMS = [
    "Is a DO the same as an OD?",
    "what does OD mean on my glasses prescription",
    "I had a heart attack in March, is OMT safe for me?",
    "I had chest pain last year, can I still get OMT?",
    "my dad had a stroke last year",
    "Do DOs know CPR?",
    "my arm goes numb when I sleep on it, can OMT help?",
    "my hand falls asleep when I sleep on it",
    "could OMT cause a stroke",
    "can you get dizzy after OMT",
    "can neck manipulation ever make you dizzy",
    "is it normal to feel sore after my session",
    "my arm feels weak after my shoulder surgery",
    "I blacked out the dates on my calendar",
    "my baby has blue eyes",
    "I have a droopy eyelid since birth, can OMT help",
    "I had OMT on my back last week and feel great. Can OMT cause dizziness?",
    "My neck was adjusted yesterday. Is it common to feel dizzy afterwards?",
    "I get dizzy when I stand up too fast. Is neck manipulation safe for me?",
]


@pytest.mark.parametrize("text", NOT_ALARMS)
def test_past_events_and_look_alikes_do_not_fire(lexicon: Lexicon, text: str) -> None:
    assert screen(text, lexicon) is None, text


def test_od_fires_with_drug_context(lexicon: Lexicon) -> None:
    for text in ("my friend OD'd on heroin", "i think he od on pills", "she OD on xanax"):
        flag = screen(text, lexicon)
        assert flag is not None and flag.category == "overdose", text


def _blind_cases() -> tuple[list[tuple[str, str, str]], list[str]]:
    cases = [
        (group, kind, text)
        for group, body in BLIND.items()
        if group != "ordinary"
        for kind, texts in body.items()
        for text in texts
    ]
    return cases, BLIND["ordinary"]


def blind_hit(group: str, kind: str, flag: RedFlag | None) -> bool:
    """A blind phrasing is caught when it fires with the reply its group and kind call for."""
    if flag is None:
        return False
    if group == "crisis":
        return flag.reply == "crisis"
    return flag.reply == "after_treatment" if kind == "after_treatment" else flag.reply != "crisis"


def test_blind_set_recall_does_not_regress(lexicon: Lexicon) -> None:
    cases, ordinary = _blind_cases()
    caught = sum(blind_hit(g, k, screen(t, lexicon)) for g, k, t in cases)
    assert caught / len(cases) >= BLIND_RECALL_FLOOR, f"blind recall {caught}/{len(cases)}"
    assert sum(screen(t, lexicon) is not None for t in ordinary) <= BLIND_ORDINARY_MAX_ALARMS


# --------------------------------------------------------------------------- over REST


@pytest.mark.stack
def test_every_fixture_phrasing_gets_the_safety_reply_first_and_alone_over_rest(
    rest_url: str, knowledge: Knowledge
) -> None:
    """The policy screens the raw text at run time: every phrasing, in a new conversation."""
    texts = [t for _, t in CASES + AFTER_CASES]

    def turn(text: str) -> tuple[str, list[dict[str, Any]]]:
        return text, post(rest_url, f"test-safety-{uuid.uuid4().hex}", text, timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(turn, texts))
    wrong = []
    for text, messages in results:
        answer_id, faults = contract_faults(messages, knowledge)
        customs = [m["custom"] for m in messages if isinstance(m.get("custom"), dict)]
        alone = len(messages) == 2 and messages[0].get("text") and "custom" in messages[1]
        if parent_id(answer_id) != "emergency" or faults or customs[0].get("kind") != "safety" or not alone:
            wrong.append((text, answer_id, faults, len(messages)))
    assert not wrong, f"{len(wrong)}/{len(results)} phrasings without the safety reply alone: {wrong[:10]}"
