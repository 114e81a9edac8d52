"""A tracker store wrapper: redacts patients' identifiers before saving, and can erase a conversation.

Named in endpoints.yml; the keys besides `type` and `wraps` are the wrapped store's own
(Rasa passes them on as keyword arguments):

    tracker_store:
      type: omt.redacting_store.RedactingTrackerStore
      wraps: SQL            # Rasa's SQLTrackerStore (SQLite or PostgreSQL), or in_memory
      dialect: sqlite
      db: ${TRACKER_DB}

Why a wrapper and not a store of our own: Rasa's SQL store (schema, sessions, PostgreSQL
pools) stays Rasa's. The wrapper hands it a copy of the tracker whose user events, and
slots filled from them, went through `omt.redaction`; the live tracker of the turn keeps
the raw text, so the emergency screener, the NLU and the actions read what was written.
The event broker, if any, is the wrapped store's and so sees only the redacted copy.

Rasa's TrackerStore has no delete. `delete(sender_id)` is ours, for the patient's
"forget me" (omt/channels/*); `forget_conversation` finds the wrapper inside the
agent's own wrappers and erases under the conversation's lock, so a turn still running
cannot write the conversation back afterwards.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import (
    AwaitableTrackerStore,
    InMemoryTrackerStore,
    SQLTrackerStore,
    TrackerStore,
    create_tracker_store,
)
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from omt.provenance import conversation_hash
from omt.redaction import Rule, get_rules, redact_user_event, redact_value

if TYPE_CHECKING:
    from rasa.core.agent import Agent

logger = logging.getLogger(__name__)
IN_MEMORY = ("in_memory", "memory", "inmemory")


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

    Same sender, slots' initial values and event count as the original, so a store that
    saves "the events it does not have yet" (Rasa's SQL store counts them) saves the
    same ones.
    """
    copy = tracker.init_copy()
    for event in tracker.events:
        copy.update(redacted_event(event, rules))
    return copy


def _innermost(store: TrackerStore) -> TrackerStore:
    """The store under Rasa's `AwaitableTrackerStore`, which wraps synchronous custom stores."""
    while isinstance(store, AwaitableTrackerStore):
        store = store._tracker_store
    return store


def _create_wrapped(
    wraps: str, host: str | None, domain: Domain | None, event_broker: EventBroker | None, kwargs: dict[str, Any]
) -> TrackerStore:
    """The wrapped store, made by Rasa's own factory from the rest of the endpoint config."""
    if wraps.endswith("RedactingTrackerStore"):
        raise ValueError("RedactingTrackerStore cannot wrap itself: set `wraps` to SQL or in_memory")
    store_type = None if wraps.lower() in IN_MEMORY else wraps
    return create_tracker_store(EndpointConfig(url=host, type=store_type, **kwargs), domain, event_broker)


class RedactingTrackerStore(TrackerStore):
    """Saves through the wrapped store with identifiers redacted; reads are the wrapped store's."""

    def __init__(
        self,
        domain: Domain | None = None,
        host: str | None = None,
        event_broker: EventBroker | None = None,
        wraps: str | TrackerStore = "SQL",
        rules: Sequence[Rule] | None = None,
        **kwargs: Any,
    ) -> None:
        """Wrap `wraps`: a store, or a Rasa store type made from `host` and `kwargs` (endpoints.yml).

        Refuses to start over a store it cannot erase from: "forget me" must work, or
        nothing should be stored.
        """
        store = wraps if isinstance(wraps, TrackerStore) else _create_wrapped(wraps, host, domain, event_broker, kwargs)
        if not isinstance(_innermost(store), (SQLTrackerStore, InMemoryTrackerStore)):
            raise ValueError(f"RedactingTrackerStore cannot erase from {type(store).__name__}: wrap SQL or in_memory")
        self._store = store
        self.rules = tuple(get_rules() if rules is None else rules)
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

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Save a redacted copy; the caller's tracker keeps the raw text."""
        await self._store.save(redacted_tracker(tracker, self.rules))

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        return await self._store.retrieve(sender_id)

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        return await self._store.retrieve_full_tracker(conversation_id)

    async def exists(self, conversation_id: str) -> bool:
        return await self._store.exists(conversation_id)

    async def keys(self) -> Iterable[str]:
        return await self._store.keys()

    async def delete(self, sender_id: str) -> int:
        """Erase every stored event of `sender_id` (all sessions); the number of events erased."""
        store = _innermost(self._store)
        if isinstance(store, SQLTrackerStore):
            with store.session_scope() as session:
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
        store = getattr(store, "_tracker_store", None)  # both of Rasa's wrappers keep it there
    return store


async def forget_conversation(agent: Agent | None, sender_id: str) -> int:
    """Erase `sender_id`'s stored conversation for good; the number of events erased.

    Waits for the conversation's lock (Rasa's, as for a message), so a turn in progress
    finishes first and cannot save it back. Raises `ForgetUnavailableError` when the running
    tracker store is not the redacting wrapper (endpoints.yml).
    """
    store = find_redacting_store(getattr(agent, "tracker_store", None))
    if store is None:
        raise ForgetUnavailableError("the tracker store is not omt.redacting_store.RedactingTrackerStore")
    lock_store = getattr(agent, "lock_store", None)
    if lock_store is None:
        deleted = await store.delete(sender_id)
    else:
        async with lock_store.lock(sender_id):
            deleted = await store.delete(sender_id)
    logger.info("Erased conversation %s on request (%d events)", conversation_hash(sender_id), deleted)
    return deleted
