"""The SMS line: Twilio's messaging webhook as a Rasa input channel (POST /webhooks/sms/webhook).

The reply goes back in the webhook's own response as TwiML, so there is no outbound API
call and no account id to keep. Every request must carry Twilio's signature for our
public URL; secrets come from the environment (TWILIO_AUTH_TOKEN, SMS_SENDER_KEY,
SMS_WEBHOOK_URL), never from credentials.yml. The phone number is replaced by a keyed
hash before anything reaches Rasa, so it is never stored or logged.

Twilio sends a webhook again with the same `MessageSid` when our answer is slow: that
message is handled once, and the retry gets the same TwiML (omt/channels/once.py).

FORGET (ours, not Twilio's) asks for confirmation; FORGET YES erases the sender's stored
conversation (omt.channels.forget.forget_conversation). Neither reaches Rasa.

A numbered reply ("2", a pick from the list the last SMS ended with) goes to Rasa as it is,
like "the second one" typed on the web: the classifier's `choose_option` and
`action_answer` pick it from the buttons of the last reply (the `listed_topics` slot). The
channel keeps no state and never reads the tracker store.
"""

from __future__ import annotations

import functools
import logging
import os
import traceback
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Mapping
from urllib.parse import parse_qs

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request, RequestParameters
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from omt.channels.forget import forget_conversation
from omt.channels.once import answer
from omt.channels.sms_render import SMS_BUDGET, SmsTexts, get_sms_texts, render_sms, render_text
from omt.core.idempotency import valid_message_id
from omt.core.knowledge import Knowledge, get_knowledge
from omt.core.provenance import keyed_hash
from omt.core.replies import PARAGRAPHS_KEY
from omt.rasa.redacting_store import ForgetUnavailableError

if TYPE_CHECKING:
    from rasa.core.agent import Agent

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
# Twilio's keywords (Advanced Opt-Out): matched on the whole message, case-insensitive,
# like Twilio does, so our state never disagrees with the carrier's.
OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})
OPT_IN_WORDS = frozenset({"start", "unstop"})
HELP_WORDS = frozenset({"help", "info"})
# Ours: erase this conversation ("forget me"), only once confirmed with FORGET YES.
FORGET_WORDS = frozenset({"forget"})
FORGET_CONFIRMED_WORDS = frozenset({"forget yes"})

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
Forget = Callable[[str], Awaitable[int]]  # erases a sender id's stored conversation


@dataclass(frozen=True)
class SmsSettings:
    """The channel's configuration: secrets from the environment, limits from credentials.yml."""

    auth_token: str = ""
    sender_key: str = ""
    webhook_url: str = ""
    max_body_chars: int = 1600  # Twilio's own limit for one message
    max_reply_chars: int = SMS_BUDGET

    @classmethod
    def from_env(cls, env: Mapping[str, str], options: Mapping[str, Any] | None = None) -> SmsSettings:
        """Secrets from `env`; the numeric limits from the credentials.yml section."""
        limits = {f.name for f in fields(cls)} - {"auth_token", "sender_key", "webhook_url"}
        unknown = set(options or {}) - limits
        if unknown:
            raise ValueError(f"sms channel: unknown option(s) {sorted(unknown)}; known: {sorted(limits)}")
        return cls(
            auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
            sender_key=env.get("SMS_SENDER_KEY", ""),
            webhook_url=env.get("SMS_WEBHOOK_URL", ""),
            **{name: int(value) for name, value in (options or {}).items()},
        )

    def missing(self) -> list[str]:
        """Environment variables without which no request can be trusted or stored safely."""
        values = {
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "SMS_SENDER_KEY": self.sender_key,
            "SMS_WEBHOOK_URL": self.webhook_url,
        }
        return [name for name, value in values.items() if not value]


def keyword(body: str) -> str | None:
    """ "stop", "start", "help", "forget" or "forget_yes" when the whole message is a keyword."""
    word = " ".join(body.split()).casefold()
    if word in OPT_OUT_WORDS:
        return "stop"
    if word in OPT_IN_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    if word in FORGET_WORDS:
        return "forget"
    if word in FORGET_CONFIRMED_WORDS:
        return "forget_yes"
    return None


