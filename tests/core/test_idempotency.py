"""A retried message is handled once (omt/core/idempotency.py, omt/channels/once.py).

Unit tests run the real lock store and the real tracker-store wrapper (SQLite and in
memory) under a stand-in for Rasa's processor that stores one user and one bot event per
turn; the `stack` tests send the same message twice on REST, socket.io and SMS to a
running stack and count what was stored.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, UserUttered

from omt.bench.evaluate import contract_faults
from omt.channels.once import answer
from omt.channels.rest import payload_problem
from omt.core.idempotency import KEEP_SECONDS, like_pattern, replies_to, valid_message_id
from omt.core.knowledge import Knowledge
from omt.ops.stack import Stack
from omt.rasa.lock_store import UrlLockStore
from omt.rasa.redacting_store import RedactingTrackerStore
from tests.channels.test_channel_sms import form, messages_of, post, signed

# --- the pure part --------------------------------------------------------------------------------


def user(message_id: str, timestamp: float = 1000.0) -> dict[str, Any]:
    return {"event": "user", "text": "hi", "message_id": message_id, "timestamp": timestamp}


def bot(text: str) -> dict[str, Any]:
    return {"event": "bot", "text": text, "data": {}}


def test_the_replies_are_the_bot_events_between_the_message_and_the_next() -> None:
    events = [user("a"), bot("one"), {"event": "action"}, bot("two"), user("b"), bot("three")]
    assert replies_to(events, "a", since=0) == [bot("one"), bot("two")]
    assert replies_to(events, "b", since=0) == [bot("three")]
    assert replies_to(events, "c", since=0) is None
    assert replies_to([user("a")], "a", since=0) == [], "stored without a reply (the apology was sent)"


def test_an_id_older_than_the_cutoff_is_a_new_message() -> None:
    assert replies_to([user("a", 1000.0), bot("x")], "a", since=1000.0) == [bot("x")]
    assert replies_to([user("a", 1000.0), bot("x")], "a", since=1000.1) is None


@pytest.mark.parametrize("value", ["SM" + "0" * 32, uuid.uuid4().hex, str(uuid.uuid4()), "a", "A_b-9" * 12])
def test_message_ids_clients_use_are_valid(value: str) -> None:
    assert valid_message_id(value) == value


@pytest.mark.parametrize("value", ["", "a" * 65, "has space", 'q"uote', "50%", "é", 7, None, ["a"]])
def test_other_message_ids_are_not(value: Any) -> None:
    assert valid_message_id(value) is None


def test_the_like_pattern_escapes_sql_wildcards() -> None:
    assert like_pattern("a_b") == '%"a\\_b"%'


def test_rest_refuses_a_bad_message_id_and_takes_none() -> None:
    assert payload_problem({"sender": "s", "message": "m", "message_id": "no spaces"}).status == 400  # type: ignore[union-attr]
    assert payload_problem({"sender": "s", "message": "m", "message_id": None}) is None
    assert payload_problem({"sender": "s", "message": "m", "message_id": "abc-123"}) is None


# --- handle once: the real lock store and tracker store, a stand-in processor -----------------------


class Processor:
    """Stands in for Rasa's: reads the tracker, stores the user event, waits `delay`, answers, saves."""

    def __init__(self, store: RedactingTrackerStore, delay: float = 0.0) -> None:
        self.store, self.delay, self.turns = store, delay, 0

    async def handle_message(self, message: UserMessage) -> None:
        self.turns += 1
        turn = self.turns
        tracker = await self.store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text, message_id=message.message_id))
        await asyncio.sleep(self.delay)
        reply = BotUttered(f"answer {turn}", {"custom": {"answer_id": "greet", "kind": "service"}})
        tracker.update(reply)
        await message.output_channel.send_response(message.sender_id, reply.message())
        await self.store.save(tracker)


class Agent:
    """The parts of Rasa's agent that omt.channels.once uses."""

    def __init__(self, store: RedactingTrackerStore, delay: float = 0.0) -> None:
        self.tracker_store = store
        self.lock_store = UrlLockStore(store=None)
        self.processor = Processor(store, delay)

    def is_ready(self) -> bool:
        return True

    async def handle_message(self, message: UserMessage) -> None:  # Rasa's on_new_message, for no id
        async with self.lock_store.lock(message.sender_id):
            await self.processor.handle_message(message)


