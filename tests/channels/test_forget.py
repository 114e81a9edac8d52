""" "Forget me": a patient erases their own stored conversation, on every channel.

SMS: FORGET asks for confirmation, FORGET YES erases. Widget and kiosk: the socket.io
`forget` event (sent by conversation.js `reset()`). REST clients: POST
/webhooks/forget/webhook. Each is checked against the stack's SQLite events table.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from playwright.sync_api import Page, expect
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from omt.bench.evaluate import post
from omt.channels.forget import forget_conversation, sender_of
from omt.channels.sms import SmsInput, keyword
from omt.channels.sms_render import get_sms_texts, gsm7_length, load_sms_texts, to_gsm7
from omt.core.knowledge import Knowledge
from omt.core.provenance import keyed_hash
from omt.ops.stack import Stack
from omt.rasa.redacting_store import ForgetUnavailableError, RedactingTrackerStore, find_redacting_store
from tests.channels.test_channel_sms import (
    KEY,
    NUMBER,
    SETTINGS,
    FakeRasa,
    events_of,
    fresh_number,
    messages_of,
    save_events,
    signed,
)
from tests.channels.test_channel_sms import form as sms_form
from tests.channels.test_channel_sms import text as sms_text

# tests/ops/test_web_browser.py's Chromium fixtures: imported, pytest registers them here too.
from tests.ops.test_web_browser import CLINIC, ask, bot_reply, browser, open_widget, page, pages, storage  # noqa: F401

# ---- units ---------------------------------------------------------------------------


@pytest.fixture()
def channel(knowledge: Knowledge) -> SmsInput:
    return SmsInput(SETTINGS, knowledge, load_sms_texts(knowledge))


@pytest.mark.parametrize(
    ("body", "word"),
    [("FORGET", "forget"), (" forget ", "forget"), ("Forget yes", "forget_yes"), ("FORGET  YES", "forget_yes")],
)
def test_forget_keywords_are_whole_messages(body: str, word: str) -> None:
    assert keyword(body) == word


def test_forget_is_not_a_word_inside_a_question() -> None:
    for body in ("forget it", "yes", "I forget what OMT is", "forget yes please"):
        assert keyword(body) is None


def test_the_forget_texts_are_one_plain_sms_each() -> None:
    texts = get_sms_texts()
    assert "FORGET YES" in texts.forget_confirm and "erase" in texts.forget_confirm
    assert "erased" in texts.forget_done
    for text in (texts.forget_confirm, texts.forget_done, texts.help):
        assert to_gsm7(text) == text and gsm7_length(text) <= 320
    assert "FORGET" in texts.help, "HELP tells the patient the keyword exists"


class Eraser:
    """Stands in for `forget_conversation`: records who was erased."""

    def __init__(self) -> None:
        self.erased: list[str] = []

    async def __call__(self, sender_id: str) -> int:
        self.erased.append(sender_id)
        return 3


def test_forget_asks_first_and_erases_only_on_forget_yes(channel: SmsInput) -> None:
    rasa, eraser = FakeRasa(), Eraser()
    status, twiml = asyncio.run(channel.respond(*signed(sms_form("FORGET")), rasa, eraser))
    assert status == 200 and messages_of(twiml) == [get_sms_texts().forget_confirm]
    assert eraser.erased == []
    status, twiml = asyncio.run(channel.respond(*signed(sms_form("forget yes")), rasa, eraser))
    assert messages_of(twiml) == [get_sms_texts().forget_done]
    assert eraser.erased == [keyed_hash(NUMBER, KEY)], "erased under the hash, never the number"
    assert rasa.received == [], "neither message reaches Rasa (or the tracker)"


def test_forget_yes_erases_from_a_real_store(channel: SmsInput) -> None:
    store = RedactingTrackerStore(wraps=save_events(NUMBER, BotUttered("Hi!", {})))
    sender_id = keyed_hash(NUMBER, KEY)
    assert asyncio.run(store.exists(sender_id))

    async def erase(sender: str) -> int:
        return await store.delete(sender)

    asyncio.run(channel.respond(*signed(sms_form("FORGET YES")), FakeRasa(), erase))
    assert not asyncio.run(store.exists(sender_id))


def test_forget_yes_without_a_store_gets_the_apology(channel: SmsInput, knowledge: Knowledge) -> None:
    _, twiml = asyncio.run(channel.respond(*signed(sms_form("FORGET YES")), FakeRasa(), None))
    assert messages_of(twiml) == [to_gsm7(knowledge.fill(knowledge.replies["error"].sms))]


def test_rest_forget_takes_what_the_rest_channel_takes() -> None:
    assert sender_of({"sender": "abc"}) == "abc"
    bad_bodies: list[Any] = [None, [], {}, {"sender": ""}, {"sender": 5}, {"sender": "x" * 129}, {"sender": "a\nb"}]
    for bad in bad_bodies:
        assert sender_of(bad) is None


# ---- forget_conversation: the erasure every channel uses (before the browser tests: they leave an event loop running)


def _tracker(sender: str) -> DialogueStateTracker:
    """A stored conversation of five events."""
    return DialogueStateTracker.from_events(
        sender,
        [
            ActionExecuted("action_listen"),
            UserUttered("how does it feel", {"name": "how_it_feels", "confidence": 0.9}),
            ActionExecuted("action_answer"),
            BotUttered("It feels like a gentle stretch", {"custom": {"answer_id": "how_it_feels"}}),
            ActionExecuted("action_listen"),
        ],
    )


def _stored(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])


class FakeAgent:
    """What `forget_conversation` reads from Rasa's agent."""

    def __init__(self, tracker_store: Any) -> None:
        self.tracker_store = tracker_store
        self.lock_store = InMemoryLockStore()


