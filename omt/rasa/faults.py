"""When a turn fails, the patient still gets an answer: the apology, or the emergency reply.

Why this exists. Rasa 3.6.21, left alone:

- an action server that refuses the connection or fails: `MessageProcessor._run_action`
  logs a traceback, drops the action's events and carries on; nothing is uttered, so the
  patient sees silence (REST `[]`, no `bot_uttered`, an empty SMS);
- an action server that hangs: `RemoteAction.run` waits `DEFAULT_REQUEST_TIMEOUT`, 300 s.
  A `timeout` key under `action_endpoint` in endpoints.yml lands in
  `EndpointConfig.kwargs`, which `EndpointConfig.request` never reads;
- a tracker store that cannot be reached: `FailSafeTrackerStore` catches every error and
  answers from an empty conversation (the context is lost, nothing is stored).

One mechanism, in this module, used by every channel (REST, socket.io, SMS) around Rasa's
`on_new_message`: `guarded(on_new_message)`. It holds the turn's bot messages until the
turn has finished and been stored, then sends them on. When the turn uttered nothing,
raised, or was stopped because the tracker store failed (`abort_turn`, called by
omt.rasa.redacting_store), the held messages are dropped and the patient gets
`apology_reply`: the emergency reply when the red-flag screener fires on the message (the
emergency answer is itself a custom action, so it is lost with the action server), else
the `error` service reply of knowledge/service.yml, which says to call 911 in an
emergency. Both are recorded in the provenance log with the cause, never with the text.

Two patches to Rasa go with it, installed by `omt.rasa.patches.install()` (which
`python -m omt.rasa.run` calls before Rasa starts): Rasa's action-server request is
bounded to `action_timeout()` seconds (`OMT_ACTION_TIMEOUT`, default 2), so that a hung
action server also ends in the apology within 3 s, and `QuietActionServerDown` turns
Rasa's traceback per turn for an unreachable action server into one line. Recovery
needs nothing: every request and every turn tries again.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import traceback
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Tuple

import aiohttp
from rasa.core.channels.channel import OutputChannel, UserMessage

from omt.core import replies
from omt.core.contract import FAILED_TURN_ID
from omt.core.knowledge import Knowledge, get_knowledge
from omt.core.provenance import conversation_hash, log_reply, reply_record
from omt.core.replies import Reply
from omt.core.safety import screen

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
DEFAULT_ACTION_TIMEOUT = 2.0  # seconds: NLU + a timed-out action stays well under the 3 s promise
RASA_ACTION_FAILED = "Encountered an exception while running action"  # rasa.core.processor's message
# Causes recorded with an apology (provenance log `failure`, log lines).
ACTION_SERVER, TRACKER_STORE, EXCEPTION, NO_REPLY = "action_server", "tracker_store", "exception", "no_reply"


class TurnAborted(BaseException):
    """Ends the running turn at once; only `guarded` catches it.

    A BaseException (like asyncio.CancelledError, or pytest's outcome exceptions) because
    Rasa's FailSafeTrackerStore and processor catch every Exception and carry on: a turn
    whose conversation cannot be read must stop before it answers from an empty one.
    """

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass
class _Turn:
    """The guarded turn running in one task; `cause` explains a turn that said nothing."""

    task: asyncio.Task[Any] | None
    cause: str | None = None


_TURN: contextvars.ContextVar[_Turn | None] = contextvars.ContextVar("omt_turn", default=None)


def _running_turn() -> _Turn | None:
    """The guarded turn of this very task (a task it spawned copies the context, not the guard)."""
    turn = _TURN.get()
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop: certainly not inside a turn
        return None
    return turn if turn is not None and turn.task is task else None


def abort_turn(cause: str) -> None:
    """Stop the guarded turn running in this task (its patient gets the apology); return if there is none."""
    if _running_turn() is not None:
        raise TurnAborted(cause)


def note_cause(cause: str) -> None:
    """Say why the running turn may end without a reply (for the log and the provenance record)."""
    turn = _running_turn()
    if turn is not None and turn.cause is None:
        turn.cause = cause


def apology_reply(knowledge: Knowledge, text: str) -> Reply:
    """The reply for a failed turn: the emergency reply if the message raises a red flag, else the apology.

    The apology is the `error` text of knowledge/service.yml, sent as `fallback.error`.
    """
    flag = screen(text)
    if flag is not None:
        return replies.emergency_reply(knowledge, flag.reply)
    return replies.service_reply(knowledge, "error", answer_id=FAILED_TURN_ID)


class HeldOutput(OutputChannel):
    """Keeps a turn's bot messages until the turn has been stored, so a failed turn sends only the apology."""

    def __init__(self, channel: OutputChannel) -> None:
        self.channel = channel
        self.held: List[Tuple[str, Dict[str, Any]]] = []

    def name(self) -> str:
        """The real channel's name (Rasa picks channel-specific responses by it)."""
        return self.channel.name()

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        self.held.append((recipient_id, dict(message)))

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})

    async def release(self) -> None:
        """Send everything held, in order, through the real channel."""
        for recipient_id, message in self.held:
            await self.channel.send_response(recipient_id, message)
        self.held.clear()