def form_params(body: bytes) -> RequestParameters | None:
    """The form fields, blank ones included: Twilio signs those too (Sanic's `form` drops them)."""
    try:
        return RequestParameters(parse_qs(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None


def twiml(body: str | None) -> str:
    """A TwiML reply: one <Message>, or an empty <Response/> for no reply at all."""
    reply = MessagingResponse()
    if body:
        reply.message(body)
    return str(reply)


class SmsCollector(CollectingOutputChannel):
    """Rasa's collector, also keeping each message's paragraphs (which it drops) for the renderer."""

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        paragraphs, before = message.get(PARAGRAPHS_KEY), len(self.messages)
        await super().send_response(recipient_id, message)
        if paragraphs is not None and len(self.messages) > before:
            self.messages[-1][PARAGRAPHS_KEY] = paragraphs


class SmsInput(InputChannel):
    """Answers each signed Twilio webhook with one SMS, rendered by omt.channels.sms_render."""

    @classmethod
    def name(cls) -> str:
        return "sms"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        knowledge = get_knowledge()  # a bad knowledge file stops the start, like the actions'
        return cls(SmsSettings.from_env(os.environ, credentials), knowledge, get_sms_texts())

    def __init__(self, settings: SmsSettings, knowledge: Knowledge, texts: SmsTexts) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.texts = texts
        budget = settings.max_reply_chars
        self._canned = {
            "start": render_text(texts.start, budget),
            "help": render_text(texts.help, budget),
            "too_long": render_text(texts.too_long, budget),
            "media_only": render_text(texts.media_only, budget),
            "forget": render_text(texts.forget_confirm, budget),
            "forget_yes": render_text(texts.forget_done, budget),
            "error": render_text(knowledge.fill(knowledge.replies["error"].sms), budget),
        }
        self._missing = settings.missing()
        if self._missing:  # said once here, not on every refused request
            logger.error("SMS channel refuses every request (403): %s not set", ", ".join(self._missing))

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """The webhook; turns go through `omt.channels.once.answer` (apology on failure; once per MessageSid)."""
        webhook = Blueprint("sms_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            agent = getattr(request.app.ctx, "agent", None)
            forget = functools.partial(forget_conversation, agent) if agent is not None else None
            signature = request.headers.get(SIGNATURE_HEADER)
            status, body = await self.respond(request.body, signature, on_new_message, forget, agent)
            return response.text(body, status=status, content_type="text/xml" if status == 200 else "text/plain")

        return webhook

    async def respond(
        self,
        body: bytes,
        signature: str | None,
        on_new_message: OnNewMessage,
        forget: Forget | None = None,
        agent: Agent | None = None,
    ) -> tuple[int, str]:
        """(HTTP status, response body) for one webhook request: 403 unless signed, else TwiML."""
        params = form_params(body)
        if params is None or not self._signed(params, signature):
            return 403, "Forbidden"
        try:
            reply = await self._reply(params, on_new_message, forget, agent)
        except Exception as exc:  # never a 500 to Twilio; the log holds no patient text
            logger.error(
                "SMS turn failed (%s); sent the apology. Traceback (values omitted):\n%s",
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            reply = self._canned["error"]
        return 200, twiml(reply)

    def _signed(self, params: RequestParameters, signature: str | None) -> bool:
        if self._missing:
            return False
        validator = RequestValidator(self.settings.auth_token)
        if signature and validator.validate(self.settings.webhook_url, params, signature):
            return True
        logger.warning("SMS webhook: refused a request without a valid %s", SIGNATURE_HEADER)
        return False

    async def _reply(
        self,
        params: RequestParameters,
        on_new_message: OnNewMessage,
        forget: Forget | None = None,
        agent: Agent | None = None,
    ) -> str | None:
        """The SMS to send back, or None for no reply (opt-out, or nobody to answer)."""
        sender, body = str(params.get("From") or ""), str(params.get("Body") or "")
        word = keyword(body)
        if not sender or word == "stop":
            return None
        if word == "forget_yes":
            if forget is None:
                raise ForgetUnavailableError("no tracker store to erase the conversation from")
            await forget(keyed_hash(sender, self.settings.sender_key))
            return self._canned["forget_yes"]
        if word is not None:
            return self._canned[word]
        if len(body) > self.settings.max_body_chars:
            return self._canned["too_long"]
        if not body.strip():  # media only (NumMedia > 0), or an empty text
            return self._canned["media_only"]
        sender_id = keyed_hash(sender, self.settings.sender_key)
        collector = SmsCollector()
        message = UserMessage(body, collector, sender_id, input_channel=self.name())
        await answer(on_new_message, message, valid_message_id(params.get("MessageSid")), agent)
        rendered = render_sms(collector.messages, self.knowledge, self.texts, self.settings.max_reply_chars)
        # `answer` already sends the apology for a failed turn; this covers a reply with nothing to render.
        return rendered or self._canned["error"]
