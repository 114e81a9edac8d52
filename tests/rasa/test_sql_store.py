"""omt.rasa.sql_store through the redacting store over SQLite: a long conversation read as its recent turns,
and the trackers saved last kept only while nothing newer is stored.

The windowed tracker must reach the state a whole replay reaches (slots, latest message,
the policies' last states), save exactly the new events once, and fall back to the whole
session whenever the events before the window do more than set slots.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest
from rasa.core.brokers.broker import EventBroker
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    AllSlotsReset,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from omt.rasa import sql_store
from omt.rasa.redacting_store import RedactingTrackerStore
from omt.rasa.sql_store import TrackerCache

DOMAIN = Domain.from_yaml(
    """
intents: [ask, more]
actions: [action_answer]
slots:
  topic:
    type: any
    mappings: [{type: custom}]
  notice_given:
    type: bool
    influence_conversation: true
    mappings: [{type: custom}]
"""
)
EMAIL = "pat@example.com"


def _turn(i: int, topic: str | None = None) -> list[Event]:
    events: list[Event] = [
        UserUttered(f"question {i}", {"name": "ask", "confidence": 1.0}),
        ActionExecuted("action_answer"),
        BotUttered(f"answer {i}", {"custom": {"answer_id": f"a{i}"}}),
    ]
    if topic is not None:
        events.append(SlotSet("topic", topic))
    return [*events, ActionExecuted("action_listen")]


def _conversation(turns: int, start: list[Event] | None = None) -> list[Event]:
    events: list[Event] = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
    events += start or [
        UserUttered("hi", {"name": "ask"}),
        SlotSet("notice_given", True),
        ActionExecuted("action_listen"),
    ]
    for i in range(turns):
        events += _turn(i, f"topic {i}" if i % 3 == 0 else None)
    return events


def _store(path: Path, window: int = 3) -> RedactingTrackerStore:
    store = RedactingTrackerStore(wraps="SQL", dialect="sqlite", db=str(path), window_turns=window)
    store.domain = DOMAIN
    return store


def _saved(store: RedactingTrackerStore, events: list[Event], sender: str = "s") -> DialogueStateTracker:
    tracker = DialogueStateTracker.from_events(sender, events, DOMAIN.slots)
    asyncio.run(store.save(tracker))
    return tracker


def _rows(path: Path, sender: str = "s") -> list[dict]:
    with sqlite3.connect(path) as db:
        return [
            json.loads(d) for (d,) in db.execute("SELECT data FROM events WHERE sender_id = ? ORDER BY id", (sender,))
        ]


def test_a_long_conversation_is_read_as_its_recent_turns_with_the_whole_state(tmp_path: Path) -> None:
    store = _store(tmp_path / "t.db", window=3)
    full = _saved(store, _conversation(20))
    window = asyncio.run(store.retrieve("s"))
    assert window is not None and sql_store.loaded_events(window) == len(window.events)
    assert len(window.events) < 25 < len(full.events)
    assert [e.text for e in window.events if isinstance(e, UserUttered)] == [
        "question 17",
        "question 18",
        "question 19",
    ]
    assert window.current_slot_values() == full.current_slot_values()
    assert window.get_slot("notice_given") is True, "a slot set at turn 1 is carried"
    assert window.get_slot("topic") == "topic 18"
    assert window.latest_message is not None and window.latest_message.text == "question 19"
    assert window.latest_action_name == full.latest_action_name == "action_listen"
    assert window.past_states(DOMAIN)[-5:] == full.past_states(DOMAIN)[-5:], "the policies see the same last states"
    assert isinstance(window.events[0], SessionStarted)


@pytest.mark.parametrize("turns", [3, 0], ids=["windowed", "whole"])
def test_new_events_are_saved_once_in_order_and_redacted(tmp_path: Path, turns: int) -> None:
    db = tmp_path / "t.db"
    store = _store(db, turns)
    _saved(store, _conversation(12))
    before = _rows(db)
    tracker = asyncio.run(store.retrieve("s"))
    assert tracker is not None
    for event in [UserUttered(f"mail me at {EMAIL}", {"name": "ask"}), ActionExecuted("action_answer")]:
        tracker.update(event)
    asyncio.run(store.save(tracker))
    tracker.update(ActionExecuted("action_listen"))
    asyncio.run(store.save(tracker))  # a second save adds only what came after the first
    asyncio.run(store.save(tracker))  # nothing new: nothing written
    after = _rows(db)
    assert after[: len(before)] == before
    assert [(e["event"], e.get("name"), e.get("text")) for e in after[len(before) :]] == [
        ("user", None, "mail me at [email]"),
        ("action", "action_answer", None),
        ("action", "action_listen", None),
    ]
    assert tracker.latest_message is not None and EMAIL in str(tracker.latest_message.text), "the live turn keeps it"
    whole = asyncio.run(store.retrieve_full_tracker("s"))
    assert whole is not None and len(whole.events) == len(after)


def _read_whole(tracker: DialogueStateTracker | None, full: DialogueStateTracker) -> bool:
    """Rasa's own read: the session from its start (all but `action_session_start`), all of it stored."""
    return (
        tracker is not None
        and len(tracker.events) == len(full.events) - 1
        and sql_store.loaded_events(tracker) == len(tracker.events)
    )