async def apologise(message: UserMessage, channel: OutputChannel, cause: str) -> None:
    """Send the apology (or emergency reply) for a failed turn; log it without the patient's words."""
    knowledge = get_knowledge()
    reply = apology_reply(knowledge, message.text or "")
    conversation = conversation_hash(message.sender_id)
    logger.warning("Conversation %s: the turn failed (%s); sending %s", conversation, cause, reply.answer_id)
    record = reply_record(message.sender_id, reply.answer_id, None, message.input_channel, knowledge.version)
    log_reply({**record, "failure": cause})  # before sending, like the actions: a client never sees it first
    await channel.send_response(message.sender_id, reply.message())


def guarded(on_new_message: OnNewMessage) -> OnNewMessage:
    """Rasa's `on_new_message`, but every turn answers: its own messages once stored, else the apology."""

    async def handle(message: UserMessage) -> None:
        channel = message.output_channel
        held = HeldOutput(channel)
        turn = _Turn(asyncio.current_task())
        token = _TURN.set(turn)
        message.output_channel = held
        failure: str | None = None
        try:
            await on_new_message(message)
        except TurnAborted as aborted:
            failure = aborted.cause
        except Exception as exc:  # the log holds the type and the frames, never values (patient text)
            failure = EXCEPTION
            logger.error(
                "A turn failed (%s). Traceback (values omitted):\n%s",
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
        finally:
            _TURN.reset(token)
            message.output_channel = channel
        if failure is None and held.held:
            await held.release()
        else:
            await apologise(message, channel, failure or turn.cause or NO_REPLY)

    return handle


def action_timeout(env: Dict[str, str] | None = None) -> float:
    """Seconds Rasa waits for the action server (`OMT_ACTION_TIMEOUT`); refuses nonsense at start-up.

    Rasa 3.6 has no setting for it (RasaHQ/rasa#9789, #10764): `omt.rasa.patches` sets
    the module constant `RemoteAction.run` reads on every call; tests/rasa/test_faults.py
    checks that the bound reaches the request.
    """
    raw = (env if env is not None else os.environ).get("OMT_ACTION_TIMEOUT") or str(DEFAULT_ACTION_TIMEOUT)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= 60:
        raise ValueError(f"OMT_ACTION_TIMEOUT must be between 0 and 60 seconds, not {raw!r}")
    return seconds


def unreachable(exc: BaseException | None) -> str | None:
    """The name of the connection error or timeout behind `exc`, if the action server did not answer."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (aiohttp.ClientConnectionError, asyncio.TimeoutError, TimeoutError)):
            return type(exc).__name__
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class QuietActionServerDown(logging.Filter):
    """Rasa's record for a failed action, when the server is down or hung: one line instead of a traceback.

    Rasa logs it once per turn with the whole aiohttp traceback; the cause is all an operator
    needs. It also tells the running turn why it said nothing. Other action failures (the
    server answered with an error) keep Rasa's traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        reason = unreachable(error) if str(record.msg).startswith(RASA_ACTION_FAILED) else None
        if reason is not None:
            record.msg = f"{record.getMessage()} The action server did not answer ({reason})."
            record.args = None
            record.exc_info = None
            record.exc_text = None
            note_cause(ACTION_SERVER)
        return True
