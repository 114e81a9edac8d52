"""Redaction before storage: the patterns (pure), the tracker store wrapper, and the running stack.

The stack tests send a canary patient's identifiers on every channel and then look for
them where they must not be: the tracker store's events table, the stack's logs (at the
production log level, INFO) and the provenance log. Names are found after a cue ("I'm
Jane Doe", "my son Tom", "thanks, Jane"): tests/fixtures/name_phrasings.yml must lose
every name, tests/fixtures/name_lookalikes.txt ("I'm Pregnant", "call me back") nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from omt.bench.corpus import ordinary_messages
from omt.bench.evaluate import contract_faults, post
from omt.bench.redaction_report import ORDINARY, NamePhrasing, name_phrasings, name_rules
from omt.core.knowledge import Knowledge, KnowledgeError
from omt.core.redaction import REDACTION_FILE, load_rules, redact, redact_user_event, redact_value
from omt.ops.stack import Stack, running_stack
from omt.rasa.redacting_store import (
    RedactingTrackerStore,
    redacted_event,
    redacted_tracker,
)
from tests.channels.test_channel_sms import text as sms_text
from tests.channels.test_forget import wait_until

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]

# A patient who does not exist, with identifiers nobody else would type.
NAME = "Zebulon Quartz"
DOB = "04/17/1961"
PHONE = "+1 555 010 7788"
EMAIL = "zq.canary@example.com"
MRN = "MRN 8812-4471"
ADDRESS = "42 Larkspur Lane"
CANARY = (
    f"Hi, I'm {NAME}, born {DOB}. Call me on {PHONE} or email {EMAIL}. My {MRN}, I live at {ADDRESS}. Does OMT hurt?"
)
# What must never be stored: each identifier in the forms it could take. Nothing as short
# as "1961": event timestamps and ids hold such digit runs.
STORED_NEVER = (
    NAME,
    "Zebulon",
    "Quartz",
    DOB,
    PHONE,
    "555 010 7788",
    "5550107788",
    EMAIL,
    "zq.canary",
    "8812-4471",
    "88124471",
    ADDRESS,
    "Larkspur",
)
LOGGED_NEVER = STORED_NEVER
PHRASINGS = name_phrasings()


# ---- the patterns ------------------------------------------------------------------

REDACTED = [
    ("zq.canary@example.com", "[email]"),
    ("Email me: Jo.Doe+omt@mail.clinic.org.", "Email me: [email]."),
    ("MRN 8812-4471", "MRN [record number]"),
    ("my mrn is 12345", "my mrn is [record number]"),
    ("my medical record number is 88124471", "my medical record number is [record number]"),
    ("patient ID: AB-99812", "patient ID: [record number]"),
    ("chart # 55-1234", "chart # [record number]"),
    ("88124471", "[record number]"),
    ("id 12345678901234", "id [record number]"),
    ("SSN 078-05-1120", "SSN [record number]"),
    ("DOB 04/17/1961", "DOB [date]"),
    ("born 4-17-61", "born [date]"),
    ("17.04.1961", "[date]"),
    ("born 1961-04-17", "born [date]"),
    ("born on April 17, 1961", "born on [date]"),
    ("on apr 17th", "on [date]"),
    ("the 17th of April 1961", "the [date]"),
    ("since Nov 2020", "since [date]"),
    ("I was born in 1961", "I was born in [date]"),
    ("DOB: 1961", "DOB: [date]"),
    ("+1 555 010 7788", "[phone]"),
    ("+15550107788", "[phone]"),
    ("+44 20 7946 0958", "[phone]"),
    ("(555) 010-7788", "[phone]"),
    ("555.010.7788", "[phone]"),
    ("1-555-010-7788", "[phone]"),
    ("5550107788", "[phone]"),
    ("call 555-0107", "call [phone]"),
    ("my cell is 01 07 78 88", "my cell is [phone]"),
    ("42 Larkspur Lane", "[address]"),
    ("I live at 123 Main St, Apt 4.", "I live at [address]."),
    ("9 n. oak tree rd", "[address]"),
    ("1600 Pennsylvania Avenue NW", "[address] NW"),
    ("PO Box 77", "[address]"),
]

KEPT = [
    "40 techniques",
    "third trimester",
    "2020",
    "I had surgery in 2020",
    "is it safe at 36 weeks pregnant",
    "in 2 weeks",
    "12 weeks",
    "1 in 3 may benefit",
    "pain 7/10",
    "3/4 of the time",
    "24/7",
    "the 2nd one",
    "3rd",
    "call 911",
    "call or text 988",
    "2019-2020",
    "a 10 minute drive from the clinic",
    "is there 1 other way",
    "2 hours on the road",
    "3 simple ways to stretch",
    "I am 63 years old",
    "1 or 2 sessions",
    "/how_it_feels",
    '/how_it_feels{"technique": "cranial"}',
    "100 percent",
    "Reply 1 for Low back pain, 2 for What OMT can treat",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_identifiers_are_replaced_by_their_label(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_numbers_and_words_are_kept(text: str) -> None:
    assert redact(text) == text


def test_the_canary_keeps_only_what_is_not_an_identifier() -> None:
    out = redact(CANARY)
    assert not [s for s in STORED_NEVER if s in out], out
    assert out == (
        "Hi, I'm [name], born [date]. Call me on [phone] or email [email]. My MRN [record number], "
        "I live at [address]. Does OMT hurt?"
    ), "every identifier replaced by its label; everything else keeps its wording"


def _corpus() -> list[str]:
    """Every patient-side text we have: regression questions, NLU examples, red flags."""
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            texts.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key != "ok":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((FIXTURES / "questions.yml").read_text()))
    walk(yaml.safe_load((FIXTURES / "red_flag_phrasings.yml").read_text()))
    texts += [line.strip() for line in (FIXTURES / "ordinary_questions.txt").read_text().splitlines() if line.strip()]
    for path in sorted((REPO / "data").glob("nlu*.yml")):  # nlu.yml, nlu_patients.yml, nlu_past_events.yml
        for item in yaml.safe_load(path.read_text())["nlu"]:
            for line in str(item.get("examples") or "").splitlines():
                if line.startswith("- "):
                    texts.append(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line[2:]))
    return texts


def test_no_false_positives_in_our_own_questions_and_training_data() -> None:
    texts = _corpus()
    assert len(texts) > 1000
    changed = {text: redact(text) for text in texts if redact(text) != text}
    assert changed == {}


@pytest.mark.parametrize("phrasing", PHRASINGS, ids=lambda p: p.text[:40])
def test_a_name_given_after_a_cue_is_redacted(phrasing: NamePhrasing) -> None:
    out = redact(phrasing.text)
    assert phrasing.kept(out) == [], out
    assert "[name]" in out


def test_false_name_redactions_are_counted_and_at_most_one_percent() -> None:
    """Ordinary messages (NLU data, question fixtures, cue look-alikes) keep every word."""
    rules = name_rules()
    ordinary = [text for path in ORDINARY for text in ordinary_messages(path)]
    lookalikes = ordinary_messages(FIXTURES / "name_lookalikes.txt")
    assert len(PHRASINGS) >= 50 and len(ordinary) >= 200 and len(lookalikes) >= 100
    false = [text for text in ordinary if redact(text, rules) != text]
    assert len(false) <= 0.01 * len(ordinary), false
    assert [text for text in lookalikes if redact(text, rules) != text] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my name is jane and I have back pain", "my name is [name] and I have back pain"),
        ("I'm Jane Doe, is OMT safe?", "I'm [name], is OMT safe?"),
        ("My wife, Ingrid Solberg, is pregnant", "My wife, [name], is pregnant"),
        ("does it hurt? - Jane", "does it hurt? - [name]"),
        ("this is Dr. Imelda Vasquez", "this is Dr. [name]"),
    ],
)
def test_the_cue_stays_and_only_the_name_goes(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_word_list_may_use_a_list_defined_above_it(tmp_path: Path) -> None:
    raw = yaml.safe_load(REDACTION_FILE.read_text())
    raw["words"] = {"first": "alpha beta", "both": "{{first}}|gamma"}
    raw["rules"] = [{"name": "greek", "label": "[greek]", "pattern": r"\b(?:{{both}})\b", "redacts": ["gamma"]}]
    raw["keeps"] = ["delta"]
    path = tmp_path / "redaction.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert redact("alpha, gamma and delta", load_rules(path)) == "[greek], [greek] and delta"
    raw["words"] = {"both": "{{later}}", "later": "x"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(KnowledgeError, match="unknown word list"):
        load_rules(path)


def test_the_rule_file_checks_its_own_examples(tmp_path: Path) -> None:
    rules = load_rules()
    assert {rule.label for rule in rules} == {"[email]", "[record number]", "[date]", "[phone]", "[address]", "[name]"}
    raw = yaml.safe_load(REDACTION_FILE.read_text())
    broken = tmp_path / "redaction.yml"
    raw["keeps"].append("call me on 555 010 7788")
    broken.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(KnowledgeError, match="keeps: 'call me on 555 010 7788' became"):
        load_rules(broken)
    raw = yaml.safe_load(REDACTION_FILE.read_text())
    raw["rules"][0]["redacts"].append("not an email")
    broken.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(KnowledgeError, match="does not redact its example 'not an email'"):
        load_rules(broken)
    for bad, message in (("{{nope}}", "unknown word list"), ("(", "bad pattern")):
        raw = yaml.safe_load(REDACTION_FILE.read_text())
        raw["rules"][0]["pattern"] = bad
        broken.write_text(yaml.safe_dump(raw, sort_keys=False))
        with pytest.raises(KnowledgeError, match=message):
            load_rules(broken)


def test_a_user_event_is_redacted_everywhere_it_copies_the_text() -> None:
    event = UserUttered(
        CANARY,
        {"name": "how_it_feels", "confidence": 0.9},
        [{"entity": "technique", "value": PHONE, "start": 0, "end": 3}],
        metadata={"client": {"note": EMAIL}, "n": 3},
    )
    data = event.as_dict()
    out = redact_user_event(data)
    dumped = repr(out)
    assert not [s for s in STORED_NEVER if s in dumped], dumped
    assert out["parse_data"]["intent"] == {"name": "how_it_feels", "confidence": 0.9}
    assert out["metadata"] == {"client": {"note": "[email]"}, "n": 3}
    assert event.text == CANARY and EMAIL in repr(event.as_dict()), "the live event is not changed"
    assert redact_value(["a", {"b": PHONE}, 7, None]) == ["a", {"b": "[phone]"}, 7, None]


def _tracker(sender: str, text: str = CANARY) -> DialogueStateTracker:
    return DialogueStateTracker.from_events(
        sender,
        [
            ActionExecuted("action_listen"),
            UserUttered(text, {"name": "how_it_feels", "confidence": 0.9}, []),
            SlotSet("technique", ADDRESS),
            BotUttered(f"Call the clinic at {PHONE}", {"custom": {"answer_id": "handoff"}}),
            ActionExecuted("action_listen"),
        ],
    )


def test_the_redacted_tracker_is_a_copy_with_the_same_events() -> None:
    tracker = _tracker("s1")
    copy = redacted_tracker(tracker)
    assert len(copy.events) == len(tracker.events) and copy.sender_id == "s1"
    assert copy.latest_message is not None and copy.latest_message.text is not None
    assert PHONE not in copy.latest_message.text and copy.get_slot("technique") == "[address]"
    assert tracker.latest_message is not None and tracker.latest_message.text == CANARY, "the turn keeps the raw text"
    bot = copy.events[3]
    assert isinstance(bot, BotUttered) and PHONE in str(bot.text), "our own words are not redacted"
    plain = ActionExecuted("action_listen")
    assert redacted_event(plain) is plain
    user = UserUttered("does it hurt", {"name": "how_it_feels"})
    assert redacted_event(user) is user, "nothing to redact: the same event"


def test_a_tracker_with_nothing_to_redact_is_saved_as_it_is() -> None:
    tracker = DialogueStateTracker.from_events(
        "s2", [ActionExecuted("action_listen"), UserUttered("does it hurt", {"name": "how_it_feels"})]
    )
    assert redacted_tracker(tracker) is tracker


def _sqlite_store(path: Path) -> RedactingTrackerStore:
    return RedactingTrackerStore(wraps="SQL", dialect="sqlite", db=str(path))


def _rows(path: Path, sender: str | None = None) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        if sender is None:
            return list(db.execute("SELECT sender_id, data FROM events"))
        return list(db.execute("SELECT sender_id, data FROM events WHERE sender_id = ?", (sender,)))


def test_the_wrapper_stores_redacted_events_in_rasas_sql_store(tmp_path: Path) -> None:
    db = tmp_path / "tracker.db"
    store = _sqlite_store(db)
    assert isinstance(store.wrapped, SQLTrackerStore)
    store.domain = Domain.empty()
    tracker = _tracker("s1")
    asyncio.run(store.save(tracker))
    tracker.update(UserUttered(f"and my email is {EMAIL}", {"name": "inform"}))
    asyncio.run(store.save(tracker))  # the second save adds only the new event, like Rasa's
    dump = "\n".join(data for _, data in _rows(db))
    assert len(_rows(db)) == len(tracker.events)
    assert not [s for s in STORED_NEVER if s in dump.replace(f"Call the clinic at {PHONE}", "")], dump
    assert "[email]" in dump and "[phone]" in dump and "Does OMT hurt?" in dump
    restored = asyncio.run(store.retrieve("s1"))
    assert restored is not None and restored.latest_message is not None
    assert restored.latest_message.text == "and my email is [email]"
    with sqlite3.connect(db) as conn:  # write-ahead log: a commit does not sync the file
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_every_name_phrasing_is_stored_without_its_names(tmp_path: Path) -> None:
    """Through the redacting store into Rasa's SQLite store: no phrasing's name reaches the table."""
    db = tmp_path / "tracker.db"
    store = _sqlite_store(db)
    store.domain = Domain.empty()
    for i, phrasing in enumerate(PHRASINGS):
        tracker = _tracker(f"name-{i}", phrasing.text)
        asyncio.run(store.save(tracker))
        assert tracker.latest_message is not None and tracker.latest_message.text == phrasing.text, "turn: raw"
    kept = {}
    for i, phrasing in enumerate(PHRASINGS):
        stored = [json.loads(data) for _, data in _rows(db, f"name-{i}")]
        texts = " ".join(e.get("text") or "" for e in stored if e["event"] == "user")
        assert "[name]" in texts
        if phrasing.kept(texts):
            kept[phrasing.text] = texts
    assert len(PHRASINGS) >= 50 and kept == {}


def test_delete_erases_one_sender_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "tracker.db"
    store = _sqlite_store(db)
    for sender in ("keep", "erase"):
        asyncio.run(store.save(_tracker(sender)))
    assert asyncio.run(store.delete("erase")) == 5
    assert _rows(db, "erase") == [] and len(_rows(db, "keep")) == 5
    assert asyncio.run(store.delete("erase")) == 0
    memory = RedactingTrackerStore(wraps="in_memory")
    asyncio.run(memory.save(_tracker("m")))
    assert asyncio.run(memory.delete("m")) == 5 and asyncio.run(memory.retrieve("m")) is None


def test_the_wrapper_refuses_what_it_cannot_erase_or_itself() -> None:
    with pytest.raises(ValueError, match="cannot wrap itself"):
        RedactingTrackerStore(wraps="omt.rasa.redacting_store.RedactingTrackerStore")
    with pytest.raises(ValueError, match="cannot erase from"):
        RedactingTrackerStore(wraps="redis")  # Rasa's Redis store: no delete of ours for it


def test_endpoints_yml_configures_the_wrapper_over_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa.core.tracker_store import TrackerStore
    from rasa.core.utils import read_endpoints_from_path

    monkeypatch.setenv("TRACKER_DB", str(tmp_path / "from-env.db"))
    monkeypatch.setenv("TRACKER_DB_URL", "")
    monkeypatch.setenv("LOCK_STORE_URL", "")
    monkeypatch.setenv("ACTION_ENDPOINT_URL", "http://127.0.0.1:1/webhook")
    endpoints = read_endpoints_from_path(REPO / "endpoints.yml")
    store = TrackerStore.create(endpoints.tracker_store)
    assert isinstance(store, RedactingTrackerStore) and isinstance(store.wrapped, SQLTrackerStore)
    assert str(store.wrapped.engine.url).endswith("from-env.db")


# ---- the running stack ---------------------------------------------------------------


def _events_dump(stack: Stack) -> str:
    with sqlite3.connect(stack.tracker_db) as db:
        return "\n".join(f"{s} {d}" for s, d in db.execute("SELECT sender_id, data FROM events"))


def _sms(stack: Stack, body: str, sender: str) -> int:
    """One signed text to the stack's SMS webhook (tests/channels/test_channel_sms.py's helper); the HTTP status."""
    return sms_text(stack, body, sender)[0]


def _socketio(stack: Stack, text: str) -> tuple[str, int]:
    """Send `text` over socket.io like the widget; (session id, bot replies received)."""
    import socketio  # python-socketio's client

    client = socketio.Client(reconnection=False)
    confirmed: list[str] = []
    replies: list[dict[str, Any]] = []
    client.on("session_confirm", confirmed.append)
    client.on("bot_uttered", replies.append)
    client.connect(stack.url, transports=["polling"], wait_timeout=20)
    try:
        client.emit("session_request", {"session_id": uuid.uuid4().hex})
        wait_until(lambda: bool(confirmed))
        client.emit("user_uttered", {"message": text, "session_id": confirmed[0]})
        wait_until(lambda: bool(replies))
        return confirmed[0], len(replies)
    finally:
        client.disconnect()


@pytest.mark.stack
def test_stored_events_hold_no_canary_identifiers(stack: Stack) -> None:
    sender = f"test-{uuid.uuid4().hex}"
    replies = post(stack.rest_url, sender, CANARY)
    assert replies, "the patient got an answer"
    post(stack.rest_url, sender, f"my email again: {EMAIL}, phone {PHONE}")
    with sqlite3.connect(stack.tracker_db) as db:
        rows = db.execute("SELECT data FROM events WHERE sender_id = ?", (sender,)).fetchall()
    dump = "\n".join(data for (data,) in rows)
    assert '"event": "user"' in dump and "[phone]" in dump and "[email]" in dump
    assert not [s for s in STORED_NEVER if s in dump], "identifiers stored"


@pytest.mark.stack
def test_the_screener_still_reads_the_raw_text(stack: Stack, knowledge: Knowledge) -> None:
    sender = f"test-{uuid.uuid4().hex}"
    replies = post(stack.rest_url, sender, f"This is {NAME}, I have crushing chest pain, call {PHONE}")
    assert contract_faults(replies, knowledge) == ("emergency", [])
    with sqlite3.connect(stack.tracker_db) as db:
        rows = db.execute("SELECT data FROM events WHERE sender_id = ?", (sender,)).fetchall()
    assert any("This is [name], I have crushing chest pain, call [phone]" in data for (data,) in rows)


# The canary: a name nobody else has, given the ways a patient would give it.
CANARY_NAME = ("Zebulon", "Quistgaard")
CANARY_NAME_MESSAGES = (
    "hi, I'm Zebulon Quistgaard, born 1961-07-04, my MRN 88442211",
    "my name is zebulon quistgaard, does OMT hurt?",
    "can my son Zebulon get OMT",
    "is it safe in pregnancy? thanks, Zebulon Quistgaard",
    "This is Zebulon, I have crushing chest pain",
)


@pytest.mark.stack
def test_a_canary_name_leaves_no_trace_in_the_sqlite_store(stack: Stack, knowledge: Knowledge) -> None:
    sender = f"test-{uuid.uuid4().hex}"
    answers = [contract_faults(post(stack.rest_url, sender, text), knowledge) for text in CANARY_NAME_MESSAGES]
    assert all(faults == [] for _, faults in answers), answers
    assert answers[-1][0] == "emergency", "the screener read the raw text, name and all"
    with sqlite3.connect(stack.tracker_db) as db:
        rows = db.execute("SELECT data FROM events WHERE sender_id = ?", (sender,)).fetchall()
        db.execute("PRAGMA wal_checkpoint(FULL)")
    user_texts = [e["text"] for e in (json.loads(d) for (d,) in rows) if e["event"] == "user"]
    assert len(user_texts) == len(CANARY_NAME_MESSAGES) and all("[name]" in t for t in user_texts), user_texts
    files = [p for p in stack.tracker_db.parent.glob(stack.tracker_db.name + "*") if p.is_file()]
    raw = b"".join(p.read_bytes() for p in files).lower()
    assert files and [n for n in CANARY_NAME if n.lower().encode() in raw] == [], "the name is in the database files"


@pytest.fixture(scope="module")
def production_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session stack when it runs at Rasa's production level (INFO, the default); else our own at INFO."""
    if os.environ.get("LOG_LEVEL", "INFO").upper() in ("INFO", "WARNING", "ERROR", "CRITICAL"):
        yield request.getfixturevalue("stack")
        return
    with running_stack(tmp_path_factory.mktemp("info-stack"), extra_env={"LOG_LEVEL": "INFO"}) as own:
        yield own


