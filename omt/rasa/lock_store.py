"""The conversation lock store, chosen by a URL: in this process's memory, or Redis shared by replicas.

Named in endpoints.yml, so one file serves `make run` and `make cluster`:

    lock_store:
      type: omt.rasa.lock_store.UrlLockStore
      url: ${LOCK_STORE_URL}   # empty: in memory (one Rasa); redis://[:password@]host[:port][/db]: Redis

Rasa handles one conversation's messages one at a time, under a ticket lock kept in the
lock store: each message takes a numbered ticket and waits until its number is the lowest
one left. With one Rasa process an in-memory store is right; with several replicas behind a
load balancer the lock must live where all of them see it, or two replicas could answer two
messages of one conversation at once and save interleaved events. Rasa's own `type:` cannot
take a default (endpoints.yml's ${VAR} has none), so this class takes the choice from one URL,
like the tracker store's TRACKER_DB_URL; `rediss://` means Redis over TLS.

Rasa's ticket logic, kept, with three changes that matter once several replicas share it:

- Every change to a lock is atomic (Redis WATCH/MULTI, retried on conflict). Rasa's Redis
  store reads the lock, changes it and writes it back: two replicas taking a ticket at the
  same moment can both get the same number (then both run at once), and a replica removing
  its ticket can erase a ticket another replica just added (whose message then fails).
- A waiting message keeps its own ticket alive. Rasa's tickets expire a fixed time after
  they are issued (TICKET_LOCK_LIFETIME), waiting included: a message that waited longer
  than that found its own ticket gone and waited forever. Here a ticket's lifetime counts
  from its last sign of life, so only the ticket of a replica that died (or a turn that
  hangs) expires, and the next message goes on after at most TICKET_LOCK_LIFETIME.
- Waiting messages look again every 0.1 s instead of every second, so a burst of messages
  from one patient is answered in a fraction of a second each rather than one a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import Any, AsyncIterator, Callable
from urllib.parse import unquote, urlsplit

import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, InMemoryLockStore, LockError, LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)
REDIS_SCHEMES = ("redis", "rediss")
DEFAULT_KEY_PREFIX = "omt"
POLL_SECONDS = 0.1

Change = Callable[[TicketLock], Any]  # changes the lock in place; its result is passed back


def lock_store_from_url(url: str | None, key_prefix: str = DEFAULT_KEY_PREFIX, **redis_kwargs: Any) -> LockStore:
    """An `InMemoryLockStore` for an empty URL, a `RedisLockStore` for redis:// or rediss://; else ValueError."""
    url = (url or "").strip()
    if not url:
        return InMemoryLockStore()
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES or not parts.hostname:
        raise ValueError("LOCK_STORE_URL must be empty (in memory) or redis://[:password@]host[:port][/db]")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError("LOCK_STORE_URL: the Redis database must be a number, as in redis://host:6379/0")
    try:
        port = parts.port or 6379
    except ValueError as exc:  # a port that is not a number, or out of range
        raise ValueError("LOCK_STORE_URL: the port must be a number from 1 to 65535") from exc
    return RedisLockStore(
        host=parts.hostname,
        port=port,
        db=int(path or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_ssl=parts.scheme == "rediss",
        key_prefix=key_prefix,
        **redis_kwargs,
    )


def describe(store: LockStore) -> str:
    """Where the locks live, without any password: for the start-up log."""
    if isinstance(store, RedisLockStore):
        kwargs = store.red.connection_pool.connection_kwargs
        return f"Redis at {kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db')}"
    return "this process's memory"


def _keep_alive(lock: TicketLock, ticket: int, lifetime: float) -> bool:
    """Drop expired tickets but `ticket`, which gets `lifetime` more; whether `ticket` is (still) there."""
    now = time.time()
    kept = deque(t for t in lock.tickets if t.number == ticket or t.expires >= now)
    for t in kept:
        if t.number == ticket:
            t.expires = max(t.expires, now + lifetime)
    lock.tickets = kept
    return any(t.number == ticket for t in kept)


def _remove(lock: TicketLock, ticket: int) -> None:
    lock.tickets = deque(t for t in lock.tickets if t.number != ticket and not t.has_expired())


class UrlLockStore(LockStore):
    """Rasa's ticket lock over the store `lock_store_from_url` makes, with atomic changes (see the module doc).

    Rasa creates a custom lock store as `cls(endpoint_config=...)`; `url` and `key_prefix`
    come from endpoints.yml, any other key (for example `socket_timeout`) goes to Redis.
    """

    def __init__(
        self,
        endpoint_config: EndpointConfig | None = None,
        store: LockStore | None = None,
        lifetime: float = LOCK_LIFETIME,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        if store is None:
            url = endpoint_config.url if endpoint_config is not None else None
            kwargs = dict(endpoint_config.kwargs) if endpoint_config is not None else {}
            key_prefix = str(kwargs.pop("key_prefix", None) or DEFAULT_KEY_PREFIX)
            store = lock_store_from_url(url, key_prefix=key_prefix, **kwargs)
        if not isinstance(store, (RedisLockStore, InMemoryLockStore)):
            raise ValueError(f"UrlLockStore keeps locks in Redis or in memory, not in {type(store).__name__}")
        self.store = store
        self.lifetime = lifetime
        self.poll_seconds = poll_seconds
        logger.info("Conversation locks: %s (tickets live %ss)", describe(store), lifetime)
        super().__init__()

    # -- storage: Rasa's, plus one atomic read-change-write ---------------------------------

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        return self.store.get_lock(conversation_id)

    def delete_lock(self, conversation_id: str) -> None:
        self.store.delete_lock(conversation_id)

    def save_lock(self, lock: TicketLock) -> None:
        self.store.save_lock(lock)

    def change(self, conversation_id: str, change: Change) -> Any:
        """Apply `change` to the conversation's lock (a new one if none) atomically; its result.

        The lock is saved afterwards, or deleted when no ticket is left. Redis: WATCH the key,
        read, change, MULTI/EXEC; another replica's write in between makes EXEC fail, and the
        whole change is done again on the new value. In memory there is nothing in between:
        this runs without yielding to the event loop.
        """
        if isinstance(self.store, InMemoryLockStore):
            lock = self.store.get_lock(conversation_id) or TicketLock(conversation_id)
            result = change(lock)
            if lock.tickets:
                self.store.save_lock(lock)
            else:
                self.store.delete_lock(conversation_id)
            return result
        assert isinstance(self.store, RedisLockStore)
        key = self.store.key_prefix + conversation_id
        with self.store.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    lock = TicketLock.from_dict(json.loads(raw)) if raw else TicketLock(conversation_id)
                    result = change(lock)
                    pipe.multi()
                    if lock.tickets:
                        pipe.set(key, lock.dumps())
                    else:
                        pipe.delete(key)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue

    # -- Rasa's ticket lock, on `change` -----------------------------------------------------

    def issue_ticket(self, conversation_id: str, lock_lifetime: float | None = None) -> int:
        lifetime = self.lifetime if lock_lifetime is None else lock_lifetime
        try:
            return int(self.change(conversation_id, lambda lock: lock.issue_ticket(lifetime)))
        except Exception as exc:
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc

    @contextlib.asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float | None = None,
        wait_time_in_seconds: float | None = None,
    ) -> AsyncIterator[TicketLock]:
        """Rasa's `lock`: take a ticket, wait for its turn, always give it back."""
        lifetime = self.lifetime if lock_lifetime is None else lock_lifetime
        ticket = self.issue_ticket(conversation_id, lifetime)
        try:
            yield await self._wait_for_turn(conversation_id, ticket, lifetime, wait_time_in_seconds)
        finally:
            self.cleanup(conversation_id, ticket)

    async def _wait_for_turn(
        self, conversation_id: str, ticket: int, lifetime: float, poll: float | None
    ) -> TicketLock:
        # Rasa's callers pass 1 s; a tenth of that answers a burst ten times faster.
        poll = self.poll_seconds if poll is None else min(poll, self.poll_seconds)
        while True:
            lock = self.change(conversation_id, lambda lock: lock if _keep_alive(lock, ticket, lifetime) else None)
            if lock is None:  # our ticket is gone: this process stalled for longer than its lifetime
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            if not lock.is_locked(ticket):
                return lock
            await asyncio.sleep(poll)

    def update_lock(self, conversation_id: str) -> None:
        self.change(conversation_id, lambda lock: lock.remove_expired_tickets())

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self.change(conversation_id, lambda lock: _remove(lock, ticket_number))

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Give the ticket back; the lock goes with its last ticket (in the same atomic change)."""
        self.finish_serving(conversation_id, ticket_number)
