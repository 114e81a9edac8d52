"""Rasa's SQL tracker store, made cheap and bounded: a conversation read as its recent turns, a save
that appends a turn's events, and the trackers this process saved last kept for their next message.

The windowed read and the appending save
----------------------------------------
A long conversation read back as its recent turns: turn 100 costs about what turn 1 does.

Rasa 3.6 rebuilds the tracker from every event of the session on each message, then its
policies derive a state for every past action several times per prediction, and the
store re-reads and re-checks the whole session when saving: at turn 100 (about 650
events) a turn took four times as long as at turn 1 (`make bench`).

The policies look back only a few turns (MemoizationPolicy `max_history`, the rules'
snippets), the actions read slots, and the SMS channel reads the last menu shown. So the
tracker handed to Rasa holds what they read and no more:

- the session's `session_started` event and, for each slot set before the window, its
  latest `SlotSet`: the state a full replay reaches at the window's start;
- every event from the `action_listen` before the `turns`-th last patient message on.

This is exact only when the events before the window change nothing but slots and the
"latest" fields the window sets again: patient and bot messages, actions, slots, the
session start. Any other event there (a restart, a slot reset, a rewind, a form, a
pause) and the read is Rasa's own whole session. Shorter sessions are read whole too.

Saving writes Rasa's rows, in one multi-row INSERT rather than one ORM object per event,
and chooses which events differently: Rasa's SQL store counts the stored events and
writes the tracker's events after that many, which a windowed tracker cannot answer.
`WindowedSQLTrackerStore` (Rasa's store with that step, and the event broker's diff,
replaced) is handed `Unsaved`, the events added since the read: `save_new`, which the
redacting store calls with its redaction for every tracker read this way, windowed or
not, so a save redacts and writes only the turn's events. `retrieve_full_tracker` (the
HTTP API, exports) is untouched.

The kept trackers
-----------------
The trackers this process saved, kept for their conversation's next message.

Reading a conversation back costs two queries, JSON for each event and a replay of the
events: about 3 ms of a 20 ms turn (`make bench`). The process that saved a tracker
already holds what that read would rebuild. So after a save the tracker is kept with the
id of the last stored event of its conversation, and the next read takes it back only
if that id is still the last (one indexed query): any write from elsewhere (another
replica, an erasure, a purge) changes it, and the conversation is read from the store.

A tracker is taken out when it is handed to a turn and put back only by a successful
save: a turn that fails half-way leaves nothing behind.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, cast

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

from omt.core import idempotency
from omt.rasa.patches import AppendableSQLTrackerStore, session_events, stream_new_events

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Event types that may stay out of the window (see the module docstring). Rasa's
# `user_featurization` event (DefinePrevUserUtteredFeaturization) sets nothing on a tracker.
HIDEABLE = frozenset(
    {
        ActionExecuted.type_name,
        BotUttered.type_name,
        SessionStarted.type_name,
        SlotSet.type_name,
        UserUttered.type_name,
        "user_featurization",
    }
)
assert UserUtteranceReverted.type_name not in HIDEABLE  # a rewind replays what came before it

# Set on a tracker read from the SQL store (whole or through a window): how many of its
# events were read or saved since, not made after.
ATTRIBUTE = "_omt_window_loaded"


def window_rows(store: SQLTrackerStore, session: Session, sender_id: str, turns: int) -> list[str] | None:
    """The stored events (JSON, in order) of the windowed tracker; None: read the whole session.

    A few indexed queries; none reads the events before the window except the carried
    slots, one row per slot.
    """
    event = store.SQLEvent
    events = session_events(store, session, sender_id)
    # The `turns`-th last patient message, and the one before it (there must be one to leave out).
    users = (
        events.filter(event.type_name == UserUttered.type_name)
        .with_entities(event.id)
        .order_by(event.id.desc())
        .offset(turns - 1)
        .limit(2)
        .all()
    )
    if len(users) < 2:
        return None  # at most `turns` messages in this session
    first_user = users[0][0]
    start = (
        events.filter(
            event.id < first_user,
            event.type_name == ActionExecuted.type_name,
            event.action_name == ACTION_LISTEN_NAME,
        )
        .with_entities(sa.func.max(event.id))
        .scalar()
    )
    if start is None:
        return None
    hidden = events.filter(event.id < start)
    if hidden.filter(event.type_name.notin_(HIDEABLE)).with_entities(event.id).limit(1).first() is not None:
        return None  # something before the window changes more than slots: replay it all
    carried = [
        latest_id
        for (latest_id,) in hidden.filter(event.type_name.in_((SlotSet.type_name, SessionStarted.type_name)))
        .with_entities(sa.func.max(event.id))
        .group_by(event.type_name, event.action_name)  # a SlotSet's `action_name` column holds the slot's name
    ]
    rows = events.filter(sa.or_(event.id >= start, event.id.in_(carried))).order_by(event.id)
    return [data for (data,) in rows.with_entities(event.data)]


def carried_after_session_start(serialised: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events from the session start on: slots set before it are reset by it, as in a replay."""
    starts = [i for i, e in enumerate(serialised) if e.get("event") == SessionStarted.type_name]
    return list(serialised[starts[-1] :]) if starts else list(serialised)


