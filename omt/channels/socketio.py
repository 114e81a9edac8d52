"""Rasa's socket.io channel, fixed for the answer contract: the website widget and the kiosk use it.

Why not Rasa's own: Rasa 3.6's `SocketIOOutput` splits text at blank lines into several
`bot_uttered` events, sends buttons on the last fragment only, and sends the `custom`
payload through `sio.emit(evt, **json_message)`, which turns our payload's keys into
keyword arguments of `emit()` and fails. The contract wants ONE bot message per turn.

What this channel emits, once per bot utterance, on `bot_message_evt` (`bot_uttered`):

    {"text": "...",                                        # whole text, blank lines kept
     "buttons": [{"title": "...", "payload": "/topic"}],   # only when there are buttons
     "custom": {"answer_id": ..., "kind": ..., "citation": {...}}}  # the action's object, as is

That is the REST channel's message shape (less `recipient_id`), so one renderer reads both.
When the client sent its message with a `message_id` (`user_uttered` {message,
session_id, message_id}), each reply to it also carries that `message_id`, so the
client knows which message is answered. The widget and the kiosk send an id with every
message and send an unanswered message again, with the same id, after a dropped
connection: it is handled once, and the resend gets the first delivery's replies
(omt/channels/once.py).
Other differences from Rasa's channel, each for safety:

- Origins: only the clinic pages' origins may connect (engine.io checks `Origin` on
  polling and WebSocket requests and answers CORS for them). `CLINIC_ORIGINS`, comma
  separated, defaults to the page server's http://127.0.0.1:8080 and http://localhost:8080
  (omt/core/origins.py, shared with the page server).
  Rasa's channel disables that check (`cors_allowed_origins=[]`).
- Session ids come from the browser (random per browser session, kept in sessionStorage):
  `session_request` accepts only 32 lowercase hex characters and hands out a fresh random
  id for anything else, so an id cannot carry text into trackers and logs.
- User messages must be strings and are cut to `MAX_MESSAGE_CHARS`; lone surrogates (valid
  JSON escapes, not text: spaCy fails on them) become U+FFFD, as in the REST channel.

"Forget me": the `forget` event {"session_id": ...} erases that session's stored
conversation (omt.channels.forget.forget_conversation), and is acknowledged with
{"forgotten": true} (false when nothing could be erased). The widget's "Clear
conversation" and the kiosk's "Start over" and idle timeout send it for the session they
leave (web/static/conversation.js). An event, not a "/forget" chat message, so the
request never becomes a message in the conversation it erases. The session id is the
credential, as for `user_uttered`: 128 random bits that only that browser tab holds.

Registered in credentials.yml as `omt.channels.socketio.SocketIOInput`.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any, Awaitable, Callable, Dict, Iterable, List

import rasa.core.channels.channel
import rasa.shared.utils.io
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint
from rasa.core.channels.socketio import SocketIOInput as RasaSocketIOInput
from rasa.core.channels.socketio import SocketIOOutput as RasaSocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from omt.channels.forget import forget_conversation
from omt.channels.once import answer
from omt.channels.rest import as_text
from omt.core.idempotency import valid_message_id
from omt.core.origins import allowed_origins

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 1000
SESSION_ID = re.compile(r"[0-9a-f]{32}")
# Message keys passed on unchanged besides text/buttons/custom (not used by our actions).
PASS_THROUGH = ("image", "attachment", "elements")


def valid_session_id(value: Any) -> str | None:
    """The session id if it is one we hand out (32 hex), else None."""
    return value if isinstance(value, str) and SESSION_ID.fullmatch(value) else None


def contract_message(message: Dict[str, Any]) -> Dict[str, Any]:
    """One bot message in the contract's shape: text, buttons, custom (only those present)."""
    out: Dict[str, Any] = {}
    if message.get("text"):
        out["text"] = message["text"]
    buttons = message.get("buttons") or message.get("quick_replies") or []
    if buttons:
        out["buttons"] = [{"title": b.get("title", ""), "payload": b.get("payload", "")} for b in buttons]
    if message.get("custom"):
        out["custom"] = message["custom"]
    for key in PASS_THROUGH:
        if message.get(key):
            out[key] = message[key]
    return out