@pytest.mark.stack
def test_no_canary_in_logs_or_store_after_every_channel(production_stack: Stack) -> None:
    stack = production_stack
    assert post(stack.rest_url, f"test-{uuid.uuid4().hex}", CANARY)
    assert _sms(stack, CANARY, f"+1555010{uuid.uuid4().int % 10_000:04d}") == 200
    _, replies = _socketio(stack, CANARY)
    assert replies >= 1
    time.sleep(1.0)  # let the processes flush their logs
    logs = stack.logs()
    provenance = (stack.workdir / "replies.jsonl").read_text()
    assert logs and provenance
    assert [s for s in LOGGED_NEVER if s in logs] == [], "patient text in the stack's logs"
    assert [s for s in LOGGED_NEVER if s in provenance] == [], "patient text in the provenance log"
    assert [s for s in STORED_NEVER if s in _events_dump(stack)] == [], "identifiers in the tracker store"


# ---- names: ordinary words and capitalisation (omt/core/lexicon.py) ----------------------


def test_english_words_tell_ordinary_words_from_names() -> None:
    from omt.core.lexicon import all_english

    assert all_english("Retired") and all_english("Pretty Sure") and all_english("Amazing")
    assert not all_english("Keisha") and not all_english("Jane Doe"), "one unknown word: a name"
    assert not all_english("")


