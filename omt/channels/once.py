"""A message with a client-made id is handled once per conversation; a retry gets the first delivery's replies.

Used by every channel (REST, socket.io, SMS) instead of calling Rasa's `on_new_message`
directly: `answer(on_new_message, message, message_id, agent)`. Without an id (or
without our tracker store) it is exactly `omt.rasa.faults.guarded(on_new_message)(message)`.

With an id, the turn runs as Rasa's `Agent.handle_message` runs it — under the
conversation's lock from Rasa's lock store (Redis in the cluster, so every replica
takes the same lock) and through the agent's processor — with one step first, inside
the lock: the tracker store is asked whether a user event with this id is stored for
the conversation within `omt.core.idempotency.KEEP_SECONDS`. If it is, the bot messages
stored after it are sent again through the channel and Rasa is not called: one user
event is stored, and the retry gets the same replies (SMS: the same TwiML). A retry
that arrives while the first delivery is still running waits for the lock, so it
finds the first one's events once they are saved; the wait is bounded by the lock's
ticket lifetime (`TICKET_LOCK_LIFETIME`: a replica that died holding the lock lets go
after it). A first delivery whose turn failed stored no replies: its retry gets the
apology again, from `guarded`, like the first did.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from rasa.core.channels.channel import UserMessage

from omt.core.idempotency import KEEP_SECONDS
from omt.rasa.faults import guarded
from omt.rasa.redacting_store import find_redacting_store

if TYPE_CHECKING:
    from rasa.core.agent import Agent

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
Clock = Callable[[], float]


async def answer(
    on_new_message: OnNewMessage,
    message: UserMessage,
    message_id: str | None,
    agent: Agent | None,
    clock: Clock = time.time,
) -> None:
    """Handle `message` (guarded: a failed turn answers the apology), once per `message_id` when one is given."""
    if message_id is None:
        await guarded(on_new_message)(message)
        return

    async def once(msg: UserMessage) -> None:
        await handle_once(on_new_message, msg, message_id, agent, clock)

    await guarded(once)(message)


async def handle_once(
    on_new_message: OnNewMessage,
    message: UserMessage,
    message_id: str,
    agent: Agent | None,
    clock: Clock = time.time,
) -> None:
    """The turn for `message`, or the replies stored for `message_id` (see the module docstring)."""
    store = find_redacting_store(getattr(agent, "tracker_store", None))
    if agent is None or store is None or agent.processor is None or not agent.is_ready():
        await on_new_message(message)  # nowhere to look: handled as without an id
        return
    message.message_id = message_id  # stored with the user event: the record of this delivery
    async with agent.lock_store.lock(message.sender_id):
        replies = await store.replies_to(message.sender_id, message_id, since=clock() - KEEP_SECONDS)
        if replies is None:
            await agent.processor.handle_message(message)
            return
        for reply in replies:
            await message.output_channel.send_response(message.sender_id, reply)
