"""Property-based fuzzing of the three patient channels (REST, socket.io, SMS) on the running stack.

Each Hypothesis example is ONE generated message, sent at the same moment through all
three channels, each time in a new conversation: REST (lone surrogates as JSON escapes),
socket.io (the widget's events, over polling) and SMS (a form signed like Twilio does).
SMS cannot carry lone surrogates (Twilio posts UTF-8, and a surrogate has no UTF-8 form),
so the SMS copy has them replaced by U+FFFD; an undecodable SMS body is tested in
tests/channels/test_malformed.py. About one message in five is an emergency wrapped in noise.

What must hold for every message: no 5xx, a reply that carries a contract answer id (SMS:
one non-empty TwiML message, none for an opt-out word), no reply that repeats the
patient's text (12 characters or more), the emergency answer whenever the channel sees
the whole red-flag phrase, and no traceback or exception in the stack's logs.

Message length: 1 to 10,000 characters. Long messages are rare on purpose (each costs
seconds of NLU on this stack; see the README's security notes), and the 10,000-character
boundary is always run through explicit examples. OMT_FUZZ_EXAMPLES lowers the number
of examples for a quick local run (default and CI: 2,000).
"""

from __future__ import annotations

import json
import os
import queue
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import socketio
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omt.bench.evaluate import contract_faults
from omt.channels.rest import as_text
from omt.channels.sms import keyword
from omt.channels.sms_render import to_gsm7
from omt.channels.socketio import MAX_MESSAGE_CHARS as SOCKET_MAX_CHARS
from omt.core.contract import ALL_IDS, FAILED_TURN_ID, parent_id
from omt.core.knowledge import REPO_ROOT, Knowledge
from omt.ops.stack import Stack
from tests.channels.test_channel_sms import form, messages_of, signed
from tests.channels.test_channel_sms import post as sms_post

pytestmark = pytest.mark.stack

EXAMPLES = int(os.environ.get("OMT_FUZZ_EXAMPLES", "2000"))
MAX_CHARS = 10_000
SMS_MAX_CHARS = 1600  # credentials.yml max_body_chars: longer texts get the "too long" reply
PHRASE = "i have crushing chest pain"
ECHO_MIN = 12
RECONNECTS = 3  # socket.io: how many times a dropped polling client reconnects for one message


def reply_timeout(text: str) -> float:
    """Seconds to wait for a reply: a 10,000-character message takes a while of NLU."""
    return 20.0 + len(text) / 100


# --- what messages are made of -----------------------------------------------------------

INTENTS = [*yaml.safe_load((REPO_ROOT / "domain.yml").read_text(encoding="utf-8"))["intents"], "intent", "restart"]
EMOJI = st.integers(0x1F300, 0x1FAFF).map(chr)
RTL = st.one_of(
    st.integers(0x05D0, 0x05EA).map(chr),
    st.integers(0x0620, 0x064A).map(chr),
    st.sampled_from("\u200f\u202b\u202e\u2067 "),
)
ZERO_WIDTH = st.sampled_from("\u200b\u200c\u200d\u2060\ufeff\u00ad")
COMBINING = st.integers(0x0300, 0x036F).map(chr)
LONE_SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
SCRIPTS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\"'><svg onload=alert(1)>",
    "javascript:alert(1)",
]
TEMPLATES = [
    "{{ 7*7 }}",
    "${7*7}",
    "#{7*7}",
    "{0}",
    "{name}",
    "{publisher}",
    "{{clinic_phone}}",
    "%s %n %x",
    "{% raw %}",
    "}}{{",
    "${jndi:ldap://x.example/a}",
]
WORDS = [
    "does it hurt",
    "what is omt",
    "hi",
    "2",
    "the second one",
    "tell me more",
    "help",
    "STOP",
    "thanks",
    "migraine",
]


def intent_form() -> st.SearchStrategy[str]:
    """`/intent`, `/intent{"x": "<script>"}` and the like, with our intents and made-up ones."""
    value = st.one_of(st.sampled_from(SCRIPTS + TEMPLATES), st.integers(), st.text(max_size=10))
    entities = st.dictionaries(
        st.sampled_from(["x", "technique", "condition", "population", "__proto__"]), value, max_size=2
    )
    return st.builds(
        lambda name, ents, raw: f"/{name}{json.dumps(ents) if ents else raw}",
        st.one_of(st.sampled_from(INTENTS), st.from_regex(r"[a-z_]{1,12}", fullmatch=True)),
        entities,
        st.sampled_from(["", "{", '{"x": "<script>"}', "@0.9", "{}}"]),
    )


def markdown_link() -> st.SearchStrategy[str]:
    label = st.one_of(st.sampled_from(["click", "OMT", "", "**x**"]), st.text(EMOJI, max_size=3))
    url = st.sampled_from(["https://x.example/a", "javascript:alert(1)", "tel:911", "data:text/html,<b>x</b>", ""])
    return st.builds(lambda text, target: f"[{text}]({target})", label, url)