def test_forget_finds_the_wrapper_inside_rasas_wrappers(tmp_path: Path) -> None:
    from rasa.core.agent import Agent

    store = RedactingTrackerStore(wraps="SQL", dialect="sqlite", db=str(tmp_path / "tracker.db"))
    agent = Agent(tracker_store=store)  # Rasa wraps it in a FailSafeTrackerStore
    assert find_redacting_store(agent.tracker_store) is store
    asyncio.run(store.save(_tracker("s1")))
    assert asyncio.run(forget_conversation(agent, "s1")) == 5
    assert _stored(tmp_path / "tracker.db") == 0
    with pytest.raises(ForgetUnavailableError):
        asyncio.run(forget_conversation(FakeAgent(InMemoryTrackerStore(Domain.empty())), "s1"))
    with pytest.raises(ForgetUnavailableError):
        asyncio.run(forget_conversation(None, "s1"))


def test_forget_waits_for_the_turn_in_progress() -> None:
    store = RedactingTrackerStore(wraps="in_memory")
    agent = FakeAgent(store)

    async def scenario() -> list[str]:
        order: list[str] = []

        async def turn() -> None:
            async with agent.lock_store.lock("s1"):
                await asyncio.sleep(0.3)
                await store.save(_tracker("s1"))
                order.append("saved")

        running = asyncio.ensure_future(turn())
        await asyncio.sleep(0.05)
        await forget_conversation(agent, "s1")
        order.append("forgotten")
        await running
        return order

    assert asyncio.run(scenario()) == ["saved", "forgotten"]
    assert asyncio.run(store.retrieve("s1")) is None


# ---- the running stack ---------------------------------------------------------------


def rows(stack: Stack, sender_id: str) -> int:
    with sqlite3.connect(stack.tracker_db) as db:
        return int(db.execute("SELECT COUNT(*) FROM events WHERE sender_id = ?", (sender_id,)).fetchone()[0])