def windowed_tracker(
    store: SQLTrackerStore, session: Session, sender_id: str, turns: int
) -> DialogueStateTracker | None:
    """The conversation's recent turns with the state before them, marked for `loaded_events`; None: read it whole."""
    if turns < 1 or not store.domain:
        return None
    rows = window_rows(store, session, sender_id, turns)
    if rows is None:
        return None
    serialised = carried_after_session_start([json.loads(data) for data in rows])
    tracker = DialogueStateTracker.from_dict(sender_id, serialised, store.domain.slots)
    mark_saved(tracker)  # all it holds is stored
    return tracker


def loaded_events(tracker: DialogueStateTracker) -> int | None:
    """How many of the tracker's events are stored already (None: not known, the tracker was not read)."""
    value = getattr(tracker, ATTRIBUTE, None)
    return value if isinstance(value, int) else None


def mark_saved(tracker: DialogueStateTracker) -> None:
    """After a save, the tracker's events are all stored: a second save adds only later ones."""
    setattr(tracker, ATTRIBUTE, len(tracker.events))


@cache
def _last_id_statement(table: sa.Table) -> Any:
    """Built once: an ORM query costs five times the indexed lookup it runs."""
    return sa.select(sa.func.max(table.c.id)).where(table.c.sender_id == sa.bindparam("sender_id"))


def last_event_id(store: SQLTrackerStore, sender_id: str) -> int | None:
    """The id of the conversation's last stored event (any session); None when none is stored."""
    with store.engine.connect() as connection:
        value = connection.execute(_last_id_statement(store.SQLEvent.__table__), {"sender_id": sender_id}).scalar()
    return None if value is None else int(value)


def user_messages(tracker: DialogueStateTracker) -> int:
    return sum(1 for event in tracker.events if isinstance(event, UserUttered))


def event_row(sender_id: str, event: Event) -> dict[str, Any]:
    """The columns Rasa's `SQLTrackerStore.save` writes for one event."""
    data = event.as_dict()
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": data.get("timestamp"),
        "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }


@dataclass
class Unsaved:
    """The events of a tracker that the store does not hold yet: what `WindowedSQLTrackerStore` writes."""

    sender_id: str
    new: list[Event]