def noise(surrogates: bool) -> st.SearchStrategy[str]:
    """Short pieces of each kind the brief names; no English words (they could negate a phrase)."""
    kinds = [
        st.text(EMOJI, min_size=1, max_size=20),  # emoji only
        st.text(RTL, min_size=1, max_size=30),  # right-to-left, with direction marks
        st.lists(st.one_of(ZERO_WIDTH, st.sampled_from("ab")), min_size=1, max_size=20).map("".join),
        st.lists(st.tuples(st.sampled_from("aeiouxyz"), st.text(COMBINING, max_size=6)), min_size=1, max_size=8).map(
            lambda pairs: "".join(base + marks for base, marks in pairs)
        ),
        st.text(st.sampled_from("\x00\x01\x1b\x7f\t\n"), min_size=1, max_size=5),  # NUL and other controls
        intent_form(),
        markdown_link(),
        st.sampled_from(SCRIPTS + TEMPLATES),
    ]
    if surrogates:
        kinds.append(st.text(LONE_SURROGATE, min_size=1, max_size=3))
    return st.one_of(kinds)


def join(parts: list[str], separator: str) -> str:
    return separator.join(parts)[:MAX_CHARS] or " "


@st.composite
def long_message(draw: st.DrawFn) -> str:
    """1,001 to 10,000 characters: a noise piece repeated to a drawn length."""
    piece = draw(noise(surrogates=True)) or "a"
    length = draw(st.integers(SOCKET_MAX_CHARS + 1, MAX_CHARS))  # shorter ones come from the other strategies
    return (piece * (length // len(piece) + 1))[:length]


@dataclass(frozen=True)
class Message:
    text: str
    emergency: bool  # the red-flag phrase is in it


def plain_messages() -> st.SearchStrategy[Message]:
    parts = st.lists(
        st.one_of(noise(surrogates=True), st.sampled_from(WORDS), st.text(max_size=40)), min_size=1, max_size=6
    )
    short = st.builds(join, parts, st.sampled_from(["", " ", "\n"]))
    # About one long message in 50 (a float draw: Hypothesis favours the ends of small ranges).
    shape = st.floats(0, 1).map(lambda x: x > 0.98)
    return shape.flatmap(lambda long: long_message() if long else short).map(lambda t: Message(t, False))


def emergency_messages() -> st.SearchStrategy[Message]:
    """Noise + the phrase + noise, short enough that every channel sees all of it."""
    side = st.lists(noise(surrogates=True), max_size=4).map(" ".join).map(lambda s: s[:400])
    return st.builds(lambda a, b: Message(f"{a} {PHRASE} {b}", True), side, side)


MESSAGES = st.sampled_from([0, 1, 2, 3, 4]).flatmap(lambda k: emergency_messages() if k == 4 else plain_messages())

# --- the three channels ------------------------------------------------------------------


class SocketChannel:
    """One socket.io connection (polling, like a browser without WebSocket); a new session per message."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.reconnects = 0
        self.client = self._connect()

    def _connect(self) -> socketio.Client:
        client = socketio.Client(reconnection=False)
        client.on("session_confirm", lambda data: self.events.put(("session_confirm", data)))
        client.on("bot_uttered", lambda data: self.events.put(("bot_uttered", data)))
        client.connect(self.url, transports=["polling"], wait_timeout=20)
        return client

    def _next(self, name: str, deadline: float) -> Any:
        while time.monotonic() < deadline:
            try:
                event, data = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event == name:
                return data
        raise AssertionError(f"socket.io: no {name} within the timeout")

    def turn(self, text: str) -> dict[str, Any]:
        """The first bot message of a new conversation that starts with `text`.

        A polling client can miss that the server dropped it (a slow turn on another channel
        delays the engine.io ping); the widget's socket.io client then reconnects and asks
        for a session again, and so does this one, up to RECONNECTS times. Every reconnect
        is counted (printed at the end); the message itself is sent once, on a confirmed
        session, and its answer must come.
        """
        for attempt in range(RECONNECTS + 1):
            if attempt or not self.client.connected:
                self.client.disconnect()
                self.client = self._connect()
                self.reconnects += attempt > 0
            while not self.events.empty():  # anything late from the previous conversation
                self.events.get_nowait()
            self.client.emit("session_request", {"session_id": uuid.uuid4().hex})
            try:
                session_id = self._next("session_confirm", time.monotonic() + 10)
            except AssertionError:
                if attempt == RECONNECTS:
                    raise
                continue
            self.client.emit("user_uttered", {"message": text, "session_id": session_id})
            return dict(self._next("bot_uttered", time.monotonic() + reply_timeout(text)))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.client.disconnect()


def rest_turn(stack: Stack, text: str) -> tuple[int, list[dict[str, Any]]]:
    body = json.dumps({"sender": f"fuzz-{uuid.uuid4().hex}", "message": text}).encode()
    request = urllib.request.Request(stack.rest_url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=reply_timeout(text)) as resp:
            return resp.status, list(json.loads(resp.read().decode()))
    except urllib.error.HTTPError as exc:
        return exc.code, []


def sms_turn(stack: Stack, text: str) -> tuple[int, str]:
    env = stack.env()
    fields = form(as_text(text), sender=f"+1555{uuid.uuid4().int % 10**7:07d}")
    status, _, twiml = sms_post(stack, *signed(fields, env["SMS_WEBHOOK_URL"], env["TWILIO_AUTH_TOKEN"]))
    return status, twiml


# --- the properties ----------------------------------------------------------------------


def shown(messages: list[dict[str, Any]]) -> str:
    return " ".join(str(m.get("text") or "") for m in messages)


def assert_no_echo(text: str, reply: str, channel: str) -> None:
    patient = text.strip()
    if len(patient) >= ECHO_MIN:
        assert patient not in reply, f"{channel} repeated the patient's text"


def check_rest(result: tuple[int, list[dict[str, Any]]], message: Message, knowledge: Knowledge) -> None:
    status, messages = result
    assert status == 200, f"REST answered {status}"
    answer_id, faults = contract_faults(messages, knowledge)
    assert parent_id(answer_id) in ALL_IDS and not faults, (answer_id, faults)
    assert answer_id != FAILED_TURN_ID, "the turn failed on our side"
    if message.emergency:
        assert parent_id(answer_id) == "emergency"
    assert_no_echo(message.text, shown(messages), "REST")


def check_socket(reply: dict[str, Any], message: Message, knowledge: Knowledge) -> None:
    answer_id, faults = contract_faults([reply], knowledge)
    assert parent_id(answer_id) in ALL_IDS and not faults, (answer_id, faults)
    assert answer_id != FAILED_TURN_ID, "the turn failed on our side"
    if message.emergency and PHRASE in message.text[:SOCKET_MAX_CHARS]:
        assert parent_id(answer_id) == "emergency"
    assert_no_echo(message.text, shown([reply]), "socket.io")


def check_sms(result: tuple[int, str], message: Message, knowledge: Knowledge) -> None:
    status, twiml = result
    assert status == 200, f"SMS answered {status}"
    texts = messages_of(twiml)
    body = as_text(message.text)
    if keyword(body) == "stop":
        assert texts == []
        return
    assert len(texts) == 1 and texts[0].strip(), "one non-empty SMS"
    assert texts[0] != to_gsm7(knowledge.fill(knowledge.replies["error"].sms)), "the turn failed on our side"
    if message.emergency and len(body) <= SMS_MAX_CHARS:
        assert to_gsm7(knowledge.fill(knowledge.replies["emergency"].sms)) in texts[0]
    assert_no_echo(body, texts[0], "SMS")


# --- the test ----------------------------------------------------------------------------


def log_sizes(stack: Stack) -> dict[Path, int]:
    return {path: path.stat().st_size for path in stack.workdir.glob("*.log")}


def new_log_lines(stack: Stack, before: dict[Path, int]) -> Iterator[str]:
    for path in sorted(stack.workdir.glob("*.log")):
        with path.open("rb") as handle:
            handle.seek(before.get(path, 0))
            yield from handle.read().decode(errors="replace").splitlines()


BOUNDARIES = [
    Message("a", False),
    Message("a" * MAX_CHARS, False),
    Message("\u200b" * MAX_CHARS, False),
    Message(("\u05e9\u05dc\u05d5\u05dd \u202e" * MAX_CHARS)[:MAX_CHARS], False),
    Message(f"{'x' * 4000} {PHRASE} {'y' * (MAX_CHARS - 4000 - len(PHRASE) - 2)}", True),
    Message('/intent{"x": "<script>"}', False),
    Message(f'/intent{{"x": "<script>"}} {PHRASE} [911](tel:911)', True),
]


def test_every_channel_survives_generated_messages(stack: Stack, knowledge: Knowledge) -> None:
    sent: list[Message] = []
    socket = SocketChannel(stack.url)
    before = log_sizes(stack)
    pool = ThreadPoolExecutor(max_workers=3)

    def check(message: Message) -> None:
        rest = pool.submit(rest_turn, stack, message.text)
        sock = pool.submit(socket.turn, message.text)
        sms = pool.submit(sms_turn, stack, message.text)
        check_rest(rest.result(), message, knowledge)
        check_socket(sock.result(), message, knowledge)
        check_sms(sms.result(), message, knowledge)
        sent.append(message)

    run = given(message=MESSAGES)(check)
    for boundary in BOUNDARIES:
        run = example(message=boundary)(run)
    run = settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )(run)
    start = time.monotonic()
    try:
        run()
    finally:
        socket.close()
        pool.shutdown(wait=True)
    seconds = time.monotonic() - start
    print(
        f"\nfuzz: {len(sent)} messages x 3 channels in {seconds:.0f} s, {sum(m.emergency for m in sent)} emergencies,"
        f" {socket.reconnects} socket.io reconnects"
    )
    assert len(sent) >= EXAMPLES
    assert socket.reconnects <= len(sent) // 100, "socket.io dropped more than 1 % of the sessions"
    assert sum(m.emergency for m in sent) >= EXAMPLES // 10
    assert any(len(m.text) >= MAX_CHARS for m in sent) and any(len(m.text) == 1 for m in sent)
    errors = [line for line in new_log_lines(stack, before) if "Traceback" in line or "Exception" in line]
    assert not errors, errors[:5]
