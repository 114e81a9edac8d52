"""The widget and the kiosk resend a message after a dropped connection: answered once, stored once.

In real headless Chromium against the running stack (tests/ops/test_web_browser.py's
fixtures). The connection drops at the one moment that matters, deterministically: a trap
in the page (patched onto the socket.io client's `Socket` prototype) swallows the reply to
the patient's question, as if lost in transit, and closes the connection the moment it
arrives. So the server has handled and stored the first delivery, and the page has seen
nothing of it. socket.io reconnects by itself; web/static/conversation.js sends the
still-pending message again with the same `message_id`; omt/channels/once.py finds that
id stored and sends the first delivery's replies again. The page must show the answer
exactly once, and the store must hold exactly one user event for it.

The widget and the kiosk share conversation.js, so one test runs on both pages.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Locator, Page

from omt.bench.evaluate import post
from omt.core.contract import FAILED_TURN_ID
from omt.ops.stack import Stack
from tests.core.test_idempotency import stored_user_events

# tests/ops/test_web_browser.py's Chromium fixtures: imported, pytest registers them here too.
from tests.ops.test_web_browser import (  # noqa: F401
    CLINIC,
    REPLY_TIMEOUT,
    ask,
    bot_reply,
    browser,
    open_widget,
    page,
    pages,
    storage,
)

pytestmark = pytest.mark.stack

QUESTION, QUESTION_ID = "does it hurt?", "how_it_feels"
FOLLOW_UP, FOLLOW_UP_ID = "what techniques are there", "techniques"

# Installed after the page has loaded the socket.io client (globalThis.io, with io.Socket).
# Replies to the pending message whose text is `text` (to its id when the first reply came)
# are dropped until the page sends that id again; the first one also closes the connection
# (engine.io's transport, as a network loss would; the socket.io manager then reconnects on
# its own). Records what it saw in globalThis.omtTrap for the test to read.
TRAP_JS = """([key, text]) => {
  const proto = globalThis.io.Socket.prototype;
  const trap = { dropped: null, answers: [], resent: false, sent: [], reconnects: 0 };
  globalThis.omtTrap = trap;
  const emit = proto.emit;
  const onevent = proto.onevent;
  proto.emit = function (event, ...args) {
    if (event === "session_request" && trap.dropped !== null) trap.reconnects += 1;
    if (event === "user_uttered") {
      const id = args[0] && args[0].message_id;
      trap.sent.push(id);
      if (trap.dropped !== null && id === trap.dropped) trap.resent = true;
    }
    return emit.call(this, event, ...args);
  };
  proto.onevent = function (packet) {
    const [event, message] = packet.data || [];
    if (event === "bot_uttered" && message && !trap.resent) {
      if (trap.dropped === null) {
        const state = JSON.parse(sessionStorage.getItem(key) || "{}");
        const mine = (state.pending || []).find((p) => p.text === text);
        if (mine && message.message_id === mine.id) {
          trap.dropped = mine.id;
          const manager = this.io;
          setTimeout(() => manager.engine.close(), 0);
        }
      }
      if (trap.dropped !== null && message.message_id === trap.dropped) {
        if (message.custom) trap.answers.push(message.custom.answer_id);
        return; // lost with the connection
      }
    }
    return onevent.call(this, packet);
  };
}"""

# The page has sent `text` and has nothing left unanswered (conversation.js keeps a message
# in `pending` until the reply with the `custom` payload has been shown).
SETTLED_JS = """([key, text]) => {
  const state = JSON.parse(sessionStorage.getItem(key) || "{}");
  const sent = (state.messages || []).some((m) => m.from === "user" && m.text === text);
  return sent && Array.isArray(state.pending) && state.pending.length === 0;
}"""


@pytest.fixture(scope="module", autouse=True)
def warm(stack: Stack) -> None:
    """One answered REST turn first: a fresh stack's first call to the action server can
    outlast OMT_ACTION_TIMEOUT on a loaded machine (the turn then ends in the apology,
    which the test accepts but which would leave the replay of a real answer untried)."""
    post(stack.rest_url, f"warm-{uuid.uuid4().hex}", QUESTION, timeout=120)


def answer_ids(scope: Page | Locator) -> list[str]:
    """The answer id of every bot message shown, in order."""
    return [node.get_attribute("data-answer-id") or "" for node in scope.locator(".omt-msg--bot").all()]


def open_page(pg: Page, which: str) -> tuple[Page | Locator, list[str]]:
    """The page's conversation area, and the answers it shows before the patient asks anything."""
    if which == "widget":
        return open_widget(pg), ["greet"]  # the widget greets every conversation
    pg.goto(CLINIC + "/kiosk")
    return pg, []


@pytest.mark.parametrize(("which", "key"), [("widget", "omt-widget"), ("kiosk", "omt-kiosk")])
def test_a_message_resent_after_a_dropped_connection_is_answered_and_stored_once(
    page: Page,  # noqa: F811 (the fixture)
    stack: Stack,
    which: str,
    key: str,
) -> None:
    scope, opening = open_page(page, which)
    page.wait_for_function("() => typeof globalThis.io === 'function' && !!globalThis.io.Socket")
    page.evaluate(TRAP_JS, [key, QUESTION])

    ask(page, QUESTION)
    # The first delivery was answered (its reply reached the page and was dropped with the
    # connection), the page reconnected and sent the message again, and the answer is shown.
    page.wait_for_function(SETTLED_JS, arg=[key, QUESTION], timeout=REPLY_TIMEOUT)
    trap: dict[str, Any] = page.evaluate("() => globalThis.omtTrap")
    dropped = trap["dropped"]
    assert isinstance(dropped, str) and len(trap["answers"]) == 1, "the first delivery was answered, then lost"
    (first_answer,) = trap["answers"]
    # The right answer, or the apology when the loaded machine made the first turn fail
    # (the retry of a failed turn gets the apology again: omt/channels/once.py).
    assert first_answer in (QUESTION_ID, FAILED_TURN_ID)
    assert trap["sent"].count(dropped) == 2, "sent, then resent with the same message_id"
    assert trap["reconnects"] >= 1, "the resend went on a new connection"
    bot_reply(scope, first_answer)

    # A later message on the same socket: any second answer to the first would come before its own.
    ask(page, FOLLOW_UP)
    page.wait_for_function(SETTLED_JS, arg=[key, FOLLOW_UP], timeout=REPLY_TIMEOUT)
    *shown, follow_up = answer_ids(scope)
    assert shown == [*opening, first_answer], "the first delivery's answer, shown exactly once"
    assert follow_up in (FOLLOW_UP_ID, FAILED_TURN_ID)

    # Replies are sent only after the turn is stored, so the store is complete by now.
    events = stored_user_events(stack, storage(page, key)["sessionId"])
    ids = [event.get("message_id") for event in events]
    assert ids.count(dropped) == 1, "one user event for the resent message"
    assert len(ids) == len(opening) + 2 and len(set(ids)) == len(ids) and None not in ids
