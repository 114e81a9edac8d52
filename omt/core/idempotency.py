"""A retried message is answered once: which ids count, and what the first delivery answered (pure).

Clients retry: Twilio sends a webhook again with the same `MessageSid` when the answer is
slow, a browser resends after a dropped socket, nginx passes a POST to the next replica
when the first one died. Each channel takes a client-made message id (SMS: `MessageSid`;
REST: `"message_id"` in the body; socket.io: `message_id` in `user_uttered`), and Rasa
stores it in the user event (`UserUttered.message_id`). A message whose id is already
stored for that conversation within `KEEP_SECONDS` is not handled again: the retry gets
the bot messages stored after that user event (the first delivery's replies).

No separate record: the conversation's own stored events are the record, so every
replica sees it, a purge or "forget me" deletes it with the conversation, and the
user event and its replies are written in one save, so there is no moment at which a
message is stored but not yet marked handled. The Rasa side (the lock, the store's
query) is omt/channels/once.py and `RedactingTrackerStore.replies_to`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

KEEP_SECONDS = 24 * 60 * 60  # a retry later than this is a new message
MAX_ID_CHARS = 64
# Letters, digits, "-" and "_": Twilio's SIDs ("SM" + 32 hex), UUIDs, random hex. Nothing that
# needs quoting in JSON or carries a sentence into the store.
MESSAGE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}")
ID_RULE = f'1 to {MAX_ID_CHARS} letters, digits, "-" or "_"'


def valid_message_id(value: Any) -> str | None:
    """The id if a client may use it as a message id, else None."""
    return value if isinstance(value, str) and MESSAGE_ID.fullmatch(value) else None


def like_pattern(message_id: str) -> str:
    """A SQL LIKE pattern (escape character "\\") that finds `message_id` inside a stored event's JSON."""
    escaped = message_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%"{escaped}"%'


def replies_to(events: Iterable[Mapping[str, Any]], message_id: str, since: float) -> list[Mapping[str, Any]] | None:
    """The stored bot events that answered the user event with `message_id`, or None when there is none since `since`.

    `events`: a conversation's stored events as Rasa serialises them (`Event.as_dict()`),
    in order. The replies are the `bot` events after that user event and before the next
    one (the channel sent each as `BotUttered.message()`). An empty list means the
    message was stored but its turn said nothing (the channel then sent the apology).
    """
    replies: list[Mapping[str, Any]] | None = None
    for event in events:
        kind = event.get("event")
        if kind == "user":
            if replies is not None:
                break  # the next message: its replies are not ours
            if event.get("message_id") == message_id and float(event.get("timestamp") or 0) >= since:
                replies = []
        elif kind == "bot" and replies is not None:
            replies.append(event)
    return replies
