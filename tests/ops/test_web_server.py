"""The page server's headers and pages, and our socket.io channel's message shape.

Unit tests need no stack; the `stack` ones talk socket.io to the running Rasa, as the
widget does, and check the contract: ONE `bot_uttered` event per turn with the custom object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from omt.bench.evaluate import contract_faults
from omt.channels.socketio import SocketIOInput, SocketIOOutput, contract_message, valid_session_id
from omt.core.contract import SAFETY_REPLIES
from omt.core.knowledge import REPO_ROOT, Knowledge, KnowledgeError
from omt.core.origins import allowed_origins
from omt.core.web_texts import load_web_texts
from omt.ops.stack import Stack, free_port, wait_for_http
from omt.ops.web import content_security_policy, fill, socket_origins

SOCKET_URL = "http://127.0.0.1:5999"


def build_web_assets() -> None:
    """`make web` (npm ci + copy the socket.io client) when the assets are not built yet."""
    if (
        not (REPO_ROOT / "web" / "static" / "vendor" / "socket.io.min.js").exists()
        or not (REPO_ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js").exists()
    ):
        subprocess.run(["make", "--no-print-directory", "web"], cwd=REPO_ROOT, check=True)


@contextlib.contextmanager
def page_server(socket_url: str, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`python -m omt.ops.web` on a free loopback port; yields its base URL, stops it after."""
    build_web_assets()
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "omt.ops.web", "--port", str(port), "--socket-url", socket_url],
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", 30, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with page_server(SOCKET_URL, tmp_path_factory.mktemp("web") / "web.log") as base:
        yield base


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read().decode()


# ---- the page server -------------------------------------------------------------------


def test_csp_names_only_the_socket_origin() -> None:
    csp = content_security_policy("http://127.0.0.1:5005")
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "connect-src http://127.0.0.1:5005 ws://127.0.0.1:5005;" in csp
    assert socket_origins("https://chat.clinic.example/") == (
        "https://chat.clinic.example",
        "wss://chat.clinic.example",
    )
    for bad in ("javascript:alert(1)", "127.0.0.1:5005", "http://x/socket.io", "ftp://x"):
        with pytest.raises(ValueError):
            socket_origins(bad)


def test_fill_escapes_values() -> None:
    assert fill('<b data-x="{{v}}">{{v}}</b>', {"v": '"><script>'}) == (
        '<b data-x="&quot;&gt;&lt;script&gt;">&quot;&gt;&lt;script&gt;</b>'
    )
    with pytest.raises(KeyError):
        fill("{{missing}}", {})


@pytest.mark.parametrize(
    "path", ["/", "/kiosk", "/static/widget.js", "/static/kiosk.css", "/static/texts.js", "/no-such-page"]
)
def test_every_response_has_the_security_headers(server: str, path: str) -> None:
    status, headers, _ = get(server + path)
    assert status == (404 if path == "/no-such-page" else 200)
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert f"connect-src {SOCKET_URL} ws://127.0.0.1:5999;" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_pages_have_no_inline_script_and_no_third_party_url(server: str, knowledge: Knowledge) -> None:
    for path in ("/", "/kiosk"):
        _, _, html = get(server + path)
        assert "<script>" not in html and "onclick" not in html and "style=" not in html
        assert "https://" not in html and "//cdn" not in html
        assert f'data-socket-url="{SOCKET_URL}"' in html
        assert knowledge.clinic.name in html
    _, _, home = get(server + "/")
    assert home.count("<script") == 1, "the widget embeds with one tag"
    _, _, kiosk = get(server + "/kiosk")
    assert 'data-idle-seconds="60"' in kiosk and 'data-warning-seconds="30"' in kiosk
    for topic in knowledge.replies["capabilities"].topics:
        assert f'data-payload="/{topic}"' in kiosk and knowledge.entries[topic].title in kiosk


