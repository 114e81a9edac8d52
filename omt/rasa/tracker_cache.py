"""The trackers this process saved, kept for their conversation's next message.

Reading a conversation back costs two queries, JSON for each event and a replay of the
events: about 3 ms of a 20 ms turn (`make bench`). The process that saved a tracker
already holds what that read would rebuild. So after a save the tracker is kept with the
id of the last stored event of its conversation, and the next read takes it back only
if that id is still the last (one indexed query): any write from elsewhere (another
replica, an erasure, a purge) changes it, and the conversation is read from the store.

A tracker is taken out when it is handed to a turn and put back only by a successful
save: a turn that fails half-way leaves nothing behind.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from rasa.shared.core.trackers import DialogueStateTracker


@dataclass(frozen=True)
class Kept:
    tracker: DialogueStateTracker
    last_id: int


class TrackerCache:
    """At most `size` conversations, the least recently saved dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[str, Kept] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, tracker: DialogueStateTracker, last_id: int | None) -> None:
        """Keep `tracker` as saved up to the stored event `last_id` (None: nothing stored, keep nothing)."""
        self._kept.pop(tracker.sender_id, None)
        if self.size < 1 or last_id is None:
            return
        self._kept[tracker.sender_id] = Kept(tracker, last_id)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def take(self, sender_id: str) -> Kept | None:
        """The kept tracker of `sender_id`, no longer kept (the caller checks `last_id` against the store)."""
        return self._kept.pop(sender_id, None)

    def forget(self, sender_id: str) -> None:
        self._kept.pop(sender_id, None)
