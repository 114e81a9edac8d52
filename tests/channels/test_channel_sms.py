"""The SMS channel: signatures, keywords, numbered replies, privacy; unit tests and the real webhook.

Unit tests call `SmsInput.respond` (what the Sanic route does) with a stand-in for Rasa;
the `stack` tests post signed Twilio forms to the running stack's webhook.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from twilio.request_validator import RequestValidator

from omt.channels.sms import SmsInput, SmsSettings, keyword
from omt.channels.sms_render import load_sms_texts, to_gsm7
from omt.core import replies
from omt.core.knowledge import Knowledge
from omt.core.provenance import keyed_hash
from omt.ops.stack import Stack

URL = "https://clinic.example/webhooks/sms/webhook"
TOKEN = "unit-twilio-token"
KEY = "unit-sender-key"
NUMBER = "+15550100123"  # 555-01xx: fictional
ENV = {"TWILIO_AUTH_TOKEN": TOKEN, "SMS_SENDER_KEY": KEY, "SMS_WEBHOOK_URL": URL}
SETTINGS = SmsSettings.from_env(ENV)


def form(body: str, sender: str = NUMBER, **extra: str) -> dict[str, str]:
    """The fields of Twilio's messaging webhook for one text (blank ones included, as Twilio sends)."""
    sid = f"SM{uuid.uuid4().hex}"
    return {
        "From": sender,
        "To": "+15550100199",
        "Body": body,
        "NumMedia": "0",
        "MessageSid": sid,
        "FromCity": "",
        **extra,
    }


def signed(fields: dict[str, str], url: str = URL, token: str = TOKEN) -> tuple[bytes, str]:
    return urllib.parse.urlencode(fields).encode(), RequestValidator(token).compute_signature(url, fields)


def messages_of(twiml: str) -> list[str]:
    return [m.text or "" for m in ET.fromstring(twiml).iter("Message")]


