""" "Forget me" for REST clients: POST /webhooks/forget/webhook {"sender": "..."} erases that conversation.

Rasa's REST channel has no way to delete a conversation, and its TrackerStore no delete;
this channel erases through omt.rasa.redacting_store (the tracker store named in
endpoints.yml), under the conversation's lock: `forget_conversation`, which the
socket.io `forget` event and the SMS FORGET YES keyword use too. The answer is {"forgotten": true,
"events": N} (N may be 0: erasing twice is fine), 400 for a bad body, 503 when the
running tracker store cannot erase. Same trust as the REST channel itself: whoever holds
a sender id can already write into that conversation. The widget and the kiosk use the
socket.io `forget` event instead, the SMS line the FORGET keyword.

Registered in credentials.yml as `omt.channels.forget.ForgetInput`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from omt.channels.rest import MAX_SENDER_CHARS
from omt.core.provenance import conversation_hash
from omt.rasa.redacting_store import ForgetUnavailableError, TrackerStoreUnavailableError, find_redacting_store

if TYPE_CHECKING:
    from rasa.core.agent import Agent

logger = logging.getLogger(__name__)


async def forget_conversation(agent: Agent | None, sender_id: str) -> int:
    """Erase `sender_id`'s stored conversation for good; the number of events erased.

    Waits for the conversation's lock (Rasa's, as for a message), so a turn in progress
    finishes first and cannot save it back. Raises `ForgetUnavailableError` when the running
    tracker store is not the redacting wrapper (endpoints.yml).
    """
    store = find_redacting_store(getattr(agent, "tracker_store", None))
    if store is None:
        raise ForgetUnavailableError("the tracker store is not omt.rasa.redacting_store.RedactingTrackerStore")
    lock_store = getattr(agent, "lock_store", None)
    if lock_store is None:
        deleted = await store.delete(sender_id)
    else:
        async with lock_store.lock(sender_id):
            deleted = await store.delete(sender_id)
    logger.info("Erased conversation %s on request (%d events)", conversation_hash(sender_id), deleted)
    return deleted


def sender_of(body: Any) -> str | None:
    """The conversation id of a request body {"sender": "..."}; None unless the REST channel would take it."""
    sender = body.get("sender") if isinstance(body, dict) else None
    if isinstance(sender, str) and sender and len(sender) <= MAX_SENDER_CHARS and sender.isprintable():
        return sender
    return None


class ForgetInput(InputChannel):
    """Only erases; sends nothing to Rasa."""

    @classmethod
    def name(cls) -> str:
        return "forget"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("forget_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def forget(request: Request) -> HTTPResponse:
            try:
                sender = sender_of(request.json)
            except Exception:  # Sanic's error for a body that is not JSON
                sender = None
            if sender is None:
                return response.json({"error": 'send {"sender": "<conversation id>"}'}, status=400)
            try:
                events = await forget_conversation(getattr(request.app.ctx, "agent", None), sender)
            except ForgetUnavailableError:
                logger.error("forget: the tracker store cannot erase conversations (see endpoints.yml)")
                return response.json({"error": "erasing is not available"}, status=503)
            except TrackerStoreUnavailableError:  # logged by the store, without SQL or values
                return response.json({"error": "the conversation store is unavailable; try again later"}, status=503)
            return response.json({"forgotten": True, "events": events})

        return webhook
