"""The conversation lock store (omt/rasa/lock_store.py): chosen by LOCK_STORE_URL, atomic, alive while waiting.

Run in memory and against a real Redis (Debian's redis-server on a free loopback port,
scripts/install_system_deps.sh installs it): the same behaviour from both.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from typing import Callable, Iterator

import pytest
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore

from omt.core.knowledge import REPO_ROOT
from omt.ops.processes import free_port, spawn, stop, wait_for_port
from omt.rasa.lock_store import UrlLockStore, lock_store_from_url


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin")
    if binary is None:
        pytest.fail("redis-server missing: run scripts/install_system_deps.sh")
    port, home = free_port(), tmp_path_factory.mktemp("redis")
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(home)]
    proc = spawn(args, None)
    try:
        wait_for_port(port, 20, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}/3"
    finally:
        stop([proc], grace=10)


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Callable[..., UrlLockStore]:
    """A factory of stores; two from it share their locks (two replicas on one Redis)."""
    url = "" if request.param == "memory" else request.getfixturevalue("redis_url")
    shared = InMemoryLockStore()

    def make(lifetime: float = 60) -> UrlLockStore:
        return UrlLockStore(store=shared if not url else lock_store_from_url(url), lifetime=lifetime)

    return make


# --- choosing the store -------------------------------------------------------------------


def test_the_url_chooses_the_store() -> None:
    assert isinstance(lock_store_from_url(""), InMemoryLockStore)
    assert isinstance(lock_store_from_url(None), InMemoryLockStore)
    store = lock_store_from_url("redis://:s%40cret@127.0.0.1:6390/2", key_prefix="omt")
    assert isinstance(store, RedisLockStore)
    kwargs = store.red.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("127.0.0.1", 6390, 2, "s@cret")
    assert store.key_prefix == "omt:lock:"
    assert isinstance(lock_store_from_url("rediss://cache.example:6380"), RedisLockStore)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379", "redis://", "redis://host:port", "redis://host:99999", "redis://host/db", "x"]
)
def test_bad_urls_are_refused_with_a_clear_message(url: str) -> None:
    with pytest.raises(ValueError, match="LOCK_STORE_URL"):
        lock_store_from_url(url)


def test_endpoints_yml_takes_the_lock_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa.core.utils import read_endpoints_from_path

    for name, value in {
        "TRACKER_DB": "x.db",
        "TRACKER_DB_URL": "",
        "ACTION_ENDPOINT_URL": "http://127.0.0.1:1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOCK_STORE_URL", "")
    local = LockStore.create(read_endpoints_from_path(REPO_ROOT / "endpoints.yml").lock_store)
    assert isinstance(local, UrlLockStore) and isinstance(local.store, InMemoryLockStore)
    monkeypatch.setenv("LOCK_STORE_URL", "redis://:pw@127.0.0.1:6390/0")  # no connection until used
    shared = LockStore.create(read_endpoints_from_path(REPO_ROOT / "endpoints.yml").lock_store)
    assert isinstance(shared, UrlLockStore) and isinstance(shared.store, RedisLockStore)
    assert shared.store.key_prefix == "omt:lock:"


# --- behaviour, in memory and on Redis -------------------------------------------------------


async def _hold(store: UrlLockStore, sender: str, name: str, seconds: float, log: list[tuple[str, str]]) -> None:
    async with store.lock(sender):
        log.append(("in", name))
        await asyncio.sleep(seconds)
        log.append(("out", name))


def test_one_message_at_a_time_in_arrival_order_across_replicas(make_store: Callable[..., UrlLockStore]) -> None:
    replicas = [make_store(), make_store()]
    log: list[tuple[str, str]] = []

    async def burst() -> None:
        tasks = []
        for i in range(8):
            tasks.append(asyncio.create_task(_hold(replicas[i % 2], "s1", str(i), 0.02, log)))
            await asyncio.sleep(0.005)  # each takes its ticket before the next arrives
        await asyncio.gather(*tasks)

    asyncio.run(burst())
    assert log == [(kind, str(i)) for i in range(8) for kind in ("in", "out")], "never two at once; in order"
    assert replicas[0].get_lock("s1") is None, "the lock goes with its last ticket"


def test_tickets_are_unique_when_replicas_take_them_at_the_same_moment(make_store: Callable[..., UrlLockStore]) -> None:
    replicas = [make_store(), make_store()]
    numbers: list[int] = []
    start = threading.Barrier(4)

    def take(store: UrlLockStore) -> None:
        start.wait()
        numbers.extend(store.issue_ticket("s2") for _ in range(40))

    threads = [threading.Thread(target=take, args=(replicas[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(160)), "no number handed out twice, none lost"


def test_a_dead_replicas_ticket_holds_the_conversation_only_for_its_lifetime(
    make_store: Callable[..., UrlLockStore],
) -> None:
    """Not before the dead ticket expired (read from the lock, not from how long the wait took), and at all.

    No upper bound on the wait is asserted: a loaded machine can delay any wake-up. The
    ticket's expiry is the mechanism, and that the next message gets in after it without
    the dead ticket ever being given back is what shows the conversation is free again.
    """
    dead, alive = make_store(lifetime=0.6), make_store(lifetime=0.6)
    dead.issue_ticket("s3")  # taken, never given back: its replica was killed mid-turn
    lock = alive.get_lock("s3")
    assert lock is not None
    expires = max(ticket.expires for ticket in lock.tickets)
    log: list[tuple[str, str]] = []
    entered: list[float] = []

    async def next_message() -> None:
        async with alive.lock("s3"):
            entered.append(time.time())  # the clock the tickets' expiry is on
            log.append(("in", "next"))
        log.append(("out", "next"))

    asyncio.run(asyncio.wait_for(next_message(), timeout=60))
    assert log == [("in", "next"), ("out", "next")]
    assert entered[0] >= expires, "the dead replica's ticket held the conversation until it expired"


def test_a_message_waiting_longer_than_the_lifetime_keeps_its_place(make_store: Callable[..., UrlLockStore]) -> None:
    """Rasa's tickets expired while waiting; the third message here waits 1.2x the lifetime.

    Each turn holds the lock for 0.6x the lifetime, so a stall of up to 0.4x the lifetime
    (1.2 s) while one holds it cannot let the next one in early.
    """
    store = make_store(lifetime=3.0)
    log: list[tuple[str, str]] = []

    async def queue() -> None:
        first = asyncio.create_task(_hold(store, "s4", "a", 1.8, log))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(_hold(store, "s4", "b", 1.8, log))
        await asyncio.sleep(0.01)
        third = asyncio.create_task(_hold(store, "s4", "c", 0, log))
        await asyncio.wait_for(asyncio.gather(first, second, third), timeout=60)

    asyncio.run(queue())
    assert log == [(kind, n) for n in "abc" for kind in ("in", "out")]


def test_the_lock_is_released_when_the_turn_fails(make_store: Callable[..., UrlLockStore]) -> None:
    store = make_store()

    async def failing() -> None:
        async with store.lock("s5"):
            raise RuntimeError("the turn failed")

    with pytest.raises(RuntimeError):
        asyncio.run(failing())
    assert store.get_lock("s5") is None
    log: list[tuple[str, str]] = []
    asyncio.run(asyncio.wait_for(_hold(store, "s5", "after", 0, log), timeout=5))
    assert log == [("in", "after"), ("out", "after")]


def test_a_redis_outage_is_a_lock_error_not_a_hang() -> None:
    from rasa.core.lock_store import LockError

    store = UrlLockStore(store=lock_store_from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1))
    with pytest.raises(LockError):
        store.issue_ticket("s6")  # nothing listens there