def test_short_conversations_and_other_stores_are_read_whole(tmp_path: Path) -> None:
    store = _store(tmp_path / "t.db", window=3)
    full = _saved(store, _conversation(2))  # 3 patient messages ("hi" + 2): no earlier turn to leave out
    assert _read_whole(asyncio.run(store.retrieve("s")), full)
    off = _store(tmp_path / "off.db", window=0)
    full = _saved(off, _conversation(20))
    assert _read_whole(asyncio.run(off.retrieve("s")), full)
    memory = RedactingTrackerStore(wraps="in_memory", window_turns=3, rules=[])
    memory.domain = DOMAIN
    _saved(memory, _conversation(20))
    tracker = asyncio.run(memory.retrieve("s"))
    assert tracker is not None and len(tracker.events) == len(full.events)
    assert sql_store.loaded_events(tracker) is None, "a store that saves whole trackers gets whole trackers"


@pytest.mark.parametrize(
    "hidden",
    [lambda: [Restarted()], lambda: [AllSlotsReset()], lambda: [ConversationPaused(), ConversationResumed()]],
    ids=["restart", "slots reset", "pause"],
)
def test_anything_but_slots_before_the_window_means_a_whole_read(
    tmp_path: Path, hidden: Callable[[], list[Event]]
) -> None:
    store = _store(tmp_path / "t.db", window=3)
    events = _conversation(2) + hidden() + [ActionExecuted("action_listen")]  # made now: timestamps in order
    for i in range(2, 10):
        events += _turn(i)
    full = _saved(store, events)
    tracker = asyncio.run(store.retrieve("s"))
    assert _read_whole(tracker, full)
    assert tracker is not None and tracker.current_slot_values() == full.current_slot_values()


