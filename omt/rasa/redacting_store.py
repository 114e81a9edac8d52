"""A tracker store wrapper: redacts patients' identifiers before saving, follows the store's health, erases.

Named in endpoints.yml; the keys besides `type` and `wraps` are the wrapped store's own
(Rasa passes them on as keyword arguments):

    tracker_store:
      type: omt.rasa.redacting_store.RedactingTrackerStore
      wraps: SQL            # our SQL store (omt/rasa/sql_store.py: Rasa's, SQLite or PostgreSQL), or in_memory
      window_turns: 2       # SQL only: read a conversation as its last 2 patient messages
      keep_conversations: 500  # SQL only: trackers kept in memory for their next message
      url: ${TRACKER_DB_URL}  # a whole database URL, or empty: then the keys below
      dialect: sqlite
      db: ${TRACKER_DB}

Why a wrapper and not a store of our own: Rasa's SQL store (schema, sessions, PostgreSQL
pools) stays Rasa's. The wrapper hands it a copy of the tracker whose user events, and
slots filled from them, went through `omt.core.redaction`; the live tracker of the turn keeps
the raw text, so the emergency screener, the NLU and the actions read what was written.
The event broker, if any, is the wrapped store's and so sees only the redacted copy.

When the wrapped store cannot be reached (SQLite file or directory gone or unwritable,
PostgreSQL stopped), reads and writes stop the running turn (`omt.rasa.faults.abort_turn`: the
patient gets the apology, nothing is answered from an empty conversation) and the log
says so in one line, without SQL or values (they carry patient text): when the store
goes away, at most once a minute while it stays away, and when it is back. Outside a
turn (Rasa's own callers) they raise `TrackerStoreUnavailableError` with the same
clean message. Every call tries the store again (a kept tracker is used only after the
store has confirmed it holds nothing newer), so it recovers by itself.

Reads and saves through our SQL store (omt/rasa/sql_store.py `WindowedSQLTrackerStore`)
are cheap and bounded: a long conversation comes back as its recent turns, a tracker this
process saved last comes back without a read, and a save appends only the turn's events,
redacted here. The HTTP API's whole-conversation read (`retrieve_full_tracker`) is Rasa's.

Rasa's TrackerStore has no delete. `delete(sender_id)` is ours, for the patient's
"forget me" (omt/channels/forget.py `forget_conversation`, used by every channel);
`find_redacting_store` finds the wrapper inside the agent's own wrappers.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from typing import Any, Callable, Iterable, Iterator, NoReturn, Sequence

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import (
    AwaitableTrackerStore,
    InMemoryTrackerStore,
    SQLTrackerStore,
    TrackerStore,
    create_tracker_store,
)
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from omt.core import idempotency
from omt.core.redaction import Rule, get_rules, redact_user_event, redact_value
from omt.rasa import sql_store
from omt.rasa.faults import TRACKER_STORE, abort_turn
from omt.rasa.patches import wrapped_store

logger = logging.getLogger(__name__)
IN_MEMORY = ("in_memory", "memory", "inmemory")
# Errors that mean "the store cannot be reached or written", not a bug in our code.
STORE_ERRORS = (SQLAlchemyError, OSError)
REPEAT_LOG_SECONDS = 60.0
WINDOWED_SQL = f"{sql_store.WindowedSQLTrackerStore.__module__}.{sql_store.WindowedSQLTrackerStore.__name__}"


class TrackerStoreUnavailableError(RuntimeError):
    """The wrapped store failed; the message names the error without SQL or values."""


class ForgetUnavailableError(RuntimeError):
    """The running tracker store cannot erase a conversation (it is not our wrapper)."""


def redacted_event(event: Event, rules: Sequence[Rule] | None = None) -> Event:
    """The event as it may be stored: the patient's words redacted; the same object if nothing changed.

    User events carry the text (and copies of it in parse_data and entities); slot events
    may carry an entity's value. Bot, action and session events hold only our own words.
    """
    if isinstance(event, UserUttered):
        data = event.as_dict()
        redacted = redact_user_event(data, rules)
        if redacted == data:
            return event
        rebuilt = Event.from_parameters(redacted)  # the same round trip as the SQL store's
        return rebuilt if rebuilt is not None else event
    if isinstance(event, SlotSet):
        value = redact_value(event.value, rules)
        return event if value == event.value else SlotSet(event.key, value, event.timestamp, event.metadata)
    return event


def redacted_tracker(tracker: DialogueStateTracker, rules: Sequence[Rule] | None = None) -> DialogueStateTracker:
    """A copy of `tracker` built from redacted events; `tracker` itself is not changed.

    When no event needs redacting, `tracker` itself: stores only read what they save.

    Same sender, slots' initial values and event count as the original, so a store that
    saves "the events it does not have yet" (Rasa's SQL store counts them) saves the
    same ones.
    """
    events = [redacted_event(event, rules) for event in tracker.events]
    if all(new is old for new, old in zip(events, tracker.events, strict=True)):
        return tracker  # nothing to redact (the usual turn): no copy to replay
    copy = tracker.init_copy()
    for event in events:
        copy.update(event)
    return copy


def store_error_reason(exc: BaseException) -> str:
    """What went wrong, fit for the log: the error type, and the driver's message for connection errors.

    Never `str(exc)` of a SQLAlchemy error: it quotes the statement and its parameters,
    which hold the patient's (redacted) text.
    """
    reason = type(exc).__name__
    detail = ""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        orig = exc.orig if isinstance(exc, DBAPIError) else None
        detail = str(orig if orig is not None else "").strip()
    elif isinstance(exc, OSError):
        detail = exc.strerror or ""
    first_line = detail.splitlines()[0][:200] if detail else ""
    return f"{reason}: {first_line}" if first_line else reason


class StoreHealth:
    """Logs an unreachable store in a few lines: when it fails, once a minute while down, when back.

    Reads and writes are followed apart: with a read-only store every read succeeds while
    every write fails, and that store is not back until a write succeeds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.down_since: float | None = None
        self.failing: set[str] = set()  # "read", "write"
        self.failures = 0
        self.last_report = 0.0

    def failed(self, operation: str, reason: str) -> None:
        now = self.clock()
        self.failures += 1
        self.failing.add(operation)
        if self.down_since is None:
            self.down_since = self.last_report = now
            logger.error("Tracker store unavailable (%s): patients get the apology until it is back", reason)
        elif now - self.last_report >= REPEAT_LOG_SECONDS:
            self.last_report = now
            logger.error(
                "Tracker store still unavailable after %.0f s, %d failed calls (%s)",
                now - self.down_since,
                self.failures,
                reason,
            )

    def ok(self, operation: str) -> None:
        self.failing.discard(operation)
        if self.down_since is not None and not self.failing:
            logger.warning(
                "Tracker store is back after %.0f s (%d failed calls)", self.clock() - self.down_since, self.failures
            )
            self.down_since, self.failures = None, 0


def _innermost(store: TrackerStore) -> TrackerStore:
    """The store under Rasa's `AwaitableTrackerStore`, which wraps synchronous custom stores."""
    while isinstance(store, AwaitableTrackerStore):
        store = wrapped_store(store)
    return store


def _create_wrapped(
    wraps: str, host: str | None, domain: Domain | None, event_broker: EventBroker | None, kwargs: dict[str, Any]
) -> TrackerStore:
    """The wrapped store, made by Rasa's own factory from the rest of the endpoint config."""
    if wraps.endswith("RedactingTrackerStore"):
        raise ValueError("RedactingTrackerStore cannot wrap itself: set `wraps` to SQL or in_memory")
    # SQL: Rasa's SQL store, read through a window and saved by appending (omt/rasa/sql_store.py).
    store_type = None if wraps.lower() in IN_MEMORY else WINDOWED_SQL if wraps.lower() == "sql" else wraps
    # An empty `url: ${TRACKER_DB_URL}` means "no URL": the dialect/db keys say where the data is.
    return create_tracker_store(EndpointConfig(url=host or None, type=store_type, **kwargs), domain, event_broker)


class RedactingTrackerStore(TrackerStore):
    """Saves through the wrapped store with identifiers redacted; reads the recent turns or the kept tracker."""

    def __init__(
        self,
        domain: Domain | None = None,
        host: str | None = None,
        event_broker: EventBroker | None = None,
        wraps: str | TrackerStore = "SQL",
        rules: Sequence[Rule] | None = None,
        window_turns: int = 0,
        keep_conversations: int = 0,
        **kwargs: Any,
    ) -> None:
        """Wrap `wraps`: a store, or a Rasa store type made from `host` and `kwargs` (endpoints.yml).

        `window_turns` and `keep_conversations` go to our SQL store when `wraps` is SQL
        (omt/rasa/sql_store.py `WindowedSQLTrackerStore`); other stores ignore them.
        Refuses to start over a store it cannot erase from: "forget me" must work, or
        nothing should be stored.
        """
        if not isinstance(wraps, TrackerStore) and wraps.lower() == "sql":  # our SQL store's own settings
            kwargs = {**kwargs, "window_turns": window_turns, "keep_conversations": keep_conversations}
        store = wraps if isinstance(wraps, TrackerStore) else _create_wrapped(wraps, host, domain, event_broker, kwargs)
        if not isinstance(_innermost(store), (SQLTrackerStore, InMemoryTrackerStore)):
            raise ValueError(f"RedactingTrackerStore cannot erase from {type(store).__name__}: wrap SQL or in_memory")
        self._store = store
        self.rules = tuple(get_rules() if rules is None else rules)
        self.health = StoreHealth()
        super().__init__(store.domain, store.event_broker)

    @property
    def domain(self) -> Domain:
        """The wrapped store's domain (Rasa sets it after loading the model)."""
        return self._store.domain

    @domain.setter
    def domain(self, domain: Domain | None) -> None:
        self._store.domain = domain or Domain.empty()

    @property
    def wrapped(self) -> TrackerStore:
        """The store that holds the data."""
        return self._store

    @contextlib.contextmanager
    def _calling(self, operation: str) -> Iterator[None]:
        """One call to the wrapped store ("read" or "write"): a failure to `_unavailable`, a success to the health."""
        try:
            yield
        except STORE_ERRORS as exc:
            self._unavailable(operation, exc)
        self.health.ok(operation)

    def _unavailable(self, operation: str, exc: BaseException) -> NoReturn:
        """Log the failure cleanly, stop the running turn, else raise a clean error (no SQL, no values)."""
        reason = store_error_reason(exc)
        self.health.failed(operation, reason)
        abort_turn(TRACKER_STORE)
        raise TrackerStoreUnavailableError(reason) from None

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Save a redacted copy; the caller's tracker keeps the raw text.

        A tracker read from our SQL store (see `retrieve`) hands it only the events added
        since, redacted (`WindowedSQLTrackerStore.save_new`): a save costs the same at
        turn 100 as at turn 1.
        """
        sql = self._sql()
        loaded = sql_store.loaded_events(tracker)
        if loaded is None and not tracker.events and sql is not None:
            # Rasa's new tracker (`create_tracker`, after a read found nothing): nothing to
            # write; from here on its events are appended like a read tracker's.
            sql_store.mark_saved(tracker)
            return
        with self._calling("write"):
            if loaded is None or sql is None:
                await self._store.save(redacted_tracker(tracker, self.rules))
            else:
                await sql.save_new(tracker, functools.partial(redacted_event, rules=self.rules))

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The latest session; from our SQL store the tracker kept from the last save, or the recent turns."""
        sql = self._sql()
        with self._calling("read"):
            tracker = await (sql.retrieve_recent(sender_id) if sql is not None else self._store.retrieve(sender_id))
        return tracker

    def _sql(self) -> sql_store.WindowedSQLTrackerStore | None:
        """The wrapped store, if it is ours: it reads through the window and appends a turn's events."""
        inner = _innermost(self._store)
        return inner if isinstance(inner, sql_store.WindowedSQLTrackerStore) else None

    async def replies_to(self, sender_id: str, message_id: str, since: float) -> list[dict[str, Any]] | None:
        """The messages sent for the user message `message_id` stored since `since`, or None (omt/core/idempotency.py).

        SQL: the user event is found by an indexed query on the conversation (its id in
        the event's JSON), then the events stored after it; in memory: the whole tracker.
        """
        inner = _innermost(self._store)
        with self._calling("read"):
            if isinstance(inner, SQLTrackerStore):
                stored = sql_store.stored_from(inner, sender_id, message_id, since)
            else:
                tracker = await self._store.retrieve_full_tracker(sender_id)
                stored = [event.as_dict() for event in tracker.events] if tracker is not None else []
        found = idempotency.replies_to(stored, message_id, since)
        if found is None:
            return None
        events = (Event.from_parameters(dict(data)) for data in found)
        return [event.message() for event in events if isinstance(event, BotUttered)]

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        with self._calling("read"):
            tracker = await self._store.retrieve_full_tracker(conversation_id)
        return tracker

    async def exists(self, conversation_id: str) -> bool:
        return await self._store.exists(conversation_id)

    async def keys(self) -> Iterable[str]:
        return await self._store.keys()

    async def delete(self, sender_id: str) -> int:
        """Erase every stored event of `sender_id` (all sessions); the number of events erased."""
        store = _innermost(self._store)
        if isinstance(store, sql_store.WindowedSQLTrackerStore):
            store.kept.forget(sender_id)
        if isinstance(store, SQLTrackerStore):
            with self._calling("write"), store.session_scope() as session:
                query = session.query(store.SQLEvent).filter(store.SQLEvent.sender_id == sender_id)
                deleted = int(query.delete(synchronize_session=False))
                session.commit()
            return deleted
        if isinstance(store, InMemoryTrackerStore):
            serialised = store.store.pop(sender_id, None)
            return len(json.loads(serialised).get("events") or []) if serialised else 0
        raise ForgetUnavailableError(f"cannot erase from {type(store).__name__}")  # refused in __init__ already


def find_redacting_store(store: Any) -> RedactingTrackerStore | None:
    """Our wrapper inside Rasa's (the agent's `FailSafeTrackerStore`, `AwaitableTrackerStore`)."""
    while store is not None and not isinstance(store, RedactingTrackerStore):
        store = wrapped_store(store)
    return store