def test_static_files_only_from_the_static_folder(server: str) -> None:
    assert get(server + "/static/")[0] in (403, 404)
    assert get(server + "/static/%2e%2e/omt/ops/web.py")[0] in (403, 404)
    assert get(server + "/static/vendor/socket.io.min.js")[0] == 200


def test_widget_modules_load_cross_origin_only_for_clinic_origins(server: str) -> None:
    _, ok, _ = get(server + "/static/widget.js", {"Origin": "http://localhost:8080"})
    assert ok["Access-Control-Allow-Origin"] == "http://localhost:8080"
    _, other, _ = get(server + "/static/widget.js", {"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other


def test_card_texts_are_served_as_a_module_from_the_knowledge(server: str, knowledge: Knowledge) -> None:
    status, headers, body = get(server + "/static/texts.js", {"Origin": "http://localhost:8080"})
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:8080", "the embedded widget imports it too"
    texts = load_web_texts(knowledge)
    assert body.split("export default ", 1)[1].rstrip().rstrip(";") == json.dumps(texts, indent=1)


def test_card_texts_give_each_channel_its_emergency_card(knowledge: Knowledge) -> None:
    texts = load_web_texts(knowledge)
    assert set(texts) == {"widget", "kiosk"}
    for channel in texts.values():
        assert set(channel["safety"]) <= set(SAFETY_REPLIES.values()) and "emergency" in channel["safety"]
    widget, kiosk = texts["widget"]["safety"], texts["kiosk"]["safety"]
    assert [link["href"] for link in widget["emergency"]["links"]] == ["tel:911"]
    assert {"tel:988", "sms:988"} <= {link["href"] for link in widget["emergency.crisis"]["links"]}
    assert all(card["links"] == [] and card["note"] for card in kiosk.values()), "the kiosk has no phone"


@pytest.mark.parametrize(
    ("yml", "problem"),
    [
        ("channels: {widget: {safety: {emergency: {note: x}}}}", "channels.kiosk: missing"),
        (
            "channels: {widget: {safety: {emergency: {links: [{label: Call, href: 'javascript:alert(1)'}]}}},"
            " kiosk: {safety: {emergency: {note: x}}}}",
            "href must be tel:NUMBER or sms:NUMBER",
        ),
        (
            "channels: {widget: {safety: {emergency: {note: x}, emergency.other: {note: y}}},"
            " kiosk: {safety: {emergency: {note: x}}}}",
            "not a safety answer id",
        ),
        (
            "channels: {widget: {safety: {emergency.crisis: {note: x}}}, kiosk: {safety: {emergency: {note: x}}}}",
            "needs at least the `emergency` card",
        ),
        (
            "channels: {widget: {safety: {emergency: {note: 'hi {nope}'}}}, kiosk: {safety: {emergency: {note: x}}}}",
            "placeholder",
        ),
        ("channels: [1]", "needs a `channels` mapping"),
    ],
)
def test_bad_card_texts_stop_the_server(knowledge: Knowledge, tmp_path: Path, yml: str, problem: str) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text(yml)
    with pytest.raises(KnowledgeError, match=re.escape(problem)):
        load_web_texts(knowledge, bad)


# ---- the socket.io channel -----------------------------------------------------------


class FakeSio:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, Any, dict[str, Any]]] = []

    async def emit(self, event: str, data: Any = None, **kwargs: Any) -> None:
        self.emitted.append((event, data, kwargs))


def test_output_sends_one_message_with_the_custom_object() -> None:
    sio = FakeSio()
    out = SocketIOOutput(sio, "bot_uttered")
    custom = {"answer_id": "how_it_feels", "kind": "knowledge", "citation": {"title": "t", "quotes": ["q"]}}
    message = {
        "text": "It should not hurt.\n\nSource: WebMD",
        "buttons": [{"title": "Techniques", "payload": "/techniques"}],
        "custom": custom,
        "timestamp": 1.0,
    }
    asyncio.run(out.send_response("s1", dict(message)))
    asyncio.run(out.send_custom_json("s1", {"answer_id": "emergency", "kind": "safety", "room": "not-a-kwarg"}))
    assert sio.emitted == [
        ("bot_uttered", {"text": message["text"], "buttons": message["buttons"], "custom": custom}, {"room": "s1"}),
        (
            "bot_uttered",
            {"custom": {"answer_id": "emergency", "kind": "safety", "room": "not-a-kwarg"}},
            {"room": "s1"},
        ),
    ]