def test_only_the_latest_session_is_read(tmp_path: Path) -> None:
    store = _store(tmp_path / "t.db", window=3)
    events = _conversation(10)
    events += [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
    for i in range(10, 16):
        events += _turn(i)
    full = _saved(store, events)
    tracker = asyncio.run(store.retrieve("s"))
    assert tracker is not None and sql_store.loaded_events(tracker) is not None
    assert tracker.get_slot("topic") is None and tracker.get_slot("notice_given") is None, "a new session starts afresh"
    assert tracker.current_slot_values() == full.current_slot_values()
    assert [e.text for e in tracker.events if isinstance(e, UserUttered)] == [
        "question 13",
        "question 14",
        "question 15",
    ]


class Published(EventBroker):
    """An event broker that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def test_an_event_broker_gets_each_appended_event_once(tmp_path: Path) -> None:
    broker = Published()
    store = RedactingTrackerStore(
        wraps="SQL", dialect="sqlite", db=str(tmp_path / "t.db"), window_turns=3, event_broker=broker, rules=[]
    )
    assert isinstance(store.wrapped, sql_store.WindowedSQLTrackerStore)
    store.domain = DOMAIN
    _saved(store, _conversation(10))
    first = len(broker.events)
    tracker = asyncio.run(store.retrieve("s"))
    assert tracker is not None
    for event in _turn(10):
        tracker.update(event)
    asyncio.run(store.save(tracker))
    assert [e["event"] for e in broker.events[first:]] == ["user", "action", "bot", "action"]
    assert {e["sender_id"] for e in broker.events} == {"s"}


# --- the kept trackers ---------------------------------------------------------------------


def _tracker(sender: str) -> DialogueStateTracker:
    return DialogueStateTracker.from_events(sender, [ActionExecuted("action_listen")], DOMAIN.slots)


def test_the_cache_keeps_the_last_saved_conversations_and_hands_each_out_once() -> None:
    cache = TrackerCache(2)
    a, b, c = _tracker("a"), _tracker("b"), _tracker("c")
    cache.keep(a, 1)
    cache.keep(b, 2)
    cache.keep(c, 3)  # over the size: the least recently saved (a) goes
    assert len(cache) == 2 and cache.take("a") is None
    kept = cache.take("b")
    assert kept is not None and kept.tracker is b and kept.last_id == 2
    assert cache.take("b") is None, "handed out: a failed turn leaves nothing behind"
    cache.keep(c, None)  # nothing stored: nothing kept
    assert cache.take("c") is None
    cache.keep(a, 5)
    cache.forget("a")
    assert cache.take("a") is None
    off = TrackerCache(0)
    off.keep(a, 1)
    assert len(off) == 0


def _kept_store(path: Path, keep: int = 10, window: int = 3) -> RedactingTrackerStore:
    store = RedactingTrackerStore(
        wraps="SQL", dialect="sqlite", db=str(path), window_turns=window, keep_conversations=keep, rules=[]
    )
    store.domain = DOMAIN
    return store


def _turn_saved(store: RedactingTrackerStore, i: int) -> DialogueStateTracker:
    tracker = asyncio.run(store.retrieve("s"))
    assert tracker is not None
    for event in _turn(i):
        tracker.update(event)
    asyncio.run(store.save(tracker))
    return tracker


def test_the_tracker_saved_last_is_used_again_while_the_store_has_nothing_newer(tmp_path: Path) -> None:
    store = _kept_store(tmp_path / "t.db")
    _saved(store, _conversation(2))
    saved = _turn_saved(store, 2)
    assert asyncio.run(store.retrieve("s")) is saved, "no read: the same tracker"
    assert asyncio.run(store.retrieve("s")) is not saved, "taken once: a second reader gets the store's copy"


def test_a_write_from_elsewhere_means_a_fresh_read(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    store, replica = _kept_store(db), _kept_store(db)  # two processes over one database
    _saved(store, _conversation(2))
    saved = _turn_saved(store, 2)
    _turn_saved(replica, 3)  # the other replica answers the next message
    tracker = asyncio.run(store.retrieve("s"))
    assert tracker is not None and tracker is not saved
    assert [e.text for e in tracker.events if isinstance(e, UserUttered)][-1] == "question 3"


def test_a_tracker_changed_but_not_saved_or_erased_is_not_used(tmp_path: Path) -> None:
    store = _kept_store(tmp_path / "t.db")
    _saved(store, _conversation(2))
    saved = _turn_saved(store, 2)
    saved.update(UserUttered("after the save", {"name": "ask"}))  # changed while kept, never saved
    tracker = asyncio.run(store.retrieve("s"))
    assert tracker is not None and tracker is not saved
    assert all(e.text != "after the save" for e in tracker.events if isinstance(e, UserUttered))
    _turn_saved(store, 3)
    assert asyncio.run(store.delete("s")) > 0
    assert asyncio.run(store.retrieve("s")) is None, "erased: nothing kept either"


def test_a_kept_tracker_grown_past_the_window_is_read_through_it_again(tmp_path: Path) -> None:
    store = _kept_store(tmp_path / "t.db", window=2)
    _saved(store, _conversation(1))
    lengths = [len(_turn_saved(store, i).events) for i in range(1, 12)]
    assert max(lengths) <= 2 * 2 * 6 + 8, lengths  # at most twice the window's turns, plus the state before it


def test_a_save_writes_the_rows_rasas_save_writes(tmp_path: Path) -> None:
    """A whole tracker, then the same with one more event: every column of every row as Rasa's SQL store writes it."""
    from rasa.core.tracker_store import SQLTrackerStore

    events = [*_conversation(3), UserUttered("no intent here"), UserUttered("hi", parse_data={"text": "hi"})]
    later = BotUttered("later", {"custom": {"answer_id": "x"}})
    rasas = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "rasa.db"))
    ours = sql_store.WindowedSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "ours.db"))

    def columns(path: Path) -> list[tuple]:
        with sqlite3.connect(path) as db:
            query = "SELECT sender_id, type_name, timestamp, intent_name, action_name, data FROM events ORDER BY id"
            return list(db.execute(query))

    for store in (rasas, ours):
        tracker = DialogueStateTracker.from_events("s", events, DOMAIN.slots)
        asyncio.run(store.save(tracker))
        tracker.update(later)
        asyncio.run(store.save(tracker))
    written = columns(tmp_path / "ours.db")
    assert written == columns(tmp_path / "rasa.db")
    assert [json.loads(row[5]) for row in written[: len(events)]] == [e.as_dict() for e in events]
    assert {row[3] for row in written} >= {"ask", None}