class FakeRasa:
    """Stands in for Rasa's `on_new_message`: records each message, replies like the actions do."""

    def __init__(self, reply: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.received: list[UserMessage] = []
        self.reply = (
            {"text": "Hi!\n\nAsk me.", "custom": {"answer_id": "greet", "kind": "service"}} if reply is None else reply
        )
        self.error = error

    async def __call__(self, message: UserMessage) -> None:
        self.received.append(message)
        if self.error is not None:
            raise self.error
        await message.output_channel.send_response(message.sender_id, dict(self.reply))


@pytest.fixture()
def channel(knowledge: Knowledge) -> SmsInput:
    return SmsInput(SETTINGS, knowledge, load_sms_texts(knowledge))


def respond(channel: SmsInput, rasa: FakeRasa, body: bytes, signature: str | None) -> tuple[int, str]:
    return asyncio.run(channel.respond(body, signature, rasa))


def test_a_signed_text_reaches_rasa_under_a_keyed_hash(channel: SmsInput) -> None:
    rasa = FakeRasa()
    status, twiml = respond(channel, rasa, *signed(form("hello")))
    assert status == 200 and messages_of(twiml) == ["Hi!\nAsk me."]
    (message,) = rasa.received
    assert message.sender_id == keyed_hash(NUMBER, KEY) and NUMBER not in message.sender_id
    assert message.text == "hello" and message.input_channel == "sms" and not message.metadata


@pytest.mark.parametrize(
    "case",
    ["unsigned", "forged", "other_url", "other_params", "other_token"],
)
def test_requests_not_signed_by_twilio_for_us_are_refused(channel: SmsInput, case: str) -> None:
    fields = form("what is omt")
    body, signature = signed(fields)
    if case == "unsigned":
        result = respond(channel, FakeRasa(), body, None)
    elif case == "forged":
        result = respond(channel, FakeRasa(), body, "bm90IGEgc2lnbmF0dXJl")
    elif case == "other_url":
        result = respond(channel, FakeRasa(), *signed(fields, url="https://elsewhere.example/sms"))
    elif case == "other_params":
        result = respond(channel, FakeRasa(), signed({**fields, "Body": "something else"})[0], signature)
    else:
        result = respond(channel, FakeRasa(), *signed(fields, token="another-token"))
    assert result == (403, "Forbidden")


def test_nothing_is_processed_when_refused(channel: SmsInput) -> None:
    rasa = FakeRasa()
    respond(channel, rasa, signed(form("hi"))[0], "wrong")
    assert rasa.received == []


@pytest.mark.parametrize("missing", sorted(ENV))
def test_without_configuration_every_request_is_refused_and_logged_once(
    knowledge: Knowledge, caplog: pytest.LogCaptureFixture, missing: str
) -> None:
    settings = SmsSettings.from_env({name: value for name, value in ENV.items() if name != missing})
    with caplog.at_level(logging.INFO, logger="omt.channels.sms"):
        channel = SmsInput(settings, knowledge, load_sms_texts(knowledge))
        rasa = FakeRasa()
        for _ in range(3):
            assert respond(channel, rasa, *signed(form("hi")))[0] == 403
    assert rasa.received == []
    said = [r.getMessage() for r in caplog.records if r.name == "omt.channels.sms"]
    assert len(said) == 1 and "refuses every request" in said[0] and missing in said[0]


@pytest.mark.parametrize("word", ["STOP", "stop", " Stop ", "STOPALL", "unsubscribe", "CANCEL", "End", "QUIT"])
def test_opt_out_gets_no_reply_and_never_reaches_rasa(channel: SmsInput, word: str) -> None:
    rasa = FakeRasa()
    status, twiml = respond(channel, rasa, *signed(form(word)))
    assert status == 200 and messages_of(twiml) == [] and ET.fromstring(twiml).tag == "Response"
    assert rasa.received == []


def test_start_and_help_are_answered_by_the_line(channel: SmsInput, knowledge: Knowledge) -> None:
    rasa = FakeRasa()
    (welcome,) = messages_of(respond(channel, rasa, *signed(form("START")))[1])
    assert welcome.startswith("Welcome back") and messages_of(respond(channel, rasa, *signed(form("unstop")))[1])
    for word in ("HELP", "info"):
        (help_text,) = messages_of(respond(channel, rasa, *signed(form(word)))[1])
        assert knowledge.clinic.phone in help_text and "STOP" in help_text
    assert rasa.received == []
    assert keyword("stop please") is None and keyword("help me") is None, "only the whole message is a keyword"


def test_too_long_and_media_only_get_polite_refusals(channel: SmsInput) -> None:
    rasa = FakeRasa()
    (too_long,) = messages_of(respond(channel, rasa, *signed(form("a" * 1601)))[1])
    assert "too long" in too_long
    assert messages_of(respond(channel, rasa, *signed(form("a" * 1600)))[1]) == ["Hi!\nAsk me."]
    (media,) = messages_of(
        respond(channel, rasa, *signed(form("", NumMedia="1", MediaUrl0="https://x.example/1.jpg")))[1]
    )
    assert "text only" in media
    assert len(rasa.received) == 1


def save_events(sender: str, *events: Any) -> InMemoryTrackerStore:
    store = InMemoryTrackerStore(Domain.empty())
    asyncio.run(store.save(DialogueStateTracker.from_events(keyed_hash(sender, KEY), list(events))))
    return store


def test_a_number_goes_to_rasa_as_it_is(channel: SmsInput) -> None:
    """A pick from the numbered list is resolved in Rasa (choose_option, the listed_topics slot), like
    "the second one" on the web: the channel keeps no state and reads no tracker store."""
    rasa = FakeRasa()
    for text in ("2", " 2 ", "4", "12 weeks"):
        respond(channel, rasa, *signed(form(text)))
    assert [m.text for m in rasa.received] == ["2", "2", "4", "12 weeks"]
    assert not {"trackers", "tracker_store"} & set(inspect.signature(channel.respond).parameters)


def test_the_sms_comes_from_the_replys_paragraphs(channel: SmsInput, knowledge: Knowledge) -> None:
    """Rendered by id from the knowledge: other chat text gives the same SMS."""
    first = replies.with_notice(knowledge, replies.knowledge_reply(knowledge, "muscle_energy"))
    (shown,) = messages_of(respond(channel, FakeRasa(reply=first.message()), *signed(form("hi")))[1])
    assert shown.endswith("Reply 1 for Soft tissue technique, 2 for Myofascial release"), "the notice left room for two"
    assert shown.startswith(to_gsm7(knowledge.fill(knowledge.notice.sms)))
    reworded = {**first.message(), "text": "Other words on the web."}
    assert messages_of(respond(channel, FakeRasa(reply=reworded), *signed(form("hi")))[1]) == [shown]


def test_an_internal_error_gets_the_apology_and_no_patient_text_in_the_log(
    channel: SmsInput, knowledge: Knowledge, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "my back hurts since the accident"
    with caplog.at_level(logging.DEBUG):
        status, twiml = respond(channel, FakeRasa(error=RuntimeError(secret)), *signed(form(secret)))
    assert status == 200 and messages_of(twiml) == [to_gsm7(knowledge.fill(knowledge.replies["error"].sms))]
    assert "RuntimeError" in caplog.text
    assert secret not in caplog.text and NUMBER not in caplog.text


def test_no_answer_from_rasa_gets_the_apology(channel: SmsInput, knowledge: Knowledge) -> None:
    (reply,) = messages_of(respond(channel, FakeRasa(reply={}), *signed(form("hi")))[1])
    assert reply == to_gsm7(knowledge.fill(knowledge.replies["error"].sms))


def test_reply_is_escaped_twiml(channel: SmsInput) -> None:
    rasa = FakeRasa(reply={"text": "a < b & c > d", "custom": {"answer_id": "greet", "kind": "service"}})
    status, twiml = respond(channel, rasa, *signed(form("hi")))
    assert status == 200
    assert "a &lt; b &amp; c &gt; d" in twiml and messages_of(twiml) == ["a < b & c > d"]


def test_unknown_credentials_options_stop_the_start() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        SmsSettings.from_env({}, {"auth_token": "in-the-file"})
    assert SmsSettings.from_env({"TWILIO_AUTH_TOKEN": "t"}, {"max_body_chars": 10}).max_body_chars == 10


# --- the real webhook of a running stack ---------------------------------------------


def sms_url(stack: Stack) -> str:
    return stack.env()["SMS_WEBHOOK_URL"]


def post(stack: Stack, body: bytes, signature: str | None) -> tuple[int, str, str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    request = urllib.request.Request(sms_url(stack), data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def text(stack: Stack, body: str, sender: str) -> tuple[int, str, str]:
    fields = form(body, sender)
    return post(stack, *signed(fields, sms_url(stack), stack.env()["TWILIO_AUTH_TOKEN"]))


def events_of(stack: Stack, sender: str) -> list[tuple[str, str]]:
    sender_id = keyed_hash(sender, stack.env()["SMS_SENDER_KEY"])
    with sqlite3.connect(stack.tracker_db) as db:
        return list(db.execute("SELECT type_name, data FROM events WHERE sender_id = ?", (sender_id,)))


def fresh_number() -> str:
    return f"+1555010{uuid.uuid4().int % 10_000:04d}"


@pytest.mark.stack
def test_webhook_numbered_conversation(stack: Stack, knowledge: Knowledge) -> None:
    sender = fresh_number()
    status, content_type, twiml = text(stack, "what techniques are there", sender)
    assert status == 200 and content_type.startswith("text/xml")
    (first,) = messages_of(twiml)
    assert to_gsm7(knowledge.entries["techniques"].sms) in first
    assert to_gsm7(knowledge.fill(knowledge.source_line.sms)) in first
    assert "2 for Muscle energy technique" in first
    (second,) = messages_of(text(stack, "2", sender)[2])
    assert to_gsm7(knowledge.entries["muscle_energy"].sms) in second
    bot_ids = [d for t, d in events_of(stack, sender) if t == "bot" and '"answer_id": "muscle_energy"' in d]
    assert bot_ids, "the tracker holds the second technique's answer"
    # A button that is not a topic is picked by its number too.
    (cost,) = messages_of(text(stack, "how much does a session of omt cost", sender)[2])
    number = re.search(r"(\d) for Talk to a person", cost)
    assert number, cost
    (person,) = messages_of(text(stack, number.group(1), sender)[2])
    assert person == to_gsm7(knowledge.fill(knowledge.replies["handoff"].sms))


@pytest.mark.stack
@pytest.mark.parametrize("case", ["unsigned", "forged", "other_url", "other_params"])
def test_webhook_refuses_what_twilio_did_not_sign_for_it(stack: Stack, case: str) -> None:
    sender = fresh_number()
    fields = form("what is omt", sender)
    token = stack.env()["TWILIO_AUTH_TOKEN"]
    body, signature = signed(fields, sms_url(stack), token)
    if case == "unsigned":
        result = post(stack, body, None)
    elif case == "forged":
        result = post(stack, body, signed(fields, sms_url(stack), "not-the-token")[1])
    elif case == "other_url":
        result = post(stack, body, signed(fields, "https://elsewhere.example/webhooks/sms/webhook", token)[1])
    else:
        result = post(stack, signed({**fields, "Body": "tell me more"})[0], signature)
    assert result[0] == 403
    assert events_of(stack, sender) == [], "nothing processed"


@pytest.mark.stack
def test_webhook_opt_out_is_silent_and_unrecorded(stack: Stack) -> None:
    sender = fresh_number()
    status, _, twiml = text(stack, "STOP", sender)
    assert status == 200 and messages_of(twiml) == []
    assert events_of(stack, sender) == []


@pytest.mark.stack
def test_webhook_help_names_the_clinic_phone(stack: Stack, knowledge: Knowledge) -> None:
    (help_text,) = messages_of(text(stack, "HELP", fresh_number())[2])
    assert knowledge.clinic.phone in help_text


@pytest.mark.stack
def test_tracker_store_holds_no_phone_number(stack: Stack) -> None:
    sender = fresh_number()
    for body in ("hi", "does it hurt", "1", "thanks"):
        assert text(stack, body, sender)[0] == 200
    assert events_of(stack, sender), "the conversation is stored, under the hash"
    digits = sender.lstrip("+")
    with sqlite3.connect(stack.tracker_db) as db:
        rows = db.execute("SELECT sender_id, data FROM events").fetchall()
    dump = "\n".join(f"{sender_id} {data}" for sender_id, data in rows)
    assert digits not in dump and digits[1:] not in dump
    assert digits not in stack.logs()


@pytest.mark.stack
@pytest.mark.parametrize(
    ("body", "key", "answer_id"),
    [("I have chest pain", "emergency", "emergency"), ("i want to kill myself", "crisis", "emergency.crisis")],
    ids=["911", "988"],
)
def test_webhook_emergency_is_the_whole_sms(
    stack: Stack, knowledge: Knowledge, body: str, key: str, answer_id: str
) -> None:
    """Over the real line, first message of a conversation: the safety SMS alone (call first), no notice."""
    sender = fresh_number()
    status, _, twiml = text(stack, body, sender)
    assert status == 200
    assert messages_of(twiml) == [to_gsm7(knowledge.fill(knowledge.replies[key].sms))]
    bots = [d for t, d in events_of(stack, sender) if t == "bot"]
    assert len(bots) == 1 and f'"answer_id": "{answer_id}"' in bots[0]
