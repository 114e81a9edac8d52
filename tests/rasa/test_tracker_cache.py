"""omt.rasa.tracker_cache, and its use by the redacting store over SQLite: kept only while nothing newer is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from omt.rasa.redacting_store import RedactingTrackerStore
from omt.rasa.tracker_cache import TrackerCache
from tests.rasa.test_tracker_window import DOMAIN, _conversation, _saved, _turn


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


def _store(path: Path, keep: int = 10, window: int = 3) -> RedactingTrackerStore:
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
    store = _store(tmp_path / "t.db")
    _saved(store, _conversation(2))
    saved = _turn_saved(store, 2)
    assert asyncio.run(store.retrieve("s")) is saved, "no read: the same tracker"
    assert asyncio.run(store.retrieve("s")) is not saved, "taken once: a second reader gets the store's copy"


def test_a_write_from_elsewhere_means_a_fresh_read(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    store, replica = _store(db), _store(db)  # two processes over one database
    _saved(store, _conversation(2))
    saved = _turn_saved(store, 2)
    _turn_saved(replica, 3)  # the other replica answers the next message
    tracker = asyncio.run(store.retrieve("s"))
    assert tracker is not None and tracker is not saved
    assert [e.text for e in tracker.events if isinstance(e, UserUttered)][-1] == "question 3"


def test_a_tracker_changed_but_not_saved_or_erased_is_not_used(tmp_path: Path) -> None:
    store = _store(tmp_path / "t.db")
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
    store = _store(tmp_path / "t.db", window=2)
    _saved(store, _conversation(1))
    lengths = [len(_turn_saved(store, i).events) for i in range(1, 12)]
    assert max(lengths) <= 2 * 2 * 6 + 8, lengths  # at most twice the window's turns, plus the state before it
