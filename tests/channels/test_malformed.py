"""Malformed requests on every endpoint: a 4xx that says what is wrong, and nothing stored.

Endpoints: the REST webhook (our channel, omt/channels/rest.py), the SMS webhook, the
socket.io handshake and events, and the page server (omt/ops/web.py). "Nothing stored" is
checked on the session stack's SQLite tracker: the events table has no new row, and the
stack's logs no new traceback.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

import pytest
import socketio

from omt.channels.rest import MAX_BODY_BYTES, MAX_MESSAGE_CHARS, MAX_SENDER_CHARS, body_problem
from omt.core.knowledge import REPO_ROOT
from omt.ops.stack import Stack
from tests.channels.test_channel_sms import form, messages_of, signed
from tests.channels.test_fuzz import log_sizes, new_log_lines
from tests.ops.test_web_server import page_server

SOCKET_SETTLE = 1.5  # seconds for a socket.io event to be processed (it has no response)


class Reply(NamedTuple):
    status: int
    content_type: str
    body: bytes


def send(url: str, body: bytes | None = None, content_type: str | None = None, method: str = "POST") -> Reply:
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return Reply(resp.status, resp.headers.get("Content-Type", ""), resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers.get("Content-Type", ""), exc.read())


def event_rows(stack: Stack) -> int:
    with sqlite3.connect(stack.tracker_db) as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


UNHANDLED = (
    "Task exception was never retrieved",  # an exception in a socket.io handler task
    "Exception occurred while handling uri",  # Sanic's 500
    "message.received.failure",  # Rasa's REST channel caught a failed turn
    "SMS turn failed",
    f'File "{REPO_ROOT / "omt"}',  # a traceback through our code
    f'File "{REPO_ROOT / "actions"}',
)


def unhandled(lines: Iterable[str]) -> list[str]:
    """Log lines showing an error nobody handled, or one raised in our code.

    Not counted: python-engineio logs a traceback ("message async handler error") for a
    packet it cannot decode and then drops the packet; that is the library's handling.
    """
    return [line for line in lines if any(mark in line for mark in UNHANDLED)]


@pytest.fixture()
def unchanged(stack: Stack) -> Iterator[None]:
    """The test must leave no new tracker row and no unhandled error behind."""
    rows, logs = event_rows(stack), log_sizes(stack)
    yield
    assert event_rows(stack) == rows, "a malformed request was stored"
    errors = unhandled(new_log_lines(stack, logs))
    assert not errors, errors[:5]


# --- the REST webhook --------------------------------------------------------------------

SENDER = "malformed-test"
JSON = "application/json"
REST_CASES: list[tuple[str, bytes, str | None, int, str]] = [
    ("invalid json", b'{"sender": "a", "message": ', JSON, 400, "not valid JSON"),
    ("not utf-8", b'{"sender": "a", "message": "\xff\xfe"}', JSON, 400, "not UTF-8"),
    ("empty body", b"", JSON, 400, "not valid JSON"),
    ("a list", b'[{"sender": "a", "message": "hi"}]', JSON, 400, "JSON object"),
    ("a string", b'"hi"', JSON, 400, "JSON object"),
    ("null", b"null", JSON, 400, "JSON object"),
    ("wrong types", b'{"sender": 5, "message": []}', JSON, 400, '"sender"'),
    ("no sender", b'{"message": "hi"}', JSON, 400, '"sender"'),
    ("empty sender", b'{"sender": "", "message": "hi"}', JSON, 400, '"sender"'),
    ("sender object", b'{"sender": {"id": 1}, "message": "hi"}', JSON, 400, '"sender"'),
    (
        "sender too long",
        json.dumps({"sender": "s" * (MAX_SENDER_CHARS + 1), "message": "hi"}).encode(),
        JSON,
        400,
        "128",
    ),
    ("sender newline", b'{"sender": "a\\nb", "message": "hi"}', JSON, 400, "printable"),
    ("sender surrogate", b'{"sender": "a\\ud800", "message": "hi"}', JSON, 400, "printable"),
    ("no message", b'{"sender": "a"}', JSON, 400, '"message"'),
    ("message null", b'{"sender": "a", "message": null}', JSON, 400, '"message"'),
    ("message number", b'{"sender": "a", "message": 42}', JSON, 400, '"message"'),
    ("message object", b'{"sender": "a", "message": {"text": "hi"}}', JSON, 400, '"message"'),
    ("message list", b'{"sender": "a", "message": ["hi"]}', JSON, 400, '"message"'),
    (
        "message too long",
        json.dumps({"sender": "a", "message": "m" * (MAX_MESSAGE_CHARS + 1)}).encode(),
        JSON,
        400,
        "10000",
    ),
    ("metadata not object", b'{"sender": "a", "message": "hi", "metadata": [1]}', JSON, 400, '"metadata"'),
    ("form encoded", b"sender=a&message=hi", "application/x-www-form-urlencoded", 415, "application/json"),
    ("text plain", b'{"sender": "a", "message": "hi"}', "text/plain", 415, "application/json"),
    ("no content type", b'{"sender": "a", "message": "hi"}', None, 415, "application/json"),
    ("json lookalike", b'{"sender": "a", "message": "hi"}', "application/jsonp", 415, "application/json"),
    ("body too large", b'{"sender": "a", "message": "' + b"m" * MAX_BODY_BYTES + b'"}', JSON, 413, "bytes"),
]


@pytest.mark.stack
@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [case[1:] for case in REST_CASES],
    ids=[case[0] for case in REST_CASES],
)
@pytest.mark.usefixtures("unchanged")
def test_rest_webhook_refuses_malformed_bodies(
    stack: Stack, body: bytes, content_type: str | None, status: int, says: str
) -> None:
    reply = send(stack.rest_url, body, content_type)
    assert reply.status == status
    assert reply.content_type.startswith("application/json")
    error = json.loads(reply.body)["error"]
    assert says in error


@pytest.mark.parametrize(("body", "content_type", "status", "says"), [case[1:] for case in REST_CASES])
def test_body_problem_is_the_same_check_without_a_server(
    body: bytes, content_type: str | None, status: int, says: str
) -> None:
    problem = body_problem(content_type, body)
    assert problem is not None and problem.status == status and says in problem.error


def test_body_problem_accepts_what_clients_send() -> None:
    for body in (
        {"sender": "a", "message": ""},
        {"sender": "a" * MAX_SENDER_CHARS, "message": "m" * MAX_MESSAGE_CHARS},
        {"sender": "ünï ☃", "message": "hi", "metadata": {"k": 1}},
        {"sender": "a", "message": "hi", "metadata": None, "input_channel": "sms"},
    ):
        assert body_problem("application/json; charset=utf-8", json.dumps(body).encode()) is None, body


@pytest.mark.stack
@pytest.mark.usefixtures("unchanged")
def test_rest_webhook_wrong_method_is_405(stack: Stack) -> None:
    assert send(stack.rest_url, method="GET").status == 405


@pytest.mark.stack
def test_rest_webhook_records_its_own_channel_name(stack: Stack) -> None:
    """A client cannot pose as another channel: the provenance log says "rest"."""
    sender = f"malformed-{uuid.uuid4().hex}"
    body = json.dumps({"sender": sender, "message": "hi", "input_channel": "sms"}).encode()
    assert send(stack.rest_url, body, JSON).status == 200
    with sqlite3.connect(stack.tracker_db) as db:
        rows = db.execute("SELECT data FROM events WHERE type_name = 'user'").fetchall()
    channels = {json.loads(data).get("input_channel") for (data,) in rows if sender in data}
    assert channels <= {"rest"}
    log = Path(stack.env()["OMT_PROVENANCE_LOG"]).read_text().splitlines()
    assert json.loads(log[-1])["channel"] == "rest"


# --- the SMS webhook ---------------------------------------------------------------------


def sms_url(stack: Stack) -> str:
    return stack.env()["SMS_WEBHOOK_URL"]


@pytest.mark.stack
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"From=%2B15550100123&Body=%ED%A0%80", "application/x-www-form-urlencoded"),  # a lone surrogate: not UTF-8
        (b"\xff\xfe\x00", "application/x-www-form-urlencoded"),
        (b'{"From": "+15550100123", "Body": "hi"}', "application/json"),
        (b"", "application/x-www-form-urlencoded"),
        (b"Body=" + b"a" * 200_000, "application/x-www-form-urlencoded"),
        (b"<Response/>", "text/xml"),
    ],
    ids=["surrogate", "binary", "json", "empty", "oversized", "xml"],
)
@pytest.mark.usefixtures("unchanged")
def test_sms_webhook_refuses_what_twilio_would_not_send(stack: Stack, body: bytes, content_type: str) -> None:
    reply = send(sms_url(stack), body, content_type)
    assert reply.status == 403 and reply.body == b"Forbidden"


@pytest.mark.stack
@pytest.mark.usefixtures("unchanged")
def test_sms_webhook_signed_but_without_sender_stores_nothing(stack: Stack) -> None:
    """Twilio always sends From; without it there is nobody to answer: empty TwiML, no conversation."""
    env = stack.env()
    fields = {k: v for k, v in form("what is omt").items() if k != "From"}
    body, signature = signed(fields, sms_url(stack), env["TWILIO_AUTH_TOKEN"])
    req = urllib.request.Request(
        sms_url(stack),
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200 and messages_of(resp.read().decode()) == []


@pytest.mark.stack
@pytest.mark.usefixtures("unchanged")
def test_sms_webhook_wrong_method_is_405(stack: Stack) -> None:
    assert send(sms_url(stack), method="GET").status == 405


# --- socket.io -----------------------------------------------------------------------------


@pytest.mark.stack
@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("", "unsupported version"),
        ("EIO=3&transport=polling", "unsupported version"),
        ("EIO=4&transport=carrier-pigeon", "Invalid transport"),
        ("EIO=4&transport=websocket", "Invalid websocket upgrade"),  # no Upgrade header
        ("EIO=4&transport=polling&sid=not-a-session", "Invalid session"),
        ("EIO=4&transport=polling&j=x", "JSONP"),
    ],
    ids=["no version", "old version", "bad transport", "no upgrade", "bad sid", "bad jsonp"],
)
@pytest.mark.usefixtures("unchanged")
def test_socketio_handshake_refuses_malformed_requests(stack: Stack, query: str, says: str) -> None:
    reply = send(f"{stack.url}/socket.io/?{query}", method="GET")
    assert reply.status == 400 and says.lower() in reply.body.decode().lower()


def polling_session(stack: Stack) -> str:
    """A raw engine.io session id (EIO 4, polling) with the default namespace connected."""
    base = f"{stack.url}/socket.io/?EIO=4&transport=polling"
    opened = send(base, method="GET")
    sid = str(json.loads(opened.body.decode()[1:])["sid"])
    assert send(f"{base}&sid={sid}", b"40", "text/plain;charset=UTF-8").status == 200
    send(f"{base}&sid={sid}", method="GET")  # the namespace's connect acknowledgement
    return sid


@pytest.mark.stack
@pytest.mark.parametrize(
    "payload",
    [b"42[", b'42["user_uttered", {"message": ', b"4x", b"9", b"\xff\xfe", b"42" + b"[" * 500],
    ids=["cut packet", "cut json", "bad type", "unknown packet", "binary", "deep nesting"],
)
@pytest.mark.usefixtures("unchanged")
def test_socketio_malformed_packets_are_refused(stack: Stack, payload: bytes) -> None:
    sid = polling_session(stack)
    reply = send(f"{stack.url}/socket.io/?EIO=4&transport=polling&sid={sid}", payload, "text/plain;charset=UTF-8")
    assert reply.status < 500
    time.sleep(SOCKET_SETTLE)


@pytest.mark.stack
@pytest.mark.usefixtures("unchanged")
def test_socketio_events_of_the_wrong_shape_are_ignored(stack: Stack) -> None:
    client = socketio.Client(reconnection=False)
    confirmed: list[str] = []
    replies: list[Any] = []
    client.on("session_confirm", confirmed.append)
    client.on("bot_uttered", replies.append)
    client.connect(stack.url, transports=["polling"], wait_timeout=20)
    try:
        client.emit("session_request", {"session_id": uuid.uuid4().hex})
        deadline = time.monotonic() + 20
        while not confirmed and time.monotonic() < deadline:
            time.sleep(0.05)
        session = confirmed[0]
        for data in (
            {"message": 5, "session_id": session},
            {"message": [], "session_id": session},
            {"message": {"text": "hi"}, "session_id": session},
            {"message": None, "session_id": session},
            {"session_id": session},
            {"message": "hi"},  # no session id
            {"message": "hi", "session_id": "../../etc/passwd"},
            {"message": "hi", "session_id": 42},
            "hi",
            ["hi"],
            None,
        ):
            client.emit("user_uttered", data)
        client.emit("session_request", "not an object")
        client.emit("no_such_event", {"message": "hi"})
        time.sleep(SOCKET_SETTLE)
    finally:
        client.disconnect()
    assert replies == [], "nothing was answered, so nothing was processed"


# --- the page server (it stores nothing; no stack needed) ----------------------------------


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with page_server("http://127.0.0.1:5999", tmp_path_factory.mktemp("web") / "web.log") as base:
        yield base


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status"),
    [
        ("POST", "/", b'{"x": 1}', JSON, 405),
        ("PUT", "/kiosk", b"x", "text/plain", 405),
        ("DELETE", "/static/widget.js", None, None, 405),
        ("POST", "/static/widget.js", b"\xff" * 1000, "application/octet-stream", 405),
        ("GET", "/static/%00", None, None, 404),
        ("GET", "/no-such-page", None, None, 404),
    ],
)
def test_page_server_refuses_what_it_does_not_serve(
    pages: str, method: str, path: str, body: bytes | None, content_type: str | None, status: int
) -> None:
    reply = send(pages + path, body, content_type, method)
    assert reply.status == status and reply.body, "a status and a message"


def raw_http(base: str, data: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(data)
        return sock.recv(4096)


@pytest.mark.parametrize(
    "data",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ],
    ids=["garbage", "huge header", "huge path", "negative length"],
)
def test_page_server_refuses_malformed_http(pages: str, data: bytes) -> None:
    status_line = raw_http(pages, data).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.") and status_line.split()[1].startswith(b"4"), status_line
