"""The REST channel (POST /webhooks/rest/webhook), with each request checked before Rasa sees it.

Why not Rasa's own `rest:` channel: it trusts the body. Invalid JSON or a JSON list gets a
500, `{"sender": 5, "message": []}` goes into the tracker, a missing sender puts every such
client into one shared "default" conversation, and the client picks the `input_channel`
that the provenance log records. This subclass answers a JSON `{"error": "..."}` instead,
and nothing reaches Rasa or the tracker store:

- 413 when the body is over `MAX_BODY_BYTES` (the nginx proxy has the same cap, so a
  10,000-character message fits even written with JSON escapes);
- 415 unless the Content-Type is application/json;
- 400 unless the body is UTF-8 JSON holding an object with `sender` (a printable string,
  1 to `MAX_SENDER_CHARS` characters), `message` (a string of at most `MAX_MESSAGE_CHARS`
  characters) and, if present, a `metadata` object and a `message_id` (1 to 64 letters,
  digits, "-" or "_").

A `message_id` makes a retry safe: a message whose id this conversation already has
(within 24 h) is not handled again, and the retry gets the first delivery's replies
(omt/channels/once.py). Without one, every request is a new message.

Lone UTF-16 surrogates in the message (valid JSON escapes, not valid text) become U+FFFD,
so no later UTF-8 encoding (logs, exports) can fail on them. Registered in credentials.yml
as `omt.channels.rest.RestInput`; `name()` stays "rest", and so does the URL.
"""

from __future__ import annotations

import json
import re
from typing import Any, Awaitable, Callable, Mapping, NamedTuple

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput as RasaRestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from omt.channels.once import answer
from omt.core.idempotency import ID_RULE, valid_message_id

MAX_BODY_BYTES = 128 * 1024  # 10,000 astral characters as JSON escapes are 120,000 bytes
MAX_MESSAGE_CHARS = 10_000
MAX_SENDER_CHARS = 128
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Refusal(NamedTuple):
    """Why a request does not reach Rasa: the HTTP status and a message for the client."""

    status: int
    error: str


def body_problem(content_type: str | None, body: bytes) -> Refusal | None:
    """What is wrong with a webhook request's body, or None when Rasa may have it."""
    if len(body) > MAX_BODY_BYTES:
        return Refusal(413, f"request body is over {MAX_BODY_BYTES} bytes")
    if (content_type or "").split(";", 1)[0].strip().lower() != "application/json":
        return Refusal(415, "Content-Type must be application/json")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return Refusal(400, "request body is not UTF-8")
    except ValueError:
        return Refusal(400, "request body is not valid JSON")
    return payload_problem(data)


def payload_problem(data: Any) -> Refusal | None:
    """What is wrong with the decoded JSON, or None for {"sender": str, "message": str}."""
    if not isinstance(data, dict):
        return Refusal(400, 'body must be a JSON object: {"sender": "...", "message": "..."}')
    sender, message = data.get("sender"), data.get("message")
    if not isinstance(sender, str) or not sender:
        return Refusal(400, '"sender" must be a non-empty string')
    if len(sender) > MAX_SENDER_CHARS or not sender.isprintable():
        return Refusal(400, f'"sender" must be at most {MAX_SENDER_CHARS} printable characters')
    if not isinstance(message, str):
        return Refusal(400, '"message" must be a string')
    if len(message) > MAX_MESSAGE_CHARS:
        return Refusal(400, f'"message" is longer than {MAX_MESSAGE_CHARS} characters')
    if data.get("metadata") is not None and not isinstance(data["metadata"], Mapping):
        return Refusal(400, '"metadata" must be a JSON object')
    if data.get("message_id") is not None and valid_message_id(data["message_id"]) is None:
        return Refusal(400, f'"message_id" must be {ID_RULE}')
    return None


def as_text(message: str) -> str:
    """`message` with lone surrogates replaced by U+FFFD (JSON can carry them, UTF-8 cannot)."""
    return _LONE_SURROGATE.sub("\ufffd", message)


class RestInput(RasaRestInput):
    """Rasa's REST channel behind the checks in the module docstring."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Rasa's two routes (without `?stream=true`), behind a check that runs before the webhook route.

        Turns go through `omt.channels.once.answer`: a failed turn answers the apology, not
        `[]`, and a message with a `message_id` is handled once.
        """
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)

        @webhook.middleware("request")
        async def check(request: Request) -> HTTPResponse | None:
            if request.method != "POST":
                return None
            refusal = body_problem(request.headers.get("content-type"), request.body)
            return None if refusal is None else response.json({"error": refusal.error}, status=refusal.status)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            collector = CollectingOutputChannel()
            message = UserMessage(
                self.message_text(request),
                collector,
                await self.message_sender(request),
                input_channel=self.message_channel(request),
                metadata=self.get_metadata(request),
            )
            message_id = valid_message_id(request.json.get("message_id"))
            await answer(on_new_message, message, message_id, getattr(request.app.ctx, "agent", None))
            return response.json(collector.messages)

        return webhook

    async def message_sender(self, req: Request) -> str | None:
        return str(req.json["sender"])

    def message_text(self, req: Request) -> str | None:
        return as_text(str(req.json["message"]))

    def message_channel(self, req: Request) -> str:
        """Always "rest": the client does not choose what the provenance log records."""
        return self.name()