class SocketIOOutput(RasaSocketIOOutput):
    """Emits each bot utterance as ONE `bot_uttered` event holding text, buttons and custom.

    `message_id`: the client's id of the message being answered, sent with each reply.
    """

    def __init__(self, sio: AsyncServer, bot_message_evt: str, message_id: str | None = None) -> None:
        super().__init__(sio, bot_message_evt)
        self.message_id = message_id

    async def _emit(self, recipient_id: str, message: Dict[str, Any]) -> None:
        if message:
            if self.message_id is not None:
                message = {**message, "message_id": self.message_id}
            await self.sio.emit(self.bot_message_evt, message, room=recipient_id)

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        """The whole utterance at once, instead of Rasa's one event per part."""
        await self._emit(recipient_id, contract_message(message))

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._emit(recipient_id, {"text": text})

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        await self._emit(recipient_id, contract_message({"text": text, "buttons": buttons}))

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: List[Dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies)

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        """The payload object as `custom`, never spread into `emit()`'s keyword arguments."""
        await self._emit(recipient_id, {"custom": json_message})

    async def send_elements(self, recipient_id: str, elements: Iterable[Dict[str, Any]], **kwargs: Any) -> None:
        await self._emit(recipient_id, {"elements": list(elements)})


class SocketIOInput(RasaSocketIOInput):
    """Rasa's socket.io input with our output, an origin allow-list and checked session ids."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    def __init__(self, *args: Any, origins: List[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.origins = origins if origins is not None else allowed_origins()

    def get_output_channel(self) -> OutputChannel | None:
        if self.sio is None:
            return super().get_output_channel()  # warns, returns None
        return SocketIOOutput(self.sio, self.bot_message_evt)

    def _authorised(self, auth: Dict | None) -> bool:
        if not self.jwt_key:
            return True
        token = auth.get("token") if auth else None
        if not token:
            return False
        payload = rasa.core.channels.channel.decode_bearer_token(token, self.jwt_key, self.jwt_algorithm)
        return bool(payload)

    def _sender_id(self, sid: str, data: Dict[str, Any]) -> str | None:
        if not self.session_persistence:
            return sid
        session_id = valid_session_id(data.get("session_id"))
        if session_id is None:
            rasa.shared.utils.io.raise_warning(
                "A socket.io message without a valid session_id was ignored: send "
                "`session_request` first and use the confirmed id."
            )
        return session_id

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Rasa's blueprint, with our output channel and the checks in the module docstring.

        Turns go through `omt.channels.once.answer`: a failed turn emits the apology, never
        nothing, and a message with a `message_id` is handled once.
        """
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=self.origins, cors_credentials=False)
        socketio_webhook = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
        self.sio = sio

        @socketio_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        def agent_of(sid: str) -> Any:
            """Rasa's agent, reached through the Sanic request that opened this socket (None once it closed)."""
            environ = sio.get_environ(sid, namespace=self.namespace)
            return environ["sanic.request"].app.ctx.agent if environ else None

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: str, environ: Dict, auth: Dict | None) -> bool:
            return self._authorised(auth)

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Any = None) -> None:
            # `data` is whatever the client sent (or nothing): only a dict can hold an id.
            asked = data.get("session_id") if isinstance(data, dict) else None
            session_id = valid_session_id(asked) or uuid.uuid4().hex
            if self.session_persistence:
                # One conversation per socket: leave an earlier session's room first.
                for room in sio.rooms(sid, namespace=self.namespace):
                    if room not in (sid, session_id):
                        sio.leave_room(sid, room, namespace=self.namespace)
                sio.enter_room(sid, session_id, namespace=self.namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any = None) -> None:
            if not isinstance(data, dict) or not isinstance(data.get("message"), str):
                return
            sender_id = self._sender_id(sid, data)
            if sender_id is None:
                return
            metadata = data.get(self.metadata_key) or {}
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = {}
            message_id = valid_message_id(data.get("message_id"))
            agent = agent_of(sid) if message_id else None
            if message_id and agent is None:
                # The socket closed before its message was handled: no reply could reach the
                # patient, and the widget resends the message (same id) when it reconnects.
                logger.info("socket.io: a message arrived on a socket that had closed; left for its resend")
                return
            message = UserMessage(
                as_text(data["message"][:MAX_MESSAGE_CHARS]),
                SocketIOOutput(sio, self.bot_message_evt, message_id),
                sender_id,
                input_channel=self.name(),
                metadata=metadata if isinstance(metadata, dict) else {},
            )
            await answer(on_new_message, message, message_id, agent)

        @sio.on("forget", namespace=self.namespace)
        async def forget(sid: str, data: Any = None) -> Dict[str, bool]:
            sender_id = self._sender_id(sid, data) if isinstance(data, dict) else None
            if sender_id is None:
                return {"forgotten": False}
            try:
                await forget_conversation(agent_of(sid), sender_id)
            except Exception as exc:  # the log holds no session id or text
                logger.error("socket.io: could not erase a conversation (%s)", type(exc).__name__)
                return {"forgotten": False}
            return {"forgotten": True}

        return socketio_webhook