def test_contract_message_keeps_only_what_is_there() -> None:
    assert contract_message({"text": "hi", "buttons": [], "custom": None, "image": None}) == {"text": "hi"}


def test_session_ids_must_be_ours() -> None:
    assert valid_session_id(uuid.uuid4().hex) is not None
    for bad in (None, 42, "", "x" * 32, uuid.uuid4().hex.upper(), str(uuid.uuid4()), "a" * 33, "../etc"):
        assert valid_session_id(bad) is None


def _socket_turns(url: str, texts: list[str], session_id: str | None) -> tuple[str, list[list[dict[str, Any]]]]:
    """Play `texts` over socket.io like the widget; (confirmed session id, events per turn)."""
    import socketio  # python-socketio's client (polling through requests)

    client = socketio.Client(reconnection=False)
    confirmed: list[str] = []
    events: list[dict[str, Any]] = []
    client.on("session_confirm", confirmed.append)
    client.on("bot_uttered", events.append)
    client.connect(url, transports=["polling"], wait_timeout=20)
    try:
        client.emit("session_request", {"session_id": session_id})
        deadline = time.monotonic() + 20
        while not confirmed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert confirmed, "no session_confirm"
        turns: list[list[dict[str, Any]]] = []
        for text in texts:
            start = len(events)
            client.emit("user_uttered", {"message": text, "session_id": confirmed[0]})
            deadline = time.monotonic() + 30
            while len(events) == start and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # anything else for this turn would have arrived by now
            turns.append(events[start:])
        return confirmed[0], turns
    finally:
        client.disconnect()


@pytest.mark.stack
def test_socketio_turn_is_one_contract_message(stack: Stack, knowledge: Knowledge) -> None:
    session = uuid.uuid4().hex
    confirmed, turns = _socket_turns(stack.url, ["does it hurt?", "I have chest pain"], session)
    assert confirmed == session
    for messages in turns:
        assert len(messages) == 1, messages
    hurt, chest = turns[0][0], turns[1][0]
    assert contract_faults([hurt], knowledge) == ("how_it_feels", [])
    assert "\n\n" in hurt["text"], "the text arrives whole, not split at blank lines"
    assert hurt["buttons"] and all(set(b) == {"title", "payload"} for b in hurt["buttons"])
    assert chest["custom"] == {"answer_id": "emergency", "kind": "safety"}
    assert "911" in chest["text"]


@pytest.mark.stack
def test_socketio_replaces_a_forged_session_id(stack: Stack) -> None:
    confirmed, _ = _socket_turns(stack.url, [], "../../not-an-id")
    assert valid_session_id(confirmed) is not None


def test_socketio_reads_the_page_servers_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    """One list (omt/core/origins.py) for the widget's module scripts and the socket.io channel."""
    monkeypatch.setenv("CLINIC_ORIGINS", "https://clinic.example/")
    assert SocketIOInput().origins == ["https://clinic.example"] == allowed_origins()


@pytest.mark.stack
def test_socketio_accepts_only_clinic_origins(stack: Stack) -> None:
    url = f"{stack.url}/socket.io/?EIO=4&transport=polling"
    status, headers, _ = get(url, {"Origin": "http://127.0.0.1:8080"})
    assert status == 200
    assert headers.get("Access-Control-Allow-Origin") == "http://127.0.0.1:8080"
    assert headers.get("Access-Control-Allow-Credentials") is None
    status, headers, _ = get(url, {"Origin": "https://evil.example"})
    assert status == 400
    assert "Access-Control-Allow-Origin" not in headers