class WindowedSQLTrackerStore(AppendableSQLTrackerStore):
    """Rasa's SQL store, read as a conversation's recent turns, saved by appending, with the last saved trackers kept.

    `retrieve_recent` and `save_new` are what the redacting store calls (omt/rasa/redacting_store.py);
    Rasa's own `retrieve` and `retrieve_full_tracker` stay Rasa's; `save` writes Rasa's rows in
    one statement, and a save handed `Unsaved` appends those events without counting the
    stored ones (Rasa's save counts the stored events of the session and writes the
    tracker's events after that many; a windowed tracker holds fewer events than are
    stored, and for any tracker read whole the count is known already).
    """

    def __init__(self, *args: Any, window_turns: int = 0, keep_conversations: int = 0, **kwargs: Any) -> None:
        """Rasa's SQL store from endpoints.yml's keys, and ours.

        `window_turns` > 0: a conversation is read as its last `window_turns` patient
        messages plus the state before them; 0: whole. `keep_conversations` > 0: the
        trackers of that many conversations saved last are kept in memory for their next
        message, used while the store holds nothing newer.
        """
        super().__init__(*args, **kwargs)
        self.window_turns = int(window_turns or 0)
        self.kept = TrackerCache(int(keep_conversations or 0))
        test_connections_before_use(self)
        tune_sqlite(self)

    async def retrieve_recent(self, sender_id: str) -> DialogueStateTracker | None:
        """The latest session: the tracker kept from the last save, or the recent turns, or Rasa's whole read.

        First one indexed lookup of the conversation's last stored event: none (a new
        patient) needs no other query; the same as the kept tracker's means no read.
        """
        last_id = last_event_id(self, sender_id)
        kept = self.kept.take(sender_id)
        if last_id is None:
            return None  # nothing stored, as Rasa's read would find
        if (
            kept is not None and kept.last_id == last_id and loaded_events(kept.tracker) == len(kept.tracker.events)
        ):  # nothing stored since it was, nothing added to it since
            return kept.tracker
        tracker = None
        if self.window_turns > 0:
            with self.session_scope() as session:
                tracker = windowed_tracker(self, session, sender_id, self.window_turns)
        if tracker is None:
            tracker = await self.retrieve(sender_id)  # Rasa's read of the whole session
            if tracker is not None:
                mark_saved(tracker)  # all it holds is stored: a save adds only what follows
        return tracker

    async def save_new(self, tracker: DialogueStateTracker, redact: Callable[[Event], Event]) -> None:
        """Append the events of a tracker read by `retrieve_recent` added since, each through `redact`; keep it."""
        loaded = loaded_events(tracker)
        if loaded is None or len(tracker.events) <= loaded:
            return
        new = [redact(event) for event in itertools.islice(tracker.events, loaded, None)]
        await self.save(cast(DialogueStateTracker, Unsaved(tracker.sender_id, new)))
        mark_saved(tracker)
        self._keep(tracker)

    def _keep(self, tracker: DialogueStateTracker) -> None:
        """Keep a tracker just saved (all its events stored) for the conversation's next message."""
        if self.kept.size < 1:
            return
        if self.window_turns and user_messages(tracker) > 2 * self.window_turns:
            self.kept.forget(tracker.sender_id)  # grown well past the window: read it through the window again
            return
        self.kept.keep(tracker, last_event_id(self, tracker.sender_id))

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Rasa's save, its rows written by one multi-row INSERT instead of one ORM object each.

        The rows are Rasa's (`event_row`); SQLAlchemy's unit of work cost about 2 ms a turn
        for the turn's seven or so events, the statement 0.7 ms (README, "Measured").
        """
        await self.stream_events(tracker)
        with self.session_scope() as session:
            rows = [event_row(tracker.sender_id, event) for event in self.events_to_save(session, tracker)]
            if rows:
                session.execute(self.SQLEvent.__table__.insert(), rows)
            session.commit()

    def events_to_save(self, session: Session, tracker: DialogueStateTracker) -> Iterator[Event]:
        if isinstance(tracker, Unsaved):
            return iter(tracker.new)
        return super().events_to_save(session, tracker)

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        """With an event broker: publish what is appended, as Rasa's diff would find it."""
        if not isinstance(tracker, Unsaved):
            await super().stream_events(tracker)
        elif self.event_broker is not None:
            await stream_new_events(self, self.event_broker, tracker.new, tracker.sender_id)


# -- the SQL engine ----------------------------------------------------------------------------