@pytest.fixture(params=["sqlite", "in_memory"])
def agent(request: pytest.FixtureRequest, tmp_path: Path) -> Agent:
    domain = Domain.empty()
    if request.param == "sqlite":
        store = RedactingTrackerStore(domain, wraps="SQL", dialect="sqlite", db=str(tmp_path / "t.db"))
    else:
        store = RedactingTrackerStore(domain, wraps=InMemoryTrackerStore(domain))
    return Agent(store)


async def send(agent: Agent, text: str, message_id: str | None, clock: Any = time.time) -> list[dict[str, Any]]:
    """One delivery; the messages the channel got."""
    collector = CollectingOutputChannel()
    message = UserMessage(text, collector, "patient", input_channel="rest")
    await answer(agent.handle_message, message, message_id, agent, clock)
    return collector.messages


async def user_events(agent: Agent) -> list[UserUttered]:
    tracker = await agent.tracker_store.retrieve_full_tracker("patient")
    return [e for e in tracker.events if isinstance(e, UserUttered)] if tracker else []


def test_a_retry_with_the_same_id_gets_the_first_replies_and_is_stored_once(agent: Agent) -> None:
    async def run() -> None:
        first = await send(agent, "hello", "m-1")
        again = await send(agent, "hello", "m-1")
        assert first == again and first[0]["text"] == "answer 1"
        assert agent.processor.turns == 1
        assert [e.message_id for e in await user_events(agent)] == ["m-1"]

    asyncio.run(run())


def test_a_retry_while_the_first_still_runs_waits_for_it(agent: Agent) -> None:
    agent.processor.delay = 0.5

    async def run() -> None:
        first, retry = await asyncio.gather(send(agent, "hello", "m-1"), send(agent, "hello", "m-1"))
        assert first == retry and first[0]["text"] == "answer 1"
        assert agent.processor.turns == 1 and len(await user_events(agent)) == 1

    asyncio.run(run())


def test_different_ids_are_different_messages(agent: Agent) -> None:
    async def run() -> None:
        one, two = await send(agent, "hello", "m-1"), await send(agent, "hello", "m-2")
        assert [one[0]["text"], two[0]["text"]] == ["answer 1", "answer 2"]
        assert [e.message_id for e in await user_events(agent)] == ["m-1", "m-2"]

    asyncio.run(run())


def test_without_an_id_every_delivery_is_a_new_message(agent: Agent) -> None:
    async def run() -> None:
        one, two = await send(agent, "hello", None), await send(agent, "hello", None)
        assert [one[0]["text"], two[0]["text"]] == ["answer 1", "answer 2"]
        assert len(await user_events(agent)) == 2

    asyncio.run(run())


def test_an_id_is_kept_for_24_hours(agent: Agent) -> None:
    async def run() -> None:
        await send(agent, "hello", "m-1")
        almost = await send(agent, "hello", "m-1", clock=lambda: time.time() + KEEP_SECONDS - 60)
        assert almost[0]["text"] == "answer 1" and agent.processor.turns == 1
        later = await send(agent, "hello", "m-1", clock=lambda: time.time() + KEEP_SECONDS + 60)
        assert later[0]["text"] == "answer 2", "a day later the same id is a new message"
        assert len(await user_events(agent)) == 2

    asyncio.run(run())


def test_forgetting_the_conversation_forgets_its_ids(agent: Agent) -> None:
    async def run() -> None:
        await send(agent, "hello", "m-1")
        assert await agent.tracker_store.delete("patient") > 0
        assert (await send(agent, "hello", "m-1"))[0]["text"] == "answer 2"

    asyncio.run(run())


def test_an_id_inside_the_text_is_not_the_message_id(agent: Agent) -> None:
    async def run() -> None:
        await send(agent, 'my code is "m-2"', "m-1")
        assert (await send(agent, "hello", "m-2"))[0]["text"] == "answer 2"

    asyncio.run(run())


# --- the same message twice to a running stack, on every channel ------------------------------------


def stored_user_events(stack: Stack, sender: str) -> list[dict[str, Any]]:
    with sqlite3.connect(stack.tracker_db) as db:
        rows = db.execute(
            "SELECT data FROM events WHERE sender_id = ? AND type_name = 'user' ORDER BY id", (sender,)
        ).fetchall()
    return [json.loads(data) for (data,) in rows]