def forget_over_rest(stack: Stack, body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{stack.url}/webhooks/forget/webhook",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.stack
def test_rest_forget_erases_the_conversation(stack: Stack) -> None:
    sender, other = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"
    for who in (sender, other):
        post(stack.rest_url, who, "does it hurt?")
        post(stack.rest_url, who, "what techniques are there")
    assert rows(stack, sender) > 0
    status, body = forget_over_rest(stack, {"sender": sender})
    assert status == 200 and body["forgotten"] is True and body["events"] > 0
    assert rows(stack, sender) == 0 and rows(stack, other) > 0, "only that conversation"
    assert forget_over_rest(stack, {"sender": sender}) == (200, {"forgotten": True, "events": 0})
    assert forget_over_rest(stack, {"message": "no sender"})[0] == 400
    assert post(stack.rest_url, sender, "hi"), "the patient can start again"


@pytest.mark.stack
def test_sms_forget_yes_erases_the_conversation(stack: Stack) -> None:
    number = fresh_number()
    for body in ("hi", "does it hurt"):
        assert sms_text(stack, body, number)[0] == 200
    before = len(events_of(stack, number))
    assert before > 0
    (confirm,) = messages_of(sms_text(stack, "FORGET", number)[2])
    assert "FORGET YES" in confirm and len(events_of(stack, number)) == before, "nothing erased yet, nothing stored"
    (done,) = messages_of(sms_text(stack, "FORGET YES", number)[2])
    assert "erased" in done
    assert events_of(stack, number) == []


@pytest.mark.stack
def test_socketio_forget_erases_the_session(stack: Stack) -> None:
    import socketio  # python-socketio's client

    session, other = uuid.uuid4().hex, uuid.uuid4().hex
    client = socketio.Client(reconnection=False)
    replies: list[dict[str, Any]] = []
    client.on("bot_uttered", replies.append)
    client.connect(stack.url, transports=["polling"], wait_timeout=20)
    try:
        client.emit("session_request", {"session_id": session})
        for who in (session, other):  # the socket is in `session`'s room only: `other` is just stored
            client.emit("user_uttered", {"message": "does it hurt?", "session_id": who})
        wait_until(lambda: bool(replies) and rows(stack, session) > 0 and rows(stack, other) > 0)
        ack = client.call("forget", {"session_id": session}, timeout=30)
        assert ack == {"forgotten": True}
        assert rows(stack, session) == 0 and rows(stack, other) > 0
        assert client.call("forget", {"session_id": "../../not-an-id"}, timeout=30) == {"forgotten": False}
    finally:
        client.disconnect()


def wait_until(condition: Callable[[], bool], timeout: float = 30, pause: Callable[[float], Any] = time.sleep) -> None:
    """Poll `condition` until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        pause(0.05)


def in_page(browser_page: Page) -> Callable[[float], Any]:
    """A pause that lets Playwright work meanwhile: the test's router forwards the page's requests."""
    return lambda seconds: browser_page.wait_for_timeout(seconds * 1000)


# ---- the widget and the kiosk in Chromium (tests/ops/test_web_browser.py's fixtures) -----------


@pytest.mark.stack
def test_widget_clear_conversation_erases_it_on_the_server(page: Page, stack: Stack) -> None:  # noqa: F811 (the fixture)
    panel = open_widget(page)
    ask(page, "does it hurt?")
    bot_reply(panel, "how_it_feels")
    old = storage(page, "omt-widget")["sessionId"]
    wait_until(lambda: rows(stack, old) > 0, pause=in_page(page))
    panel.get_by_role("button", name="Clear conversation").click()
    bot_reply(panel, "greet")  # a new conversation, greeted again
    expect(panel.locator(".omt-msg--bot[data-answer-id='how_it_feels']")).to_have_count(0)
    assert storage(page, "omt-widget")["sessionId"] != old
    wait_until(lambda: rows(stack, old) == 0, pause=in_page(page))
    page.wait_for_function("() => JSON.parse(sessionStorage.getItem('omt-widget')).forget.length === 0")


@pytest.mark.stack
def test_kiosk_start_over_erases_it_on_the_server(page: Page, stack: Stack) -> None:  # noqa: F811 (the fixture)
    page.goto(CLINIC + "/kiosk")
    page.get_by_role("button", name="What OMT is").click()
    bot_reply(page, "what_is_omt")
    old = storage(page, "omt-kiosk")["sessionId"]
    wait_until(lambda: rows(stack, old) > 0, pause=in_page(page))
    page.get_by_role("button", name="Start over").click()
    expect(page.locator("#start")).to_be_visible()
    wait_until(lambda: rows(stack, old) == 0, pause=in_page(page))