def test_connections_before_use(store: SQLTrackerStore) -> None:
    """A database server's pooled connections are checked before each use (SQLAlchemy's pool_pre_ping).

    Rasa's engine keeps connections to PostgreSQL in a pool. After the server restarts
    (maintenance, fail-over) every one of them is dead; without this check the first read
    of each fails, and Rasa's fail-safe store then answers as if the conversation were new.
    SQLite has no server to lose, so its engine stays as Rasa made it.
    """
    if store.engine.dialect.name == "sqlite":
        return
    old, url = store.engine, store.engine.url
    store.engine = sa.create_engine(url, pool_pre_ping=True, **create_engine_kwargs(url))
    store.sessionmaker = sa.orm.session.sessionmaker(bind=store.engine)
    old.dispose()


def tune_sqlite(inner: Any) -> None:
    """SQLite in write-ahead-log mode over one kept connection, checked against the file before each use.

    Rasa's engine (SQLAlchemy 1.4's default for a file) opens and closes a connection for
    every session, three times a turn; closing the last connection of a WAL database
    checkpoints it, and opening runs the pragmas again: about a third of the store's time.
    The kept connection is given back only while the database file is still the one it
    opened: when the file or its directory is gone or replaced, the next use connects
    afresh and fails like an unpooled engine would (the patient gets the apology).

    WAL with `synchronous=NORMAL`: a commit is durable when the process crashes (the log is
    replayed) and can only be lost, never corrupted, when the whole machine loses power.
    PostgreSQL (the cluster) is untouched.
    """
    if not isinstance(inner, SQLTrackerStore) or inner.engine.dialect.name != "sqlite":
        return
    path = inner.engine.url.database
    if not path or path == ":memory:":
        return
    old = inner.engine
    # One connection per thread: Rasa's store is used from the event loop's thread only.
    inner.engine = sa.create_engine(old.url, poolclass=sa.pool.SingletonThreadPool)
    inner.sessionmaker = sa.orm.session.sessionmaker(bind=inner.engine)
    old.dispose()

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        record.info["file"] = file_identity(path)

    def on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("file") != file_identity(path):
            raise sa.exc.DisconnectionError("the database file is gone or was replaced")

    sa.event.listen(inner.engine, "connect", on_connect)
    sa.event.listen(inner.engine, "checkout", on_checkout)


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the database file, or None when it cannot be seen."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


# -- the replies stored for a message (omt/core/idempotency.py) -----------------------------

MAX_TURN_EVENTS = 200  # read after a user event to find its replies (a turn stores about ten)


def stored_from(store: SQLTrackerStore, sender_id: str, message_id: str, since: float) -> list[dict[str, Any]]:
    """The stored user event with `message_id` (since `since`) and the events after it, as dicts; [] if none."""
    table = store.SQLEvent
    with store.session_scope() as session:
        candidates = (
            session.query(table.id, table.data)
            .filter(
                table.sender_id == sender_id,
                table.type_name == UserUttered.type_name,
                table.timestamp >= since,
                table.data.like(idempotency.like_pattern(message_id), escape="\\"),
            )
            .order_by(table.id)
        )
        for row_id, data in candidates:
            event = json.loads(data)
            if event.get("message_id") != message_id:
                continue  # the id appeared in the text, not as the message's id
            after = (
                session.query(table.data)
                .filter(table.sender_id == sender_id, table.id > row_id)
                .order_by(table.id)
                .limit(MAX_TURN_EVENTS)
            )
            return [event, *(json.loads(d) for (d,) in after)]
    return []


# -- the kept trackers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kept:
    tracker: DialogueStateTracker
    last_id: int


class TrackerCache:
    """At most `size` conversations, the least recently saved dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[str, Kept] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, tracker: DialogueStateTracker, last_id: int | None) -> None:
        """Keep `tracker` as saved up to the stored event `last_id` (None: nothing stored, keep nothing)."""
        self._kept.pop(tracker.sender_id, None)
        if self.size < 1 or last_id is None:
            return
        self._kept[tracker.sender_id] = Kept(tracker, last_id)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def take(self, sender_id: str) -> Kept | None:
        """The kept tracker of `sender_id`, no longer kept (the caller checks `last_id` against the store)."""
        return self._kept.pop(sender_id, None)

    def forget(self, sender_id: str) -> None:
        self._kept.pop(sender_id, None)