def rest_turn(stack: Stack, sender: str, text: str, message_id: str | None) -> list[dict[str, Any]]:
    body = {"sender": sender, "message": text, **({"message_id": message_id} if message_id else {})}
    request = urllib.request.Request(
        stack.rest_url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return list(json.loads(resp.read()))


@pytest.mark.stack
def test_rest_same_id_twice_is_one_stored_message_and_the_same_reply(stack: Stack, knowledge: Knowledge) -> None:
    sender, message_id = f"idem-{uuid.uuid4().hex}", uuid.uuid4().hex
    first = rest_turn(stack, sender, "does it hurt?", message_id)
    again = rest_turn(stack, sender, "does it hurt?", message_id)
    assert contract_faults(first, knowledge) == ("how_it_feels", [])
    assert again == first
    assert [e["message_id"] for e in stored_user_events(stack, sender)] == [message_id]
    other = rest_turn(stack, sender, "what techniques are there", uuid.uuid4().hex)
    assert contract_faults(other, knowledge)[0] == "techniques", "a new id is a new message"
    rest_turn(stack, sender, "what techniques are there", None)
    rest_turn(stack, sender, "what techniques are there", None)
    assert len(stored_user_events(stack, sender)) == 4, "without an id every delivery is a message"


@pytest.mark.stack
def test_rest_concurrent_retries_wait_for_the_first(stack: Stack, knowledge: Knowledge) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sender, message_id = f"idem-{uuid.uuid4().hex}", uuid.uuid4().hex
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: rest_turn(stack, sender, "what is omt", message_id), range(4)))
    assert all(r == replies[0] for r in replies) and contract_faults(replies[0], knowledge)[0] == "what_is_omt"
    assert len(stored_user_events(stack, sender)) == 1


@pytest.mark.stack
def test_sms_same_message_sid_twice_is_one_stored_message_and_the_same_twiml(stack: Stack) -> None:
    sid = "SM" + uuid.uuid4().hex
    number = "+1555" + str(uuid.uuid4().int)[:7]
    env = stack.env()
    body, signature = signed(
        form("does it hurt", sender=number, MessageSid=sid), env["SMS_WEBHOOK_URL"], env["TWILIO_AUTH_TOKEN"]
    )
    first = post(stack, body, signature)
    again = post(stack, body, signature)
    assert first[0] == again[0] == 200 and len(messages_of(first[2])) == 1
    assert again[2] == first[2], "the same TwiML"
    with sqlite3.connect(stack.tracker_db) as db:
        rows = db.execute("SELECT data FROM events WHERE type_name = 'user' AND data LIKE ?", (f"%{sid}%",)).fetchall()
    assert len(rows) == 1 and number not in rows[0][0]


@pytest.mark.stack
def test_socketio_resent_message_is_one_stored_message_and_the_same_reply(stack: Stack, knowledge: Knowledge) -> None:
    import socketio  # python-socketio's client

    session, message_id = uuid.uuid4().hex, uuid.uuid4().hex
    received: list[list[dict[str, Any]]] = []
    for _ in range(2):  # two connections, as after a dropped one: the widget resends with the same id
        client = socketio.Client(reconnection=False)
        events: list[dict[str, Any]] = []
        confirmed: list[str] = []
        client.on("session_confirm", confirmed.append)
        client.on("bot_uttered", events.append)
        client.connect(stack.url, transports=["polling"], wait_timeout=20)
        try:
            client.emit("session_request", {"session_id": session})
            deadline = time.monotonic() + 30
            while not confirmed and time.monotonic() < deadline:
                time.sleep(0.05)
            client.emit("user_uttered", {"message": "does it hurt?", "session_id": session, "message_id": message_id})
            deadline = time.monotonic() + 30
            while not any("custom" in e for e in events) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            client.disconnect()
        received.append(list(events))  # a copy: a client still leaving could see the next delivery's replies
    first, again = received
    assert contract_faults(first, knowledge) == ("how_it_feels", [])
    assert all(e["message_id"] == message_id for e in first), "each reply names the message it answers"
    assert again == first
    assert [e["message_id"] for e in stored_user_events(stack, session)] == [message_id]