@pytest.mark.parametrize(
    ("text", "sentence_case"),
    [
        ("can my son Tom get OMT", True),
        ("This Is Ridiculous", False),
        ("I'm Retired", False),  # nothing to judge by
        ("My Son Needs Help With His Back", False),
        ("Hi. I'm Tom, does OMT hurt? It might.", True),
    ],
)
def test_the_message_capitalisation_decides_for_names_that_are_words(text: str, sentence_case: bool) -> None:
    from omt.core.lexicon import writes_in_sentence_case

    match = re.search(r"(?:my son|I'm|This Is) \w+", text, re.IGNORECASE)
    assert match is not None
    assert writes_in_sentence_case(text, match.span()) is sentence_case


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("can my son Tom get OMT", "can my son [name] get OMT"),
        ("I'm Grace and my back hurts", "I'm [name] and my back hurts"),
        ("I'm Retired", "I'm Retired"),
        ("I'm Grace", "I'm Grace"),  # an English word with nothing to judge by: kept
        ("My Son Will Try OMT", "My Son Will Try OMT"),
        ("Good morning, I'm Bartosz Wiśniewski", "Good morning, I'm [name]"),
    ],
)
def test_a_capitalised_english_word_is_a_name_only_in_a_sentence_case_message(text: str, expected: str) -> None:
    assert redact(text) == expected
