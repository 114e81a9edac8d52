"""omt.channels.socketio without a server: what the handlers do with sockets that are gone."""

from __future__ import annotations

import asyncio
from typing import Any, List

from omt.channels.socketio import SocketIOInput


def _handlers(channel: SocketIOInput, handled: List[Any]) -> Any:
    async def on_new_message(message: Any) -> None:
        handled.append(message)

    channel.blueprint(on_new_message)
    assert channel.sio is not None
    return channel.sio.handlers[channel.namespace or "/"]


def test_a_message_on_a_socket_that_already_closed_is_left_for_its_resend() -> None:
    """No crash and no turn: no reply could reach the patient, and the widget resends the same id."""
    handled: List[Any] = []
    channel = SocketIOInput(origins=["https://clinic.example"])
    handler = _handlers(channel, handled)[channel.user_message_evt]
    data = {"message": "does omt hurt?", "session_id": "a" * 32, "message_id": "m-1"}
    asyncio.run(handler("closed-sid", data))
    assert handled == []


def test_forget_on_a_socket_that_already_closed_says_not_forgotten() -> None:
    handler = _handlers(SocketIOInput(origins=["https://clinic.example"]), [])["forget"]
    assert asyncio.run(handler("closed-sid", {"session_id": "a" * 32})) == {"forgotten": False}
